"""Demand side estimates: when a car leaves, how much energy it still needs,
and the current it really takes.

Everything here is pure: the caller passes the clock reading, the history and
the meter readings. Sources of an estimate, best first: what the EV itself
said (OCPP 2.0.1 NotifyEVChargingNeeds), the idTag's own history, the site's
defaults.
"""

from __future__ import annotations

import math
import statistics
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

from forecasts.errors import InvalidRecord
from optimizer.site import LINES, Line

LAST_MINUTE = timedelta(minutes=1)
"""A departure closer than this counts as passed."""


class Source(StrEnum):
    EV = "EV"
    HISTORY = "HISTORY"
    DEFAULT = "DEFAULT"


@dataclass(frozen=True)
class DemandDefaults:
    """What to assume of a session that states nothing (the site's ``[defaults]``)."""

    dwell_hours: float = 8.0
    energy_kwh: float = 20.0
    overstay_hours: float = 1.0
    """A car still plugged in past its expected departure stays this much longer."""
    topup_kwh: float = 1.0
    """A car whose estimated energy is delivered still gets this much (it may want more)."""
    taper_kwh: float = 3.0
    """Battery tail the planner assumes: over its last ``taper_kwh`` a car takes
    less and less current (the constant-voltage phase), so it is charged early
    enough to finish. Only for sessions whose energy is stated (by the EV, the
    driver or the operator), not for estimates. 0: planned as if a car took
    its maximum until full."""

    def taper_for(self, energy_stated: bool) -> float | None:
        """The tail to plan for a need: none at the end of an estimate (a
        guess, not a full battery) or when the site turns it off."""
        return (self.taper_kwh or None) if energy_stated else None


@dataclass(frozen=True)
class EvNeeds:
    """What the EV said about itself; any field may be missing.

    ``energy_kwh`` is what it still wanted when it said so, at which point the
    session's meter had delivered ``delivered_kwh_at_notice``.
    """

    departure: datetime | None = None
    energy_kwh: float | None = None
    delivered_kwh_at_notice: float = 0.0
    max_current_a: float | None = None


@dataclass(frozen=True)
class PastSession:
    id_tag: str
    arrival: datetime
    departure: datetime
    energy_kwh: float


@dataclass(frozen=True)
class DepartureEstimate:
    departure: datetime
    source: Source


@dataclass(frozen=True)
class EnergyEstimate:
    remaining_kwh: float
    total_kwh: float
    source: Source


@dataclass
class TagHistory:
    """The last ``per_tag`` sessions of each idTag; medians once ``min_sessions`` exist."""

    per_tag: int = 20
    min_sessions: int = 2
    _by_tag: dict[str, deque[PastSession]] = field(default_factory=dict)

    def record(self, session: PastSession) -> None:
        if session.departure <= session.arrival or session.energy_kwh < 0:
            return  # a broken record teaches nothing
        q = self._by_tag.setdefault(session.id_tag, deque(maxlen=self.per_tag))
        q.append(session)

    def sessions(self, id_tag: str) -> tuple[PastSession, ...]:
        return tuple(self._by_tag.get(id_tag, ()))

    def dwell(self, id_tag: str) -> timedelta | None:
        s = self._by_tag.get(id_tag, ())
        if len(s) < self.min_sessions:
            return None
        return timedelta(
            seconds=statistics.median((x.departure - x.arrival).total_seconds() for x in s)
        )

    def energy_kwh(self, id_tag: str) -> float | None:
        s = self._by_tag.get(id_tag, ())
        if len(s) < self.min_sessions:
            return None
        return float(statistics.median(x.energy_kwh for x in s))

    def export(self) -> list[dict[str, Any]]:
        return [
            {
                "id_tag": x.id_tag,
                "arrival": x.arrival.isoformat(),
                "departure": x.departure.isoformat(),
                "energy_kwh": x.energy_kwh,
            }
            for q in self._by_tag.values()
            for x in q
        ]

    @classmethod
    def from_export(
        cls, records: Sequence[Mapping[str, Any]], per_tag: int = 20, min_sessions: int = 2
    ) -> TagHistory:
        h = cls(per_tag=per_tag, min_sessions=min_sessions)
        try:
            for r in records:
                h.record(
                    PastSession(
                        str(r["id_tag"]),
                        datetime.fromisoformat(r["arrival"]),
                        datetime.fromisoformat(r["departure"]),
                        float(r["energy_kwh"]),
                    )
                )
        except (KeyError, TypeError, ValueError) as e:
            raise InvalidRecord(f"bad session history record: {e}") from None
        return h


