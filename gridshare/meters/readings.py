"""A meter's reading, and the check every reading passes before it counts.

A reading is currents per line at a moment. Import is positive; a connection
meter may show export (negative). What no meter of its kind can show is
refused with the reason, logged once per kind of fault, and never counts: it
cannot lower a limit and cannot raise one (the meter keeps its last good
reading and goes stale without new ones).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from gridshare.errors import UserError
from gridshare.meters.config import Measures, MeterConfig
from optimizer.site import LINES, MAX_AC_CONNECTOR_A, Line

MAX_READING_A = 20 * MAX_AC_CONNECTOR_A
"""More than a building connection carries per line: a unit or scale gone wrong."""
FUTURE_SLACK = timedelta(seconds=60)
"""A reading time this far ahead of our clock is a wrong clock, not a reading."""


class ReadingRefused(UserError, ValueError):
    """A reading no meter of its kind can show; the message says why."""


@dataclass(frozen=True)
class Reading:
    """Currents per line (A, import positive) of one meter at ``at`` (aware)."""

    meter_id: str
    at: datetime
    current_a: Mapping[Line, float]
    received_at: datetime
    """Our clock when it arrived (freshness is judged on our clock)."""


def checked(
    meter: MeterConfig, at: datetime, values: Mapping[str, object], now: datetime
) -> Reading:
    """The reading of ``values`` (line name → amperes), or `ReadingRefused`."""
    if at.tzinfo is None:
        raise ReadingRefused("the reading's time has no UTC offset")
    if at - now > FUTURE_SLACK:
        raise ReadingRefused(f"the reading is from the future ({at.isoformat()})")
    out: dict[Line, float] = {}
    for key, raw in values.items():
        try:
            line = Line(str(key).upper())
        except ValueError:
            raise ReadingRefused(f"{key!r} is not a line (L1, L2, L3)") from None
        if isinstance(raw, bool) or not isinstance(raw, int | float):
            raise ReadingRefused(f"{line}: {raw!r} is not a number")
        amps = float(raw)
        if not math.isfinite(amps):
            raise ReadingRefused(f"{line}: {amps} is not a current")
        if abs(amps) > MAX_READING_A:
            raise ReadingRefused(f"{line}: {amps:g} A is beyond any connection (a unit wrong?)")
        if amps < 0 and meter.measures is not Measures.CONNECTION:
            kind = "load" if meter.measures is Measures.LOAD else "generation"
            raise ReadingRefused(
                f"{line}: {amps:g} A: a {kind} meter cannot show a negative import"
            )
        out[line] = amps
    if not out:
        raise ReadingRefused("the reading has no line current")
    worst = meter.worst_a()
    for line in LINES:  # a line it does not show: its worst case, never 0 by default
        out.setdefault(line, worst[line])
    return Reading(meter.id, at, out, now)
