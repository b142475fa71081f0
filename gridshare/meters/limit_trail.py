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

from gridshare.rollout.schedule import LimitSchedule

Limit = LimitSchedule | float
BEFORE = datetime(1970, 1, 1, tzinfo=UTC)
"""The time of the limit a connector had before its first profile was sent."""


def _values(limit: Limit, a: datetime, b: datetime) -> list[float]:
    """The values ``limit`` takes over [a, b]."""
    if not isinstance(limit, LimitSchedule):
        return [float(limit)]
    out = [limit.at(a)]
    for off, value in limit.periods:
        if a < limit.start + timedelta(seconds=off) <= b:
            out.append(value)
    return out


@dataclass
class LimitTrail:
    """One connector's limits, each from when it was sent (oldest first)."""

    times: list[datetime] = field(default_factory=list)
    limits: list[Limit] = field(default_factory=list)

    def add(self, at: datetime, limit: Limit, keep: timedelta) -> None:
        i = bisect.bisect_right(self.times, at)
        self.times.insert(i, at)
        self.limits.insert(i, limit)
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
            values.extend(_values(self.limits[i], max(a, self.times[i]), b))
        return min(values), max(values)