def estimate_departure(
    arrival: datetime,
    now: datetime,
    *,
    id_tag: str | None = None,
    needs: EvNeeds | None = None,
    history: TagHistory | None = None,
    defaults: DemandDefaults = DemandDefaults(),
) -> DepartureEstimate:
    """When the car will leave (`still_plugged_in` once past it)."""
    if needs is not None and needs.departure is not None and needs.departure > arrival:
        dep, src = needs.departure.astimezone(UTC), Source.EV
    else:
        dwell = history.dwell(id_tag) if history is not None and id_tag else None
        if dwell is not None:
            dep, src = arrival + dwell, Source.HISTORY
        else:
            dep, src = arrival + timedelta(hours=defaults.dwell_hours), Source.DEFAULT
    return DepartureEstimate(still_plugged_in(dep, now, defaults), src)


def still_plugged_in(departure: datetime, now: datetime, defaults: DemandDefaults) -> datetime:
    """When a car expected to leave at ``departure`` leaves, seen at ``now``: until
    then, at that time (the planner makes the most of the last minutes); a car
    still plugged in after it stays ``overstay_hours`` longer."""
    if departure > now + LAST_MINUTE:
        return departure
    return now + timedelta(hours=defaults.overstay_hours)


def still_wanted_kwh(estimate_kwh: float, delivered_kwh: float, defaults: DemandDefaults) -> float:
    """What an estimated need leaves to deliver: at least a top-up, as the car
    may want more than estimated (one that does not stops drawing)."""
    return max(estimate_kwh - delivered_kwh, defaults.topup_kwh)


def estimate_energy(
    *,
    delivered_kwh: float = 0.0,
    id_tag: str | None = None,
    needs: EvNeeds | None = None,
    history: TagHistory | None = None,
    defaults: DemandDefaults = DemandDefaults(),
) -> EnergyEstimate:
    """Energy the car still needs, given what the session delivered so far."""
    if needs is not None and needs.energy_kwh is not None:
        since = max(delivered_kwh - needs.delivered_kwh_at_notice, 0.0)
        total = needs.delivered_kwh_at_notice + needs.energy_kwh
        return EnergyEstimate(max(needs.energy_kwh - since, 0.0), total, Source.EV)
    hist = history.energy_kwh(id_tag) if history is not None and id_tag else None
    if hist is not None:
        return EnergyEstimate(max(hist - delivered_kwh, 0.0), hist, Source.HISTORY)
    total = defaults.energy_kwh
    return EnergyEstimate(max(total - delivered_kwh, 0.0), total, Source.DEFAULT)


# --- the rate a car really takes ----------------------------------------------------


@dataclass(frozen=True)
class RateSettings:
    """How meter values teach the current a car really takes. The service and
    the simulator use the same rules, so a simulation measures the service."""

    margin_a: float = 2.0
    """A reading this much under the offer is low..."""
    confirm: int = 2
    """...and after this many low readings in a row the last one is the car's rate."""
    headroom_a: float = 1.0
    """The planner counts on the rate plus this, so that a car that takes more
    again can show it..."""
    release_a: float = 0.8
    """...by drawing this much over its rate: the rate goes. Once a rate is
    known, a reading this much under it (and under the offer) is low too: the
    car is falling."""
    line_on_a: float = 1.0
    """A line drawing less than this is not loaded by the car (and a car drawing
    less on every line is idle: full, or stopped by itself)..."""
    line_min_a: float = 4.0
    """...judged only from readings where the car draws at least this."""
    recheck_after: timedelta = timedelta(hours=1)
    """An idle car is planned at nothing; this long after it was last seen idle
    it is planned at its headroom again, so it can show it wants more."""

    def __post_init__(self) -> None:
        if self.confirm < 1:
            raise ValueError("confirm must be ≥ 1")
        if not 0 < self.release_a <= self.headroom_a:
            raise ValueError("need 0 < release_a ≤ headroom_a (a car must be able to show more)")


