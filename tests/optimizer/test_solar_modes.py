"""The solar charging modes: a ``solar`` session draws only the PV surplus (never
an import from the grid), a ``min+solar`` one its minimum and the surplus above,
in the LP and in the plan as dispatched, by both backends."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pytest

from optimizer import Capacity, Plan, SessionDemand, Site, TimeGrid, solve
from optimizer.errors import ProblemError
from optimizer.highs_backend import HighsPlanner
from optimizer.modes import ChargeMode
from optimizer.prepare import prepare
from optimizer.site import LINES, Line
from tests.optimizer.sites import NOW, problem, site_from

VOLTS = 230.0
KW_PER_A_3P = 3 * VOLTS / 1000


def _site(n: int = 3) -> Site:
    return site_from(
        [{"id": "grid", "limit_a": 100}, {"id": "panel", "parent": "grid", "limit_a": 80}],
        [
            {
                "id": f"CP{i}",
                "group": "panel",
                "connectors": [{"id": 1, "max_current_a": 32, "min_current_a": 6}],
            }
            for i in range(n)
        ],
    )


def _grid(site: Site) -> TimeGrid:
    return TimeGrid.covering(NOW, site.site.slot_minutes, site.site.horizon_hours)


def _cap(site: Site, net_per_line_a: np.ndarray | float) -> Capacity:
    """The connection's non-EV load per line (negative: the PV exports)."""
    n = _grid(site).slots
    arr = np.broadcast_to(np.asarray(net_per_line_a, float), (n,)).copy()
    return Capacity.static(site, _grid(site)).with_non_ev({"grid": {ln: arr for ln in LINES}})


def _car(i: int, mode: ChargeMode, kwh: float = 80.0) -> SessionDemand:
    end = NOW + timedelta(hours=6)
    return SessionDemand(f"s{i}", f"CP{i}/1", NOW, end, kwh, charge_mode=mode)


def _kw(plan: Plan, i: int) -> np.ndarray:
    return plan.schedule(f"CP{i}/1") * KW_PER_A_3P


def test_surplus_is_what_the_generation_leaves_after_the_building() -> None:
    site = _site()
    cap = _cap(site, -10.0)  # 10 A per line exported
    assert cap.surplus_a["grid"][0] == pytest.approx(30.0)
    assert np.all(cap.non_ev_a["grid"][Line.L1] == 0.0)  # a generator never raises a limit
    assert _cap(site, 4.0).surplus_a["grid"][0] == 0.0


