"""The offline bound in acnsim's own terms: its schedule, replayed in acnsim,
breaks no constraint acnsim checks and delivers the bound on continuous
stations; no algorithm delivers more."""

from __future__ import annotations

import warnings
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import pytest

acnsim = pytest.importorskip("acnportal.acnsim")

from acnportal import algorithms  # noqa: E402
from acnportal.acnsim.interface import SessionInfo  # noqa: E402

from gridshare.integrations.acnbound import (  # noqa: E402
    FixedSchedule,
    OfflineBound,
    floor_pilot,
    offline_bound,
    pilot_steps,
)
from gridshare.integrations.acnportal import (  # noqa: E402
    GridshareAlgorithm,
    acn_evs,
    infeasible_periods,
)
from gridshare.simulation.sessions import between, read_acn  # noqa: E402
from optimizer.prepare import prepare  # noqa: E402
from tests.simulation.helpers import JPL_SESSIONS  # noqa: E402

LA = ZoneInfo("America/Los_Angeles")
DAY = date(2019, 5, 7)
START = datetime.combine(DAY, datetime.min.time(), LA)


def _evs(network: Any, until_hour: int) -> list[Any]:
    """The EVs of ``DAY`` that arrive before ``until_hour`` (a short run)."""
    sessions = between(read_acn(JPL_SESSIONS), DAY, DAY, "America/Los_Angeles")
    cut = START + timedelta(hours=until_hour)
    return acn_evs([s for s in sessions if s.arrival < cut], START, 5, network.station_ids)


def _run(
    algorithm: Any, cap_kw: float, basic: bool, until_hour: int = 24
) -> tuple[Any, int, OfflineBound]:
    """(simulator after the run, schedules acnsim warned about, the offline
    bound); a `FixedSchedule` with no pilots plays the bound's."""
    network = acnsim.sites.jpl_acn(third_fourth_transformer_cap=cap_kw, basic_evse=basic)
    evs = _evs(network, until_hour)
    queue = acnsim.EventQueue([acnsim.PluginEvent(ev.arrival, ev) for ev in evs])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        sim = acnsim.Simulator(network, algorithm, queue, START, period=5, verbose=False)
        bound = offline_bound(sim.scheduler.interface.infrastructure_info(), evs, 5)
        if isinstance(algorithm, FixedSchedule) and not algorithm.pilots:
            algorithm.pilots = bound.pilots
        sim.run()
    return sim, sum("Invalid schedule" in str(w.message) for w in caught), bound


@pytest.mark.parametrize("basic", [True, False])
def test_the_bound_replayed_in_acnsim_breaks_nothing(basic: bool) -> None:
    sim, invalid, bound = _run(FixedSchedule({}), 30.0, basic, until_hour=9)
    assert invalid == 0 and infeasible_periods(sim) == 0
    delivered = acnsim.analysis.total_energy_delivered(sim)
    assert bound.requested_kwh == pytest.approx(acnsim.analysis.total_energy_requested(sim))
    # demand exceeds 30 kW that morning: the bound leaves some unmet
    assert 0.5 * bound.requested_kwh < bound.kwh < bound.requested_kwh
    if basic:  # continuous stations take the bound's currents as they are
        assert delivered == pytest.approx(bound.kwh, rel=1e-5)
    else:  # floored to 0, 6-32 A: feasible, a little below
        assert 0.95 * bound.kwh < delivered <= bound.kwh + 1e-6
    # the transformer runs at its exact limit, not at the magnitudes summed
    network = sim.network
    currents = np.abs(network.constraint_current(np.asarray(sim.pilot_signals)))
    names = list(network.constraint_index)
    sec = [i for i, c in enumerate(names) if "Third/Fourth" in c and "Secondary" in c]
    use = (currents[sec] / np.asarray(network.magnitudes)[sec, None]).max()
    assert 0.98 < use <= 1.0 + 1e-6


@pytest.mark.slow
def test_no_algorithm_delivers_more_than_the_bound() -> None:
    sim, _, b = _run(FixedSchedule({}), 30.0, False, until_hour=9)
    bound = b.kwh
    assert acnsim.analysis.total_energy_delivered(sim) <= bound + 1e-6
    for algo in (
        GridshareAlgorithm(),
        algorithms.SortedSchedulingAlgo(algorithms.earliest_deadline_first),
    ):
        other, invalid, _ = _run(algo, 30.0, False, until_hour=9)
        assert invalid == 0 and infeasible_periods(other) == 0
        assert acnsim.analysis.total_energy_delivered(other) <= bound + 1e-6


def test_pilots_are_floored_to_what_the_station_takes() -> None:
    network = acnsim.sites.jpl_acn(basic_evse=False)
    sim = acnsim.Simulator(network, FixedSchedule({}), acnsim.EventQueue(), START, period=5)
    steps = pilot_steps(sim.scheduler.interface.infrastructure_info())
    av = steps[network.station_ids[0]]
    assert av == (False, [0.0, *map(float, range(6, 33))])
    assert floor_pilot(av, 17.9) == 17.0
    assert floor_pilot(av, 5.99) == 0.0
    assert floor_pilot(av, 99.0) == 32.0
    assert floor_pilot((True, [0.0, 32.0]), 17.9) == 17.9
    assert floor_pilot((True, [6.0, 32.0]), 5.0) == 0.0
    assert floor_pilot((True, [0.0, 32.0]), 40.0) == 32.0


def test_known_departures_plan_without_the_evenness_hedge() -> None:
    network = acnsim.sites.jpl_acn(third_fourth_transformer_cap=30.0)
    evs = _evs(network, 9)
    queue = acnsim.EventQueue([acnsim.PluginEvent(ev.arrival, ev) for ev in evs])
    known, hedged = GridshareAlgorithm(), GridshareAlgorithm(departures_known=False)
    for algo in (known, hedged):
        acnsim.Simulator(network, algo, queue, START, period=5, verbose=False)
    active = [
        SessionInfo(
            ev.station_id, ev.session_id, ev.requested_energy, 0.0, ev.arrival, ev.departure,
            current_time=max(e.arrival for e in evs),
        )
        for ev in evs
        if ev.departure > max(e.arrival for e in evs)
    ]  # fmt: skip
    assert len(active) > 5
    a, b = known.problem(active), hedged.problem(active)
    assert (a.even_rates, b.even_rates) == (False, True)
    assert prepare(a).n_col < prepare(b).n_col  # no evenness pieces
