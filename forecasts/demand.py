"""Demand side estimates: when a car leaves, how much energy it still needs,
and the current it really takes.

Everything here is pure: the caller passes the clock reading, the history and
the meter readings. Sources of an estimate, best first: what the EV itself
said (OCPP 2.0.1 NotifyEVChargingNeeds), the idTag's own history, the site's
defaults.
"""

from __future__ import annotations

import statistics
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

from forecasts.errors import InvalidRecord
from optimizer.site import LINES, Line


class Source(StrEnum):
    EV = "EV"
    HISTORY = "HISTORY"
    DEFAULT = "DEFAULT"


@dataclass(frozen=True)
class DemandDefaults:
    """What to assume of a session that states nothing (the site's ``[defaults]``)."""

    dwell_hours: float = 8.0
    energy_kwh: float = 20.0


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
    min_ahead: timedelta = timedelta(minutes=15),
) -> DepartureEstimate:
    """When the car will leave. A car still plugged in past its estimate is
    assumed to stay at least ``min_ahead`` longer."""
    if needs is not None and needs.departure is not None and needs.departure > arrival:
        dep, src = needs.departure.astimezone(UTC), Source.EV
    else:
        dwell = history.dwell(id_tag) if history is not None and id_tag else None
        if dwell is not None:
            dep, src = arrival + dwell, Source.HISTORY
        else:
            dep, src = arrival + timedelta(hours=defaults.dwell_hours), Source.DEFAULT
    return DepartureEstimate(max(dep, now + min_ahead), src)


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
class CurrentReading:
    """Per-line current measured at a connector, and the limit offered then."""

    time: datetime
    current_a: Mapping[Line, float]
    offered_a: float


@dataclass(frozen=True)
class RateEstimate:
    lines: tuple[Line, ...]
    """Lines the car loads (the connector's wiring until learned)."""
    max_current_a: float | None
    """Most current the car takes per line, if it took less than offered; else None."""
    drawn_a: float
    """Current on its most loaded line at the last reading."""
    suspended: bool
    """The car took (almost) nothing for several readings though offered current."""


@dataclass
class RateEstimator:
    """Learns from meter values which lines a car loads and the current it
    really takes, with hysteresis so one odd reading changes nothing.

    * A line is in use above ``on_a``, out of use below ``off_a``; a new line
      set is adopted after ``confirm`` consecutive readings agree (only while
      the car draws at all).
    * A cap is learned when the car draws more than ``margin_a`` under the
      offer for ``confirm`` readings: the most it drew then plus ``headroom_a``.
      It is released when the car comes within ``headroom_a / 2`` of the cap
      (it might take more).
    """

    wired: tuple[Line, ...] = LINES
    on_a: float = 1.5
    off_a: float = 0.5
    confirm: int = 3
    margin_a: float = 2.0
    headroom_a: float = 0.5
    min_offer_a: float = 6.0
    _lines: tuple[Line, ...] | None = None
    _candidate: tuple[Line, ...] | None = None
    _candidate_n: int = 0
    _cap: float | None = None
    _under: list[float] = field(default_factory=list)
    _idle_n: int = 0
    _last: float = 0.0

    def _used(self, reading: CurrentReading) -> tuple[Line, ...]:
        current = self._lines or ()
        used = []
        for line in self.wired:
            a = reading.current_a.get(line, 0.0)
            if a >= self.on_a or (line in current and a > self.off_a):
                used.append(line)
        return tuple(used)

    def update(self, reading: CurrentReading) -> RateEstimate:
        wired_a = [reading.current_a.get(line, 0.0) for line in self.wired]
        drawn = max(wired_a) if wired_a else 0.0
        self._last = drawn
        drawing = drawn >= self.on_a
        if drawing:
            self._idle_n = 0
            used = self._used(reading)
            if used != self._lines:
                if used == self._candidate:
                    self._candidate_n += 1
                else:
                    self._candidate, self._candidate_n = used, 1
                if self._candidate_n >= self.confirm:
                    self._lines, self._candidate, self._candidate_n = used, None, 0
            else:
                self._candidate, self._candidate_n = None, 0
            if self._cap is not None and drawn >= self._cap - self.headroom_a / 2:
                self._cap = None
                self._under.clear()
            elif reading.offered_a - drawn > self.margin_a:
                self._under.append(drawn)
                if len(self._under) >= self.confirm:
                    self._cap = max(self._under) + self.headroom_a
                    self._under.clear()
            else:
                self._under.clear()
        else:
            self._under.clear()
            if reading.offered_a >= self.min_offer_a:
                self._idle_n += 1
        return self.estimate()

    def estimate(self) -> RateEstimate:
        return RateEstimate(
            lines=self._lines or self.wired,
            max_current_a=self._cap,
            drawn_a=self._last,
            suspended=self._idle_n >= self.confirm,
        )