@pytest.mark.parametrize("backend", ["highs", "pulp"])
def test_a_solar_session_draws_the_surplus_only(backend: str) -> None:
    site = _site()
    n = _grid(site).slots
    net = np.where(np.arange(n) < n // 2, -10.0, 3.0)  # surplus, then an import
    cars = [_car(0, ChargeMode.SOLAR), _car(1, ChargeMode.FAST)]
    plan = solve(problem(site, cars, capacity=_cap(site, net)), backend=backend)
    surplus_kw = np.maximum(-net, 0.0) * 3 * VOLTS / 1000
    assert np.all(_kw(plan, 0) <= surplus_kw + 1e-6)
    assert _kw(plan, 0)[0] == pytest.approx(surplus_kw[0], abs=0.1 * KW_PER_A_3P)
    assert np.all(_kw(plan, 0)[n // 2 :] == 0.0)  # no surplus: paused, not imported
    assert plan.schedule("CP1/1")[0] == pytest.approx(32.0)  # fast is unaffected


def test_solar_sessions_share_one_surplus() -> None:
    site = _site()
    cars = [_car(i, ChargeMode.SOLAR) for i in range(3)]
    plan = solve(problem(site, cars, capacity=_cap(site, -12.0)))
    total = np.sum([_kw(plan, i) for i in range(3)], axis=0)
    assert np.all(total <= 36 * VOLTS / 1000 + 1e-6)
    assert total[0] > 0.8 * 36 * VOLTS / 1000


def test_a_surplus_below_the_minimum_pauses_the_session() -> None:
    site = _site()
    plan = solve(problem(site, [_car(0, ChargeMode.SOLAR)], capacity=_cap(site, -1.0)))
    assert np.all(plan.schedule("CP0/1") == 0.0)  # 3 A of surplus: below its 6 A minimum


def test_without_a_known_surplus_a_solar_session_pauses() -> None:
    site = _site()
    cars = [_car(0, ChargeMode.SOLAR), _car(1, ChargeMode.FAST)]
    plan = solve(problem(site, cars))
    assert np.all(plan.schedule("CP0/1") == 0.0)
    assert plan.schedule("CP1/1")[0] > 0


def test_min_solar_gets_its_minimum_and_the_surplus_above() -> None:
    site = _site()
    none = solve(problem(site, [_car(0, ChargeMode.MIN_SOLAR)], capacity=_cap(site, 2.0)))
    assert none.schedule("CP0/1")[0] == pytest.approx(6.0)  # its minimum, from the grid
    some = solve(problem(site, [_car(0, ChargeMode.MIN_SOLAR)], capacity=_cap(site, -5.0)))
    assert some.schedule("CP0/1")[0] == pytest.approx(6.0 + 5.0, abs=0.15)


def test_min_solar_and_solar_share_the_surplus_above_the_minimum() -> None:
    site = _site()
    cars = [_car(0, ChargeMode.MIN_SOLAR), _car(1, ChargeMode.SOLAR), _car(2, ChargeMode.MIN_SOLAR)]
    cap = _cap(site, -9.0)  # 27 A summed over the lines: 9 A per line of a 3-phase car
    plan = solve(problem(site, cars, capacity=cap))
    now = [plan.schedule(f"CP{i}/1")[0] for i in range(3)]
    assert now[0] >= 6.0 - 1e-9 and now[2] >= 6.0 - 1e-9
    assert sum(now) <= 6.0 + 6.0 + 9.0 + 1e-6  # the minimums and the surplus, no more
    assert now[1] <= 9.0 + 1e-6
    assert sum(now) >= 6.0 + 6.0 + 9.0 - 0.5


def test_a_min_solar_car_that_is_full_leaves_its_minimum_to_no_one() -> None:
    site = _site()
    cars = [_car(0, ChargeMode.MIN_SOLAR), _car(1, ChargeMode.MIN_SOLAR, kwh=0.0)]
    plan = solve(problem(site, cars, capacity=_cap(site, 0.0)))
    assert plan.schedule("CP0/1")[0] == pytest.approx(6.0)


def test_modes_are_limit_families_of_the_lp() -> None:
    site = _site()
    cars = [_car(0, ChargeMode.SOLAR), _car(1, ChargeMode.MIN_SOLAR), _car(2, ChargeMode.FAST)]
    lp = prepare(problem(site, cars, capacity=_cap(site, -4.0)))
    names = {(f.group_id, f.quantity) for f in lp.families}
    assert {("grid", "solar"), ("grid", "min+solar"), ("grid", "min+solar s1")} <= names
    assert not any("s2" in q for _, q in names)
    fast = lp.sessions[2]
    assert all(lp.families[f].quantity in {"L1", "L2", "L3"} for f, _ in fast.families)


def test_a_surplus_of_the_wrong_shape_or_negative_is_refused() -> None:
    site = _site()
    cap = _cap(site, -4.0)
    for bad in (np.zeros(3), np.full(_grid(site).slots, -1.0), np.full(_grid(site).slots, np.nan)):
        wrong = Capacity(cap.limit_a, cap.limit_kw, cap.non_ev_a, {"grid": bad})
        with pytest.raises(ProblemError, match="PV surplus of grid"):
            problem(site, [_car(0, ChargeMode.SOLAR)], capacity=wrong)


def test_a_kept_planner_follows_modes_that_come_and_go() -> None:
    """Warm re-plans as sessions change mode: the modes' rows hold each time, and
    are gone once no session is in a solar mode (the plans of these LPs may
    differ from a cold solve's where the LP is indifferent)."""
    site = _site()
    cap = _cap(site, -7.0)  # 21 A summed: 7 A for a three-phase car
    with_modes = problem(
        site,
        [_car(0, ChargeMode.MIN_SOLAR), _car(1, ChargeMode.SOLAR), _car(2, ChargeMode.FAST)],
        capacity=cap,
    )
    fast_only = problem(site, [_car(i, ChargeMode.FAST) for i in range(3)], capacity=cap)
    planner = HighsPlanner()
    for p in (with_modes, fast_only, with_modes, fast_only):
        plan = solve(p, planner=planner)
        now = [plan.schedule(f"CP{i}/1")[0] for i in range(3)]
        if p is with_modes:
            assert now[1] <= 7.0 + 1e-6 and 6.0 - 1e-6 <= now[0] <= 13.0 + 1e-6
            assert now[0] + now[1] <= 13.0 + 1e-6
        else:  # no mode left: the three share the panel's 80 A
            assert sum(now) == pytest.approx(80.0, abs=0.5)
