"""What the planner is not told, piece by piece.

The realistic simulation shows the planner what drivers stated (or the
service's defaults when they stated nothing); the offline optimum knows when
every car really leaves and what it really takes. `told` swaps in some of the
truth and leaves the rest as stated, so `run_told` can measure what each piece
of missing information costs the online planner: cars that stayed past the
departure they stated (the planner rushed them), cars that left before it (the
planner left them for later), and energies. `statements` and `calibrated`
correct what drivers state by what such statements meant on other months
(`forecasts.demand.StatementCalibration`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from datetime import timedelta
from typing import Literal
from zoneinfo import ZoneInfo

from forecasts.demand import DemandDefaults, Statement, StatementCalibration
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
