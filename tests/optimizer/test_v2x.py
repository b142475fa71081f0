"""V2X in the planner (`optimizer.v2x`): a bidirectional car may be discharged
to serve others under a cut, reaches its energy by departure, never goes below
its driver's minimum, is not cycled for nothing, feeds back no more than the
export limit, and the dispatch counts a discharge only as far as confirmed."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from optimizer import Bidirectional, Capacity, SessionDemand, SolverStatus, TimeGrid, solve
from optimizer.highs_backend import solve_arrays
from optimizer.prepare import UNMET_WEIGHT, PreparedLP, prepare
from optimizer.problem import LimitWindow, PlanningProblem
from optimizer.v2x import NAME
from tests.optimizer.sites import NOW, problem, site_from


def depot(
    *, cut_a: float = 16.0, export_a: float | None = 0.0, limit_kw: float | None = None
) -> tuple:
    cons = [
        {"id": 1, "max_current_a": 32.0, "min_current_a": 6, "phases": ["L1"]},
        {"id": 2, "max_current_a": 32.0, "min_current_a": 6, "phases": ["L1"]},
        {"id": 3, "max_current_a": 32.0, "min_current_a": 6, "phases": ["L2"]},
    ]
    g: dict = {"id": "g", "limit_a": 64}
    if export_a is not None:
        g["export_limit_a"] = export_a
    if limit_kw is not None:
        g["limit_kw"] = 100
    site = site_from([g], [{"id": "C", "group": "g", "connectors": cons}])
    grid = TimeGrid.covering(NOW, 15, 6)
    end = NOW + timedelta(hours=2)
    cut = LimitWindow("g", None, end, limit_a=cut_a, limit_kw=limit_kw)
    return site, Capacity.static(site, grid).limited(grid, [cut])


def v2x_car(
    need: float = 5.0,
    *,
    min_kwh: float = -10.0,
    cost: float = 0.0,
    confirmed: float = 0.0,
    taper_kwh: float | None = None,
) -> SessionDemand:
    v = Bidirectional(32.0, min_kwh=min_kwh, cycle_cost_per_kwh=cost, confirmed_a=confirmed)
    end = NOW + timedelta(hours=6)
    return SessionDemand("a", "C/1", NOW, end, need, v2x=v, taper_kwh=taper_kwh)


def leaving(need: float = 14.0, connector: str = "C/2") -> SessionDemand:
    return SessionDemand("b", connector, NOW, NOW + timedelta(hours=2), need)


def lp_solution(p: PlanningProblem) -> tuple[PreparedLP, np.ndarray, np.ndarray]:
    lp = prepare(p)
    raw = solve_arrays(lp, 10.0)
    assert raw.x is not None and raw.extra is not None
    full = np.zeros(lp.n_col)
    full[: lp.n_x] = raw.x
    start = lp.n_col - len(raw.extra)
    full[start:] = raw.extra
    y = np.zeros(0)
    for e in lp.extras:
        if e.name == NAME:
            y = full[start : start + e.n_col]
        start += e.n_col
    return lp, full, y


def net_by_period(lp: PreparedLP, full: np.ndarray, y: np.ndarray, i: int) -> np.ndarray:
    """Net energy from now at the end of each period of session ``i`` (the only
    discharging one in these problems)."""
    s = lp.sessions[i]
    x = full[s.first_col : s.first_col + len(s.periods)]
    return np.cumsum(s.kwh_per_a * (x - y))


def unmet(lp: PreparedLP, full: np.ndarray) -> float:
    return float(full[lp.n_x : lp.n_x + lp.n_v].sum())


@pytest.mark.parametrize("taper_kwh", [None, 3.0])
def test_a_bidirectional_car_serves_one_leaving_under_a_cut(taper_kwh: float | None) -> None:
    """With a battery tail too: what it gives is charged back past its need's tail."""
    site, cap = depot()
    plain = SessionDemand("a", "C/1", NOW, NOW + timedelta(hours=6), 5.0)
    alone = solve(problem(site, [plain, leaving()], capacity=cap))
    car = v2x_car(taper_kwh=taper_kwh)
    lp, full, y = lp_solution(problem(site, [car, leaving()], capacity=cap))
    assert y.sum() > 0
    # the leaving car gets more than the cut alone allows, the other loses nothing
    assert unmet(lp, full) < alone.total_unmet_kwh - 1.0
    s = lp.sessions[0]
    assert net_by_period(lp, full, y, 0)[-1] == pytest.approx(s.demand.energy_kwh, abs=1e-6)
    if taper_kwh is not None:  # hours to charge back: its tail takes nothing off the gift
        _, _, free = lp_solution(problem(site, [v2x_car(), leaving()], capacity=cap))
        given = float(np.sum(y * s.kwh_per_a))
        assert given == pytest.approx(float(np.sum(free * s.kwh_per_a)), rel=1e-6)


