"""An offline bound in ``acnsim``'s own terms, and a replay of its schedule.

acnsim has no offline optimum. `offline_bound` builds one from what the
simulator itself is given: its network's ``infrastructure_info()`` (every
constraint with its phase angles, read as `site_from_infrastructure` reads it
for `GridshareAlgorithm`, so the limits are acnsim's exact phasor magnitudes),
the EVs with their arrival, real departure and real energy, and its period. It
is gridshare's offline optimum (`gridshare.simulation.strategies.offline_optimum`:
one LP per busy period, cutting planes on every phasor sum) with perfect
knowledge, ideal batteries and continuous pilots from 0 A to each station's
maximum: no algorithm delivers more in the simulator, whatever pilots its
stations take (a relaxation where they take a discrete set).

`FixedSchedule` plays that schedule back in acnsim, each pilot floored to one
the station accepts, so the simulator itself checks it: on continuous stations
it delivers the bound.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from acnportal.algorithms import BaseAlgorithm

from gridshare.integrations.acnportal import site_from_infrastructure
from gridshare.simulation.engine import Simulation
from gridshare.simulation.ideal import IDEAL_CAR, ideal_site
from gridshare.simulation.sessions import SimSession
from gridshare.simulation.strategies import offline_optimum

START = datetime(2000, 1, 1, tzinfo=UTC)
"""Period 0 of the simulator, for the bound's clock."""


@dataclass(frozen=True)
class OfflineBound:
    kwh: float
    """The LP's optimum: the most energy any algorithm delivers to these EVs."""
    requested_kwh: float
    pilots: dict[str, dict[int, float]]
    """Session id → simulator period → current (A) of the bound's schedule."""
    solve_ms: float
    periods: int
    """Busy periods (no car plugged in between them), one LP each."""

    @property
    def percent(self) -> float:
        """% of the requested energy, as acnsim's ``proportion_of_energy_delivered``."""
        return 100.0 * self.kwh / self.requested_kwh if self.requested_kwh > 0 else 100.0


def offline_bound(info: Any, evs: list[Any], period_minutes: int) -> OfflineBound:
    """The offline bound of ``evs`` (acnsim EVs, before they are simulated) on
    the network of ``info`` (an ``InfrastructureInfo``)."""
    site = ideal_site(site_from_infrastructure(info, period_minutes=period_minutes))
    step = timedelta(minutes=period_minutes)
    sessions = [
        SimSession(
            session_id=str(ev.session_id),
            connector_id=f"{ev.station_id}/1",
            arrival=START + int(ev.arrival) * step,
            departure=START + int(ev.departure) * step,
            energy_kwh=float(ev.requested_energy),
        )
        for ev in evs
    ]
    requested = math.fsum(s.energy_kwh for s in sessions)
    if not sessions:
        return OfflineBound(0.0, 0.0, {}, 0.0, 0)
    sim = Simulation(site, sessions, car=IDEAL_CAR, step_minutes=period_minutes)
    schedule, kwh, ms, periods = offline_optimum(sim)
    pilots: dict[str, dict[int, float]] = {}
    for i, s in enumerate(sim.sessions):
        first = int((s.arrival - START) / step)
        pilots[s.session_id] = {first + j: float(a) for j, a in enumerate(schedule[i])}
    return OfflineBound(min(kwh, requested), requested, pilots, sum(ms), periods)


class FixedSchedule(BaseAlgorithm):
    """An acnsim algorithm that plays given pilots (session id → period →
    A), each floored to a pilot its station accepts (0 below its minimum)."""

    def __init__(self, pilots: dict[str, dict[int, float]]) -> None:
        super().__init__()
        self.pilots = pilots
        self.max_recompute = 1  # called every period
        self._steps: dict[str, tuple[bool, list[float]]] | None = None

    def register_interface(self, interface: Any) -> None:
        super().register_interface(interface)
        self._steps = None  # a new simulator: its stations are read again

    def schedule(self, active_sessions: list[Any]) -> dict[str, list[float]]:
        if self._steps is None:
            self._steps = pilot_steps(self.interface.infrastructure_info())
        now = int(self.interface.current_time)
        out: dict[str, list[float]] = {}
        for s in active_sessions:
            amps = self.pilots.get(str(s.session_id), {}).get(now, 0.0)
            out[s.station_id] = [floor_pilot(self._steps[s.station_id], amps)]
        return out


def pilot_steps(info: Any) -> dict[str, tuple[bool, list[float]]]:
    """Per station, whether its pilots are continuous and the pilots it accepts
    (continuous: [minimum, maximum]; else the sorted set, 0 included)."""
    out: dict[str, tuple[bool, list[float]]] = {}
    for i, sid in enumerate(info.station_ids):
        top = float(info.max_pilot[i])
        if bool(info.is_continuous[i]):
            out[str(sid)] = (True, [min(float(info.min_pilot[i]), top), top])
        else:
            out[str(sid)] = (False, sorted({0.0, *(float(a) for a in info.allowable_pilots[i])}))
    return out


def floor_pilot(steps: tuple[bool, list[float]], amps: float) -> float:
    """The highest pilot the station accepts at most ``amps`` (0 below them all)."""
    continuous, pilots = steps
    if continuous:
        low, top = pilots
        amps = min(amps, top)
        return amps if amps >= low and amps > 0 else 0.0
    return max((a for a in pilots if a <= amps + 1e-6), default=0.0)