@dataclass
class RateLearner:
    """What one car takes, learned from its meter readings: the current it draws
    when it draws less than offered (a car's own maximum, a battery tapering
    off, a full battery) and the lines it loads (a 1-phase car on a 3-phase
    connector). One odd reading changes nothing; a car that takes more again
    shows it at the next reading and gets its room back."""

    wired: tuple[Line, ...] = LINES
    settings: RateSettings = RateSettings()
    rate_a: float | None = None
    """The current it was last seen taking when offered more (None: all it is offered)."""
    lines: tuple[Line, ...] | None = None
    """The lines it loads, if fewer than the wired ones."""
    _low: int = 0
    _idle_at: datetime | None = None
    _recheck: bool = False
    _line_candidate: tuple[Line, ...] | None = None
    _line_votes: int = 0

    @property
    def max_current_a(self) -> float | None:
        """What the planner counts on the car taking at most (None: no limit known)."""
        if self.rate_a is None:
            return None
        if self.idle and not self._recheck:
            return 0.0
        return _tenth_up(self.rate_a + self.settings.headroom_a)

    @property
    def idle(self) -> bool:
        """Seen taking nothing when offered current (full, or stopped by itself)."""
        return self.rate_a is not None and self.rate_a < self.settings.line_on_a

    @property
    def low_readings(self) -> int:
        """Low readings in a row so far."""
        return self._low

    def offer_changed(self) -> None:
        """A new offer is in force: readings under the old one no longer count as low."""
        self._low = 0

    def observe(
        self,
        current_a: Mapping[Line, float],
        offered_a: float,
        drawn_a: float | None = None,
        *,
        at: datetime,
        readings: int = 1,
    ) -> bool:
        """One meter reading at ``at``: per-line currents (or, without them,
        ``drawn_a`` on its most loaded line) while offered ``offered_a``; it
        stands for ``readings`` identical ones in a row (a simulator's step
        spans several meter intervals). True if what the planner should count
        on changed."""
        before = (self.max_current_a, self.lines)
        if current_a:
            drawn_a = max(current_a.values())
            self._learn_lines(current_a, drawn_a)
        if drawn_a is not None:
            self._learn_rate(at, offered_a, drawn_a, max(readings, 1))
        return (self.max_current_a, self.lines) != before

    def _learn_rate(self, at: datetime, offered_a: float, drawn_a: float, readings: int) -> None:
        s = self.settings
        if self.rate_a is not None and drawn_a >= self.rate_a + s.release_a:
            self.rate_a, self._low, self._recheck = None, 0, False  # it takes more again
            return
        if self.idle and self._idle_at is not None:
            if offered_a > 0:
                self._idle_at, self._recheck = at, False  # offered some, still idle
            elif at - self._idle_at >= s.recheck_after:
                self._recheck = True
        # under its rate, and not because the offer was lower
        falling = self.rate_a is not None and drawn_a < min(self.rate_a, offered_a) - s.release_a
        if not (offered_a > 0 and (drawn_a < offered_a - s.margin_a or falling)):
            self._low = 0
            return
        self._low += readings
        if self._low < s.confirm:
            return
        self.rate_a = max(drawn_a, 0.0)
        if self.idle:
            self._idle_at, self._recheck = at, False

    def _learn_lines(self, current_a: Mapping[Line, float], drawn_a: float) -> None:
        s = self.settings
        if len(self.wired) < 2:
            return
        loaded = tuple(x for x in self.wired if current_a.get(x, 0.0) >= s.line_on_a)
        if self.lines is not None and any(x not in self.lines for x in loaded):
            # it loads more lines: count them all at once
            self.lines, self._line_candidate, self._line_votes = None, None, 0
            return
        if not loaded or len(loaded) == len(self.wired) or drawn_a < s.line_min_a:
            self._line_candidate, self._line_votes = None, 0
            return
        if loaded == self.lines:
            return
        if loaded == self._line_candidate:
            self._line_votes += 1
        else:
            self._line_candidate, self._line_votes = loaded, 1
        if self._line_votes >= s.confirm:
            self.lines, self._line_candidate, self._line_votes = loaded, None, 0


def _tenth_up(a: float) -> float:
    """Up to the next 0.1 A (the resolution of an OCPP limit)."""
    return math.ceil(round(a * 10, 6)) / 10