def test_never_below_the_driver_s_minimum() -> None:
    site, cap = depot()
    for floor in (-10.0, -2.0, 0.0):
        lp, full, y = lp_solution(problem(site, [v2x_car(min_kwh=floor), leaving()], capacity=cap))
        assert net_by_period(lp, full, y, 0).min() >= floor - 1e-6
        assert np.all(y <= 32.0 + 1e-9)
    # below its minimum (positive floor): not discharged at all
    lp = prepare(problem(site, [v2x_car(min_kwh=1.0), leaving()], capacity=cap))
    assert not lp.extras


def test_not_discharged_under_a_weighted_limit() -> None:
    """A weighted limit (a transformer's primary) sums magnitudes: a discharge
    loads it as much as a charge, so such a car is not discharged."""
    cons = [{"id": i, "max_current_a": 32.0, "phases": ["L1"]} for i in (1, 2)]
    groups = [
        {"id": "g", "limit_a": 64},
        {"id": "w", "parent": "g", "limit_a": 40, "weights": {"C/1": 1.0}},
    ]
    site = site_from(groups, [{"id": "C", "group": "g", "connectors": cons}])
    assert not prepare(problem(site, [v2x_car(), leaving()])).extras
    plain_site = site_from(
        [{"id": "g", "limit_a": 64}], [{"id": "C", "group": "g", "connectors": cons}]
    )
    assert prepare(problem(plain_site, [v2x_car(), leaving()])).extras


def test_no_cycling_without_a_gain() -> None:
    site, cap = depot(cut_a=64.0)  # no cut: nobody needs the discharge
    _, _, y = lp_solution(problem(site, [v2x_car(), leaving()], capacity=cap))
    assert y.sum() == pytest.approx(0.0, abs=1e-9)
    # a degradation cost above what a kWh unmet costs: never worth it
    site, cap = depot()
    _, _, y = lp_solution(problem(site, [v2x_car(cost=2 * UNMET_WEIGHT), leaving()], capacity=cap))
    assert y.sum() == pytest.approx(0.0, abs=1e-9)


def test_the_export_limit_bounds_what_is_fed_back() -> None:
    # a kW cut: discharging on L1 frees kW for a car on L2, but feeds L1 back
    for export in (0.0, 5.0):
        site, cap = depot(cut_a=64.0, export_a=export, limit_kw=4.0)
        p = problem(site, [v2x_car(), leaving(connector="C/3")], capacity=cap)
        _, _, y = lp_solution(p)
        assert y.max() <= export + 1e-6
        if export:
            assert y.max() == pytest.approx(export, abs=1e-6)


def test_a_discharge_nobody_may_take_now_is_not_commanded() -> None:
    """A cut to 0: the LP pairs the discharge with the other car's charging, but
    until the station confirms it, the other car is given nothing, so the
    discharge now would be fed back to the grid: it is not sent."""
    site, cap = depot(cut_a=0.0)
    plan = solve(problem(site, [v2x_car(), leaving()], capacity=cap))
    assert plan.now_a("C/2") == 0.0
    assert plan.discharge_a.get("C/1", np.zeros(1))[0] == 0.0
    confirmed = solve(problem(site, [v2x_car(confirmed=16.0), leaving()], capacity=cap))
    assert confirmed.discharge_a["C/1"][0] == pytest.approx(confirmed.now_a("C/2"))
    assert confirmed.now_a("C/2") > 0


