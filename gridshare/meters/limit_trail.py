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

    def ahead(self, at: datetime) -> list[tuple[float, float]]:
        """From ``at`` on: (seconds after ``at`` it starts, value) of each step."""
        first = self.over(at, at)[0]
        lo = (at - self.start).total_seconds()
        return [(0.0, first)] + [
            (o - lo, v) for o, v in zip(self.offsets, self.values, strict=True) if o > lo + EPS
        ]

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
    _spans: dict[tuple[datetime, datetime], tuple[float, float] | None] = field(
        default_factory=dict, repr=False
    )
    """Spans asked for since the last change (a check asks the same ones many times)."""

    def add(self, at: datetime, limit: Limit, keep: timedelta) -> None:
        steps = _Steps.of(limit)
        i = bisect.bisect_right(self.times, at)
        # the same limits sent again change nothing: kept once, the windows stay short
        if i == len(self.times) and i > 0 and self.limits[-1].ahead(at) == steps.ahead(at):
            return
        self.times.insert(i, at)
        self.limits.insert(i, steps)
        self._spans.clear()
        # what is older than ``keep`` is never asked about again: the last one of it stays
        while len(self.times) > 1 and self.times[1] < at - keep:
            del self.times[0], self.limits[0]

    def span(self, a: datetime, b: datetime) -> tuple[float, float] | None:
        """(lowest, highest) limit possibly in force at some moment of [a, b];
        None before the trail begins. A profile counts from when it was sent to
        ``b`` (a later one may have been refused): the span is never too narrow."""
        key = (a, b)
        if key in self._spans:
            return self._spans[key]
        first = bisect.bisect_right(self.times, a) - 1
        span: tuple[float, float] | None = None
        if first >= 0:
            values: list[float] = []
            for i in range(first, bisect.bisect_right(self.times, b)):
                values.extend(self.limits[i].over(max(a, self.times[i]), b))
            span = (min(values), max(values))
        if len(self._spans) >= 64:
            self._spans.clear()
        self._spans[key] = span
        return span
