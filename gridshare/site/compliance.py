"""Profiles that are really in force: which connectors do not follow their limit.

Pure, without a clock or I/O: the caller passes each meter reading with the
limit in force and each GetCompositeSchedule answer with the limit sent, and
gets back the changes (a connector flagged, or following again).

Two kinds of evidence:

- **meter**: a car drawing more than its limit (plus a tolerance) for longer
  than the EV's allowed response time after a lowering, plus a margin for the
  meter interval (the first reading over may come that late);
- **composite**: the station's own composite schedule allows more than the
  limit sent (the profile was accepted, then ignored or overridden).

A flagged connector counts at what it really draws (`ComplianceTracker.reserved`):
the planner takes it off the others. It is unflagged once its draw has stayed
within its limit for ``clear_s``, once a read-back matches again (composite),
or when its session ends.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any


class Evidence(StrEnum):
    METER = "meter"
    COMPOSITE = "composite"


@dataclass(frozen=True)
class ComplianceSettings:
    tolerance_a: float = 2.0
    """Meters and stations are not exact: this much over the limit is no excess."""
    response_s: float = 10.0
    """The time an EV is allowed to follow a lowered limit."""
    meter_margin_s: float = 1.0
    """Added to the response time: the first reading over may come one interval late."""
    clear_s: float = 60.0
    """A flagged car drawing within its limit this long follows again."""
    readback_gap_s: float = 10.0
    """At most one GetCompositeSchedule read-back per station in this time."""

    @property
    def allowed_s(self) -> float:
        return self.response_s + self.meter_margin_s


@dataclass
class Flag:
    """A connector that does not follow its limit."""

    connector_id: str
    since: datetime
    draw_a: float
    """What it draws (or, on composite evidence alone, what its station allows)."""
    limit_a: float
    evidence: set[Evidence] = field(default_factory=set)

    @property
    def reason(self) -> str:
        kinds = " and ".join(sorted(e.value for e in self.evidence))
        what = "draws" if Evidence.METER in self.evidence else "its station allows"
        return f"{what} {self.draw_a:.1f} A over its limit of {self.limit_a:.1f} A ({kinds})"


@dataclass(frozen=True)
class Change:
    connector_id: str
    flagged: bool
    """True: newly flagged; False: follows its limit again."""
    detail: str


@dataclass
class _Watch:
    over_since: datetime | None = None
    within_since: datetime | None = None


class ComplianceTracker:
    """Per connector: the limit in force against the measured draw and the read-back."""

    def __init__(self, settings: ComplianceSettings | None = None) -> None:
        self.settings = settings or ComplianceSettings()
        self.flags: dict[str, Flag] = {}
        self._watch: dict[str, _Watch] = {}

    def reserved(self) -> dict[str, float]:
        """Connector → the current the planner must count it at."""
        return {cid: f.draw_a for cid, f in self.flags.items()}

    def reasons(self) -> dict[str, str]:
        return {cid: f.reason for cid, f in sorted(self.flags.items())}

    def reading(
        self, cid: str, draw_a: float, limit_a: float | None, at: datetime
    ) -> Change | None:
        """A meter reading of ``cid`` (its highest line) under ``limit_a`` (None: no
        limit of ours in force, nothing to check)."""
        s = self.settings
        w = self._watch.setdefault(cid, _Watch())
        flag = self.flags.get(cid)
        if limit_a is None:
            self._watch.pop(cid, None)
            return None
        if draw_a > limit_a + s.tolerance_a:
            w.within_since = None
            w.over_since = w.over_since or at
            if flag is not None:
                # what it draws now; what its station allows, if that said more
                held = flag.draw_a if Evidence.COMPOSITE in flag.evidence else 0.0
                flag.draw_a, flag.limit_a = max(draw_a, held), limit_a
                flag.evidence.add(Evidence.METER)
                return None
            if at - w.over_since >= timedelta(seconds=s.allowed_s):
                return self._flag(cid, at, draw_a, limit_a, Evidence.METER)
            return None
        w.over_since = None
        w.within_since = w.within_since or at
        if flag is not None and at - w.within_since >= timedelta(seconds=s.clear_s):
            return self._clear(cid, f"draws {draw_a:.1f} A within its limit of {limit_a:.1f} A")
        return None

    def composite(
        self, cid: str, allowed_a: float | None, sent_a: float | None, at: datetime
    ) -> Change | None:
        """A read-back: the station's composite limit now (``allowed_a``) against the
        limit we sent (``sent_a``); either None: nothing to compare."""
        if allowed_a is None or sent_a is None:
            return None
        flag = self.flags.get(cid)
        if allowed_a > sent_a + self.settings.tolerance_a:
            if flag is not None:
                flag.evidence.add(Evidence.COMPOSITE)
                flag.draw_a = max(flag.draw_a, allowed_a)
                return None
            return self._flag(cid, at, allowed_a, sent_a, Evidence.COMPOSITE)
        if flag is not None and flag.evidence == {Evidence.COMPOSITE}:
            return self._clear(cid, f"composite schedule {allowed_a:.1f} A matches {sent_a:.1f} A")
        if flag is not None:
            flag.evidence.discard(Evidence.COMPOSITE)
        return None

    def ended(self, cid: str) -> Change | None:
        """The connector's session ended: it draws nothing more."""
        self._watch.pop(cid, None)
        if cid in self.flags:
            return self._clear(cid, "session ended")
        return None

    def _flag(
        self, cid: str, at: datetime, draw_a: float, limit_a: float, evidence: Evidence
    ) -> Change:
        flag = Flag(cid, at, draw_a, limit_a, {evidence})
        self.flags[cid] = flag
        return Change(cid, True, flag.reason)

    def _clear(self, cid: str, detail: str) -> Change:
        self.flags.pop(cid, None)
        self._watch.pop(cid, None)
        return Change(cid, False, detail)


def highest_line_a(current_a: Mapping[str, float]) -> float | None:
    """The draw to compare with a per-phase limit: the highest line's current."""
    return max(current_a.values()) if current_a else None


def composite_limit_a(payload: Mapping[str, Any] | None, voltage_v: float) -> float | None:
    """The limit a GetCompositeSchedule answer (1.6, 2.0.1 or 2.1) gives for now, in
    amperes per phase (None: no schedule, or one we cannot read). A W schedule is
    converted with the period's phases (3 when not given)."""
    if not payload or payload.get("status") != "Accepted":
        return None
    sched = payload.get("chargingSchedule") or payload.get("schedule")
    if not isinstance(sched, Mapping):
        return None
    periods = sched.get("chargingSchedulePeriod")
    if not isinstance(periods, list) or not periods:
        return None
    first = min(periods, key=lambda p: p.get("startPeriod", 0))
    try:
        limit = float(first["limit"])
        if sched.get("chargingRateUnit") == "W":
            limit /= voltage_v * int(first.get("numberPhases") or 3)
    except (KeyError, TypeError, ValueError, ZeroDivisionError):
        return None
    return limit
