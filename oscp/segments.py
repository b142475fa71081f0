"""Reassembly of a message sent in parts (``X-Segment-Index`` / ``X-Segment-Count``).

Parts of one message share a key (the caller's choice: the sender, the message
and its ``X-Correlation-ID`` or group). Indices may count from 0 or from 1;
the message is complete once ``count`` distinct indices arrived that are
exactly ``0..count-1`` or ``1..count``. Parts of an incomplete message are
dropped ``ttl`` after its first part. Pure: the caller passes the time.
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Generic, TypeVar

from oscp.errors import BadRequest

T = TypeVar("T")

MAX_SEGMENTS = 1000


def parse_segment_headers(index: str | None, count: str | None) -> tuple[int, int] | None:
    """(index, count) from the headers; None when the message is not segmented."""
    if index is None and count is None:
        return None
    if index is None or count is None:
        raise BadRequest("X-Segment-Index and X-Segment-Count go together")
    try:
        i, n = int(index), int(count)
    except ValueError:
        raise BadRequest("X-Segment-Index and X-Segment-Count must be integers") from None
    if not 1 <= n <= MAX_SEGMENTS or not 0 <= i <= n:
        raise BadRequest(f"segment {i} of {n} is out of range")
    return i, n


@dataclass
class _Partial(Generic[T]):
    count: int
    first_at: datetime
    parts: dict[int, T] = field(default_factory=dict)


@dataclass
class Reassembler(Generic[T]):
    ttl: timedelta = timedelta(minutes=5)
    _pending: dict[Hashable, _Partial[T]] = field(default_factory=dict)

    def add(self, key: Hashable, index: int, count: int, part: T, now: datetime) -> list[T] | None:
        """Keep a part; all parts in index order once the message is complete."""
        for k in [k for k, p in self._pending.items() if now - p.first_at > self.ttl]:
            del self._pending[k]
        partial = self._pending.get(key)
        if partial is None or partial.count != count:
            partial = self._pending[key] = _Partial(count, now)
        partial.parts[index] = part
        idx = set(partial.parts)
        if idx in (set(range(count)), set(range(1, count + 1))):
            del self._pending[key]
            return [partial.parts[i] for i in sorted(idx)]
        if len(idx) > count:
            del self._pending[key]
            raise BadRequest(f"segments {sorted(idx)} do not make {count} parts")
        return None

    @property
    def pending(self) -> int:
        return len(self._pending)
