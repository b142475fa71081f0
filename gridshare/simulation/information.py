"""What the planner is not told, piece by piece.

The realistic simulation shows the planner what drivers stated (or the
service's defaults when they stated nothing); the offline optimum knows when
every car really leaves and what it really takes. `told` swaps in some of the
truth and leaves the rest as stated, so `run_told` can measure what each piece
of missing information costs the online planner: cars that stayed past the
departure they stated (the planner rushed them), cars that left before it (the
planner left them for later), and energies.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from typing import Literal

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
    )
    result = variant.run(GridshareStrategy())
    result.extra["told"] = name
    return result
