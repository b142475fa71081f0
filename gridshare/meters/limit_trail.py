"""When each connector's limit changed: what a car may have drawn at a past moment.

A connection meter's reading is compared with the chargers' own samples, which
come later and less often. Around a limit change a held sample no longer says
what the car drew: it moves toward its new limit within the EV's response time.
The trail keeps, per connector, every profile from the moment it was sent (it
may be in force from then on, answered or not), so that the limits possibly
in force over any past window are known — not only the one in force now.

Plain code: the caller gives every time.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from gridshare.rollout.schedule import EPS, LimitSchedule

Limit = LimitSchedule | float
BEFORE = datetime(1970, 1, 1, tzinfo=UTC)
"""The time of the limit a connector had before its first profile was sent."""


@dataclass(frozen=True)
class _Steps:
    """A limit as steps: from ``start`` + each offset (s), its value."""

    start: datetime
    offsets: list[float]
    values: list[float]

    @classmethod
    def of(cls, limit: Limit) -> _Steps:
        if not isinstance(limit, LimitSchedule):
            return cls(BEFORE, [0.0], [float(limit)])
        return cls(limit.start, [float(o) for o, _ in limit.periods], [v for _, v in limit.periods])

    def over(self, a: datetime, b: datetime) -> list[float]:
        """The values it takes over [a, b] (before its start, its first one)."""
        lo = (a - self.start).total_seconds()
        hi = (b - self.start).total_seconds()
        i = max(bisect.bisect_right(self.offsets, lo + EPS) - 1, 0)
        j = max(bisect.bisect_right(self.offsets, hi + EPS), i + 1)
        return self.values[i:j]


@dataclass
class LimitTrail:
    """One connector's limits, each from when it was sent (oldest first)."""

    times: list[datetime] = field(default_factory=list)
    limits: list[_Steps] = field(default_factory=list)

    def add(self, at: datetime, limit: Limit, keep: timedelta) -> None:
        i = bisect.bisect_right(self.times, at)
        self.times.insert(i, at)
        self.limits.insert(i, _Steps.of(limit))
        # what is older than ``keep`` is never asked about again: the last one of it stays
        while len(self.times) > 1 and self.times[1] < at - keep:
            del self.times[0], self.limits[0]

    def span(self, a: datetime, b: datetime) -> tuple[float, float] | None:
        """(lowest, highest) limit possibly in force at some moment of [a, b];
        None before the trail begins. A profile counts from when it was sent to
        ``b`` (a later one may have been refused): the span is never too narrow."""
        first = bisect.bisect_right(self.times, a) - 1
        if first < 0:
            return None
        values: list[float] = []
        for i in range(first, bisect.bisect_right(self.times, b)):
            values.extend(self.limits[i].over(max(a, self.times[i]), b))
        return min(values), max(values)
