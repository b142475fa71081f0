"""What the planner is not told, piece by piece.

The realistic simulation shows the planner what drivers stated (or the
service's defaults when they stated nothing); the offline optimum knows when
every car really leaves and what it really takes. `told` swaps in some of the
truth and leaves the rest as stated, so `run_told` can measure what each piece
of missing information costs the online planner: cars that stayed past the
departure they stated (the planner rushed them), cars that left before it (the
planner left them for later), and energies. `statements` and `calibrated`
correct what drivers state by what such statements meant on other months
(`StatementCalibration`): measured on held-out months it does not help the
planner (README, "The realistic gap"), so it stays a study, not the service's.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Literal
from zoneinfo import ZoneInfo

from forecasts.demand import DemandDefaults
from gridshare.simulation.engine import RunResult, Simulation
from gridshare.simulation.sessions import SimSession
from gridshare.simulation.strategies import GridshareStrategy

Departures = Literal["stated", "real", "real-if-later", "real-if-earlier"]
Energies = Literal["stated", "real"]

TOLD: dict[str, tuple[Departures, Energies]] = {
    "as stated": ("stated", "stated"),
    "real departure if later than stated": ("real-if-later", "stated"),
    "real departure if earlier than stated": ("real-if-earlier", "stated"),
    "real departures": ("real", "stated"),
    "real energies": ("stated", "real"),
    "real departures and energies": ("real", "real"),
}
"""The runs of an information study: what the planner is told beyond what drivers stated."""


def told(
    sessions: Iterable[SimSession],
    *,
    departures: Departures = "stated",
    energies: Energies = "stated",
    dwell_hours: float = DemandDefaults.dwell_hours,
) -> list[SimSession]:
    """The sessions with some of the truth stated. ``real-if-later``: the real
    departure of cars that stayed past what they stated (or past ``dwell_hours``
    when they stated nothing, the service's default), the stated one otherwise;
    ``real-if-earlier``: of cars that left before it. Call it on sessions
    already snapped to the step grid, so a stated real departure is the
    simulated one."""
    out = []
    for s in sessions:
        real_is_later = s.departure > s.departure_told(dwell_hours)
        if departures == "real" or (
            departures != "stated" and real_is_later == (departures == "real-if-later")
        ):
            s = replace(s, stated_departure=s.departure)
        if energies == "real":
            s = replace(s, stated_energy_kwh=s.energy_kwh)
        out.append(s)
    return out


def run_told(sim: Simulation, name: str) -> RunResult:
    """gridshare on ``sim``'s site and sessions, told what `TOLD` ``name`` says."""
    departures, energies = TOLD[name]
    sessions = told(
        sim.sessions, departures=departures, energies=energies, dwell_hours=sim.defaults.dwell_hours
    )
    variant = Simulation(
        sim.site,
        sessions,
        limits=sim.limits,
        car=sim.car,
        defaults=sim.defaults,
        site_load=sim.site_load,
        pv=sim.pv,
    )
    result = variant.run(GridshareStrategy())
    result.extra["told"] = name
    return result


def statements(sessions: Iterable[SimSession], timezone: str) -> list[Statement]:
    """What the drivers who stated both a departure and an energy stated, and
    what happened (for `StatementCalibration.fit`)."""
    tz = ZoneInfo(timezone)
    return [
        Statement(
            s.arrival.astimezone(tz),
            (s.stated_departure - s.arrival).total_seconds() / 3600,
            (s.departure - s.arrival).total_seconds() / 3600,
            s.stated_energy_kwh,
            s.energy_kwh,
        )
        for s in sessions
        if s.stated_departure is not None and s.stated_energy_kwh is not None
    ]


def calibrated(
    sessions: Iterable[SimSession],
    calibration: StatementCalibration,
    timezone: str,
    *,
    departures: bool = True,
    energies: bool = True,
) -> list[SimSession]:
    """The sessions with what their drivers stated corrected by ``calibration``
    (a session that stated nothing keeps the service's defaults)."""
    tz = ZoneInfo(timezone)
    out = []
    for s in sessions:
        if departures and s.stated_departure is not None:
            stated_h = (s.stated_departure - s.arrival).total_seconds() / 3600
            hours = calibration.dwell_h(s.arrival.astimezone(tz), stated_h)
            s = replace(s, stated_departure=s.arrival + timedelta(hours=hours))
        if energies and s.stated_energy_kwh is not None:
            s = replace(s, stated_energy_kwh=calibration.energy_kwh(s.stated_energy_kwh))
        out.append(s)
    return out


# --- what drivers state, calibrated ------------------------------------------------


@dataclass(frozen=True)
class Statement:
    """One past session: what its driver stated at arrival and what happened
    (local arrival time, so the day type and hour are the driver's)."""

    arrival_local: datetime
    stated_dwell_h: float
    real_dwell_h: float
    stated_kwh: float
    real_kwh: float


DWELL_EDGES_H = (4.0, 6.0, 8.0, 9.0, 10.0, 12.0)
"""Stated-stay classes (hours): drivers who state a short stay overstay it more."""
ARRIVAL_EDGES_H = (7.0, 9.0, 12.0)
"""Arrival-hour classes (local): early, the morning rush, late morning, afternoon."""
KWH_EDGES = (10.0, 20.0, 30.0, 50.0, 80.0)
"""Stated-energy classes (kWh): the more a driver asks, the smaller the share taken."""


def _class(value: float, edges: Sequence[float]) -> int:
    return sum(value > e for e in edges)


@dataclass(frozen=True)
class StatementCalibration:
    """What drivers state, corrected by what such statements turned out to mean:
    a stay is moved by a quantile (``quantile``; the median by default) of
    (real − stated) over past stays of its class (day type, arrival hour,
    stated stay), an energy scaled by the (1 − ``quantile``) quantile of
    real / stated of its stated-energy class (a low quantile: stays shifted
    and energies cut less, the cautious side). A class with fewer than
    ``min_sessions`` past sessions uses its coarser class (stated stay alone,
    then every stay). Learned on some months, applied to others."""

    shift_h: Mapping[tuple[int, ...], float]
    energy_ratio: Mapping[int, float]
    min_sessions: int = 20

    @classmethod
    def fit(
        cls, past: Sequence[Statement], min_sessions: int = 20, quantile: float = 0.5
    ) -> StatementCalibration:
        shifts: dict[tuple[int, ...], list[float]] = {}
        ratios: dict[int, list[float]] = {}
        for s in past:
            if s.stated_dwell_h <= 0 or s.stated_kwh <= 0:
                continue
            for key in _dwell_keys(s.arrival_local, s.stated_dwell_h):
                shifts.setdefault(key, []).append(s.real_dwell_h - s.stated_dwell_h)
            ratios.setdefault(_class(s.stated_kwh, KWH_EDGES), []).append(s.real_kwh / s.stated_kwh)
        return cls(
            {k: _quantile(v, quantile) for k, v in shifts.items() if len(v) >= min_sessions},
            {k: _quantile(v, 1 - quantile) for k, v in ratios.items() if len(v) >= min_sessions},
            min_sessions,
        )

    def dwell_h(self, arrival_local: datetime, stated_dwell_h: float) -> float:
        """The stay to plan for a driver who states ``stated_dwell_h`` (at least
        a quarter of an hour)."""
        for key in _dwell_keys(arrival_local, stated_dwell_h):
            if key in self.shift_h:
                return max(stated_dwell_h + self.shift_h[key], 0.25)
        return stated_dwell_h

    def energy_kwh(self, stated_kwh: float) -> float:
        return stated_kwh * self.energy_ratio.get(_class(stated_kwh, KWH_EDGES), 1.0)


def _quantile(values: Sequence[float], q: float) -> float:
    """The ``q`` quantile of ``values`` (linear between order statistics)."""
    if q == 0.5:
        return float(statistics.median(values))
    ordered = sorted(values)
    pos = q * (len(ordered) - 1)
    lo = math.floor(pos)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def _dwell_keys(arrival_local: datetime, stated_dwell_h: float) -> tuple[tuple[int, ...], ...]:
    """The classes of a stay, finest first."""
    workday = int(arrival_local.weekday() < 5)
    hour = _class(arrival_local.hour + arrival_local.minute / 60, ARRIVAL_EDGES_H)
    stay = _class(stated_dwell_h, DWELL_EDGES_H)
    return ((workday, hour, stay), (stay,), ())