def test_the_dispatch_counts_a_discharge_only_as_confirmed() -> None:
    site, cap = depot()
    for confirmed in (0.0, 8.0, 16.0):
        plan = solve(problem(site, [v2x_car(confirmed=confirmed), leaving()], capacity=cap))
        commanded = plan.discharge_a["C/1"][0]
        assert commanded > 0
        charging = plan.now_a("C/1") + plan.now_a("C/2")
        assert charging <= 16.0 + min(commanded, confirmed) + 1e-9
        # later slots count no discharge the station did not accept for them
        assert np.all(plan.current_a[:, 1:8].sum(axis=0) <= 16.0 + 1e-9)
        assert plan.requested_kwh["a"] == pytest.approx(5.0)
    # a profile accepted with its discharge for the next hour: those slots count it
    car = v2x_car(confirmed=16.0)
    assert car.v2x is not None
    ahead = replace(car, v2x=replace(car.v2x, confirmed_ahead_a=(16.0,) * 3))
    plan = solve(problem(site, [ahead, leaving()], capacity=cap))
    charging = plan.current_a[:, :7].sum(axis=0)
    counted = np.minimum(plan.discharge_a["C/1"][:7], [16.0] * 4 + [0.0] * 3)
    assert np.all(charging <= 16.0 + counted + 1e-9)
    assert np.all(charging[1:4] > 16.0)


@settings(max_examples=25, deadline=None)
@given(
    need_a=st.floats(0.5, 20.0),
    need_b=st.floats(1.0, 20.0),
    cut=st.floats(0.0, 40.0),
    floor=st.floats(-15.0, 0.0),
    max_dis=st.floats(1.0, 32.0),
    confirmed=st.floats(0.0, 32.0),
)
def test_v2x_properties(
    need_a: float, need_b: float, cut: float, floor: float, max_dis: float, confirmed: float
) -> None:
    site, cap = depot(cut_a=round(cut, 1))
    v = Bidirectional(max_dis, min_kwh=floor, confirmed_a=confirmed)
    a = SessionDemand("a", "C/1", NOW, NOW + timedelta(hours=6), need_a, v2x=v)
    p = problem(site, [a, leaving(need_b)], capacity=cap)
    lp, full, y = lp_solution(p)
    net = net_by_period(lp, full, y, 0)
    assert net.min() >= floor - 1e-6
    assert np.all(y <= max_dis + 1e-6)
    # the bidirectional car still reaches its energy (it has hours at 64 A after the cut)
    assert net[-1] == pytest.approx(need_a, abs=1e-5)
    # the group's net never negative (no export), never above the cut
    xb = full[lp.sessions[1].first_col : lp.sessions[1].first_col + len(lp.sessions[1].periods)]
    xa = full[: len(lp.sessions[0].periods)]
    n = min(len(xb), len(xa))
    group_net = xa[:n] + xb[:n] - y[:n]
    assert group_net.min() >= -1e-6
    plan = solve(p)
    now = plan.now_a("C/1") + plan.now_a("C/2")
    commanded = float(plan.discharge_a.get("C/1", np.zeros(1))[0])
    assert now <= round(cut, 1) + min(commanded, confirmed) + 1e-6
    # as dispatched, nothing is fed back beyond the connection (export limit 0)
    assert commanded <= now + 1e-6


def test_both_backends_plan_a_discharge() -> None:
    site, cap = depot()
    p = problem(site, [v2x_car(taper_kwh=3.0), leaving()], capacity=cap)
    highs, pulp = solve(p), solve(p, backend="pulp")
    assert pulp.status is SolverStatus.OPTIMAL  # not the fallback: its discharge is known
    assert pulp.objective == pytest.approx(highs.objective, rel=1e-6)
    assert pulp.discharge_a["C/1"].sum() == pytest.approx(highs.discharge_a["C/1"].sum(), abs=0.5)
