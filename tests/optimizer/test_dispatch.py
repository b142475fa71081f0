"""The minimum-current rule on hand-checked cases."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from optimizer import PlanningProblem, SessionDemand, Site, solve
from optimizer.dispatch import STEP_A, make_dispatchable, min_current, row_loads, water_fill
from optimizer.prepare import PreparedLP, prepare
from tests.optimizer.sites import NOW, problem, site_from, sites_and_sessions


def shared_site(limit_a: float, n: int, **connector: object) -> Site:
    con = {"id": 1, "max_current_a": 32, "min_current_a": 6, "phases": ["L1"], **connector}
    return site_from(
        [{"id": "root", "limit_a": limit_a}],
        [{"id": f"C{i}", "group": "root", "connectors": [con]} for i in range(n)],
    )


def sessions(n: int, hours: float = 8, kwh: float = 50) -> list[SessionDemand]:
    return [
        SessionDemand(f"s{i}", f"C{i}/1", NOW, NOW + timedelta(hours=hours + i / 10), kwh)
        for i in range(n)
    ]


@pytest.mark.parametrize(
    ("limit", "n", "charging"),
    [(18.0, 3, 3), (16.0, 3, 2), (5.9, 2, 0), (12.0, 2, 2), (100.0, 3, 3)],
)
def test_paused_or_at_least_minimum_and_within_limit(limit: float, n: int, charging: int) -> None:
    plan = solve(problem(shared_site(limit, n), sessions(n)))
    now = plan.current_a[:, 0]
    assert np.all((now == 0) | (now >= 6 - 1e-9))
    assert now.sum() <= limit + 1e-9
    assert (now > 0).sum() == charging


def test_the_most_urgent_session_is_the_one_that_charges() -> None:
    site = shared_site(10.0, 2)
    urgent = SessionDemand("urgent", "C0/1", NOW, NOW + timedelta(hours=1), 5)
    relaxed = SessionDemand("relaxed", "C1/1", NOW, NOW + timedelta(hours=10), 5)
    plan = solve(problem(site, [relaxed, urgent]))
    assert plan.now_a("C0/1") >= 6
    assert plan.now_a("C1/1") == 0


def test_discrete_pilot_steps_are_respected() -> None:
    site = shared_site(30.0, 3, allowed_currents_a=[0, 8, 16, 24, 32])
    plan = solve(problem(site, sessions(3)))
    for value in plan.current_a.ravel():
        assert value in (0, 8, 16, 24, 32)
    assert plan.current_a[:, 0].sum() <= 30


def test_what_the_rule_costs_is_reported() -> None:
    plan = solve(problem(shared_site(16.0, 3), sessions(3)))
    # the LP shares 16 A three ways (5.3 A each, below the minimum); one is paused
    assert plan.dispatch_cost_kwh >= 0
    assert plan.current_a[:, 0].sum() <= 16


def test_unresponsive_station_load_is_reserved() -> None:
    site = shared_site(32.0, 2)
    plan = solve(problem(site, sessions(2), fixed_load_a={"C0/1": 20.0}))
    assert plan.now_a("C0/1") == 0
    assert plan.now_a("C1/1") <= 12 + 1e-9


def test_competing_sessions_share_the_slot_evenly() -> None:
    """Different needs, all reachable by departure: nobody is starved now."""
    site = shared_site(20.0, 3, phases=["L1", "L2", "L3"], max_current_a=16)
    needs = (5.0, 15.0, 30.0)
    demands = [
        SessionDemand(f"s{i}", f"C{i}/1", NOW, NOW + timedelta(hours=5), needs[i]) for i in range(3)
    ]
    plan = solve(problem(site, demands))
    now = plan.current_a[:, 0]
    assert now.sum() <= 20 + 1e-9
    assert now.min() >= 6
    assert now.max() - now.min() <= 16 / 8 + 1e-9  # the evenness pieces are 1/8 of 16 A
    assert plan.total_unmet_kwh == pytest.approx(0.0, abs=1e-6)


# --- giving back the room that flooring to pilot steps leaves ---------------------

WHOLE_AMPS = [0.0, *range(6, 33)]


def test_rounding_room_is_given_back_one_step_at_a_time() -> None:
    """Three cars share 40 A; the LP gives each 13.3 A, the stations take whole
    amperes: flooring alone would offer 39 A, the leftover ampere goes to one car."""
    site = shared_site(40.0, 3, allowed_currents_a=WHOLE_AMPS)
    plan = solve(problem(site, sessions(3)))
    now = plan.current_a[:, 0]
    assert set(now) <= set(WHOLE_AMPS)
    assert now.sum() == pytest.approx(40.0)
    assert now.max() - now.min() <= 1.0


def slot0(lp: PreparedLP, values: dict[str, float]) -> np.ndarray:
    """LP currents: ``values`` in slot 0 by session id, nothing later."""
    x = np.zeros(lp.n_x)
    for sc in lp.sessions:
        x[sc.first_col] = values[sc.demand.session_id]
    return x


def test_the_extra_step_goes_to_the_most_urgent_session() -> None:
    site = shared_site(27.0, 2, allowed_currents_a=WHOLE_AMPS)
    urgent = SessionDemand("urgent", "C0/1", NOW, NOW + timedelta(hours=3), 15)
    relaxed = SessionDemand("relaxed", "C1/1", NOW, NOW + timedelta(hours=9), 15)
    lp = prepare(problem(site, [relaxed, urgent]))
    z = make_dispatchable(lp, slot0(lp, {"urgent": 13.5, "relaxed": 13.5}))
    now = {sc.demand.session_id: z[sc.first_col] for sc in lp.sessions}
    assert now == {"urgent": 14.0, "relaxed": 13.0}


def test_room_freed_by_a_paused_session_goes_to_the_others() -> None:
    """16 A over three cars: the LP's 5.3 A each is below the 6 A minimum; two
    charge and what the third leaves is given to them (not left unused)."""
    site = shared_site(16.0, 3, allowed_currents_a=WHOLE_AMPS)
    plan = solve(problem(site, sessions(3)))
    now = plan.current_a[:, 0]
    assert (now > 0).sum() == 2
    assert now.sum() == pytest.approx(16.0)


def tapering(session: str, connector: str, draws_a: float) -> SessionDemand:
    """A car near full: it takes ``draws_a``, less than its station's 6 A minimum."""
    return SessionDemand(
        session, connector, NOW, NOW + timedelta(hours=6), 2.0, ev_max_current_a=draws_a
    )


def test_a_car_taking_less_than_the_minimum_only_gets_room_nobody_else_uses() -> None:
    """30 A for a tapering car (takes 2 A) and a car taking 32 A: at the minimum
    the tapering car would hold 6 A to draw 2, so the other car gets all 30."""
    site = shared_site(30.0, 2, allowed_currents_a=WHOLE_AMPS)
    full = SessionDemand("full", "C1/1", NOW, NOW + timedelta(hours=6), 40)
    plan = solve(problem(site, [tapering("tail", "C0/1", 2.0), full]))
    assert plan.now_a("C1/1") == 30.0
    assert plan.now_a("C0/1") == 0.0


def test_a_car_taking_less_than_the_minimum_charges_from_spare_room() -> None:
    """With room to spare the tapering car gets the minimum (its station can't be
    given 2 A), and every limit still holds."""
    site = shared_site(45.0, 2, allowed_currents_a=WHOLE_AMPS)
    full = SessionDemand("full", "C1/1", NOW, NOW + timedelta(hours=6), 40)
    plan = solve(problem(site, [tapering("tail", "C0/1", 2.0), full]))
    assert plan.now_a("C1/1") == 32.0
    assert plan.now_a("C0/1") == 6.0
    assert plan.current_a[:, 0].sum() <= 45.0


def test_tapering_cars_take_the_minimum_in_turn_when_room_is_short() -> None:
    """Room for one minimum only: of two tapering cars, the one paused last slot
    goes first."""
    site = shared_site(8.0, 2, allowed_currents_a=WHOLE_AMPS)
    demands = [tapering("a", "C0/1", 2.0), tapering("b", "C1/1", 2.0)]
    first = solve(problem(site, demands, previous={"a": 6.0, "b": 0.0}))
    assert (first.now_a("C0/1"), first.now_a("C1/1")) == (0.0, 6.0)


def test_every_line_of_every_group_bounds_the_raise() -> None:
    """Two-line stations under a panel and a transformer with a kW limit: each raise
    is checked on every line and limit it loads."""
    con = {"id": 1, "max_current_a": 32, "min_current_a": 6, "voltage_v": 208.0}
    site = site_from(
        [
            {"id": "tx", "limit_a": 100.0, "limit_kw": 8.0},
            {"id": "panel", "parent": "tx", "limit_a": 22.5},
        ],
        [
            {
                "id": f"C{i}",
                "group": "panel" if i < 3 else "tx",
                "connectors": [
                    {**con, "phases": ph, "allowed_currents_a": WHOLE_AMPS},
                ],
            }
            for i, ph in enumerate([["L1", "L2"], ["L2", "L3"], ["L3", "L1"], ["L1", "L2"]])
        ],
    )
    plan = solve(problem(site, sessions(4)))
    now = plan.current_a[:, 0]
    assert set(now) <= set(WHOLE_AMPS)
    panel = now[:3]
    for a, b in ((0, 1), (1, 2), (2, 0)):  # each line of the panel carries two stations
        assert panel[a] + panel[b] <= 22.5 + 1e-9
    assert now.sum() * 0.208 <= 8.0 + 1e-9
    # nothing more fits: one more ampere anywhere breaks the kW limit
    assert (now.sum() + 1) * 0.208 > 8.0


def test_a_session_the_lp_keeps_waiting_is_not_raised() -> None:
    """Cheap energy later: the LP plans nothing now; the room left now is not used
    to charge it at the dear price."""
    site = shared_site(100.0, 1, allowed_currents_a=WHOLE_AMPS)
    demand = SessionDemand("s", "C0/1", NOW, NOW + timedelta(hours=6), 5)
    p = problem(site, [demand])
    prices = np.ones(p.grid.slots)
    prices[:8] = 10.0
    plan = solve(problem(site, [demand], prices=prices))
    assert plan.now_a("C0/1") == 0
    assert plan.current_a[0].max() > 0


def test_paused_sessions_get_their_turn_next_slot() -> None:
    """Room for two of three at their minimum, the LP wanting 4 A for each: the one
    the previous plan paused charges now, even though it is the least urgent."""
    site = shared_site(12.0, 3, allowed_currents_a=WHOLE_AMPS)
    demands = sessions(3)  # s0 is the most urgent (earliest departure), s2 the least
    lp = prepare(problem(site, demands))
    z = make_dispatchable(lp, slot0(lp, {"s0": 4.0, "s1": 4.0, "s2": 4.0}))
    assert [z[sc.first_col] for sc in lp.sessions] == [6.0, 6.0, 0.0]
    previous = {"s0": 6.0, "s1": 6.0, "s2": 0.0}
    lp = prepare(problem(site, demands, previous=previous))
    z = make_dispatchable(lp, slot0(lp, {"s0": 4.0, "s1": 4.0, "s2": 4.0}))
    assert [z[sc.first_col] for sc in lp.sessions] == [6.0, 0.0, 6.0]


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(sites_and_sessions(), st.floats(0.0, 1.0))
def test_dispatch_keeps_limits_and_leaves_no_step_unused(
    prob: PlanningProblem, scale: float
) -> None:
    """From any LP-feasible currents: slot 0 keeps every row (each line of each
    group, kW and weighted limits) within its bound, and no charging station with
    pilot steps could take one more step without breaking a row."""
    lp = prepare(prob)
    x = water_fill(lp) * scale  # feasible for every limit row
    z = make_dispatchable(lp, x)
    upper = lp.row_upper[: lp.n_limit_rows]
    loads = row_loads(lp, z)
    fixed_over = upper < 0  # unresponsive stations alone over the limit
    assert np.all((loads <= upper + 1e-6) | fixed_over & (loads <= 1e-9))
    rows, cols, vals = lp.coo()
    m = (rows < lp.n_limit_rows) & (cols < lp.n_x)
    rows, cols, vals = rows[m], cols[m], vals[m]
    lo = min_current(lp)[lp.x_session]
    kwh = np.concatenate([s.kwh_per_a for s in lp.sessions]) if lp.n_x else np.zeros(0)
    for c in np.flatnonzero((lp.x_period == 0) & (z > 0)):
        s = lp.sessions[int(lp.x_session[c])]
        assert z[c] >= lo[c] - 1e-9
        allowed = s.connector.connector.allowed_currents_a
        if allowed is None:
            continue
        assert any(abs(z[c] - a) < 1e-9 for a in allowed)
        higher = [a for a in sorted(allowed) if a > z[c] + 1e-9]
        if not higher or higher[0] > lp.col_upper[c] + 1e-9:
            continue  # at its maximum
        if z[c] * kwh[c] >= s.demand.energy_kwh - 1e-9:
            continue  # the step now already covers the need
        sel = cols == c
        extra = vals[sel] * (higher[0] - z[c])
        assert np.any(loads[rows[sel]] + extra > upper[rows[sel]] + 1e-9), (c, z[c])


@pytest.mark.parametrize("allowed", [None, WHOLE_AMPS])
def test_a_lone_car_charges_at_its_maximum_on_a_fine_grid(allowed: list[float] | None) -> None:
    """Five-minute slots over 12 h (the ACN sites): however the LP spreads a car's
    energy over the slots, what the room allows now is given to it now."""
    con = {"id": 1, "max_current_a": 32, "min_current_a": 6, "phases": ["L1"]}
    if allowed is not None:
        con["allowed_currents_a"] = allowed
    site = site_from(
        [{"id": "root", "limit_a": 100.0}],
        [{"id": "C0", "group": "root", "connectors": [con]}],
        slot_minutes=5,
        horizon_hours=12,
    )
    demand = SessionDemand("s", "C0/1", NOW, NOW + timedelta(hours=10), 40)
    plan = solve(problem(site, [demand]))
    assert plan.now_a("C0/1") == 32


# --- the slot dispatched now, when it is partial -----------------------------------


def test_now_gets_the_room_even_where_later_slots_already_hold_the_need() -> None:
    """The LP may move energy out of a partial slot now (it is cheap to place
    later, and the evenness pieces of the slot now cost more there); the room
    left now is still given to a car that wants more, and its later slots give
    that much back so it is never planned beyond its need."""
    site = shared_site(100.0, 1)
    need = 10.0
    lp = prepare(problem(site, [SessionDemand("s", "C0/1", NOW, NOW + timedelta(hours=8), need)]))
    (sc,) = lp.sessions
    assert sc.periods[0] == 0 and sc.kwh_per_a[0] < sc.kwh_per_a[1]  # 17:07: a partial slot
    x = np.zeros(lp.n_x)
    x[sc.first_col] = 20.0
    left = need - 20.0 * sc.kwh_per_a[0]
    for k in range(1, len(sc.periods)):  # the rest of the need, as early as it fits
        x[sc.first_col + k] = min(32.0, left / sc.kwh_per_a[k])
        left -= x[sc.first_col + k] * sc.kwh_per_a[k]
    assert left == pytest.approx(0.0, abs=1e-9)
    z = make_dispatchable(lp, x)
    cols = slice(sc.first_col, sc.first_col + len(sc.periods))
    assert z[sc.first_col] == 32.0
    # trimmed to a step at or above what the need leaves: at most one step over
    assert float(z[cols] @ sc.kwh_per_a) == pytest.approx(need, abs=STEP_A * sc.kwh_per_a.max())


def test_every_car_that_wants_more_gets_its_maximum_now_where_no_limit_binds() -> None:
    """A depot with room to spare, 8 of the slot's 15 minutes left: every car
    still needing energy is offered its maximum now (the slot the stations are
    given; a car that leaves early, or a re-plan, must not lose what is free
    now), and the plan's energy stays within each need."""
    three = {"id": 1, "min_current_a": 6, "phases": ["L1", "L2", "L3"]}
    site = site_from(
        [
            {"id": "grid", "limit_a": 120, "limit_kw": 80},
            {"id": "panel-a", "parent": "grid", "limit_a": 80},
            {"id": "panel-b", "parent": "grid", "limit_a": 40},
        ],
        [
            {"id": "C0", "group": "panel-a", "connectors": [{**three, "max_current_a": 32}]},
            {"id": "C1", "group": "panel-a", "connectors": [{**three, "max_current_a": 32}]},
            {"id": "C2", "group": "panel-a", "connectors": [{**three, "max_current_a": 16}]},
            {"id": "C3", "group": "panel-b", "connectors": [{**three, "max_current_a": 16}]},
        ],
        horizon_hours=24,
    )
    needs = {"C0/1": (40.0, 6), "C1/1": (30.0, 5), "C2/1": (25.0, 8), "C3/1": (15.0, 4)}
    demands = [
        SessionDemand(f"s-{cid}", cid, NOW, NOW + timedelta(hours=h), kwh)
        for cid, (kwh, h) in needs.items()
    ]
    prob = problem(site, demands)
    assert prob.grid.slot_start(0) < NOW  # the slot now is partial
    plan = solve(prob)
    assert {cid: plan.now_a(cid) for cid in needs} == {
        "C0/1": 32.0,
        "C1/1": 32.0,
        "C2/1": 16.0,
        "C3/1": 16.0,
    }
    for d in demands:
        assert plan.energy_kwh[d.session_id] <= d.energy_kwh + 1e-6
        assert plan.unmet_kwh[d.session_id] == pytest.approx(0.0, abs=1e-6)


def offered_beyond_need(lp: PreparedLP, z: np.ndarray) -> list[str]:
    """Sessions offered current in a period after the periods before it already
    offer their whole need (Σ current × kWh per ampere): a full car is offered
    nothing, so the rows offer the need plus at most its last period's rounding."""
    kwh = np.concatenate([s.kwh_per_a for s in lp.sessions]) if lp.n_x else np.zeros(0)
    over = []
    for i, sc in enumerate(lp.sessions):
        cols = np.flatnonzero((lp.x_session == i) & (z > 0))
        if not len(cols):
            continue
        before_last = float(np.sum(kwh[cols[:-1]] * z[cols[:-1]]))
        if before_last >= sc.demand.energy_kwh - 1e-6:
            over.append(sc.demand.session_id)
    return over


def test_a_full_car_is_not_offered_its_minimum_for_a_rounding_remainder() -> None:
    """The LP's 6.5 A on a whole-ampere station is floored to 6 A with no room
    for 7 A; the half ampere it leaves is too little to hold a 6 A minimum for
    in the next period (the car would stop drawing at once)."""
    con = {"id": 1, "max_current_a": 32, "min_current_a": 6, "phases": ["L1"]}
    whole = {**con, "allowed_currents_a": WHOLE_AMPS}
    site = site_from(
        [{"id": "root", "limit_a": 32.0}],
        [
            {"id": "C0", "group": "root", "connectors": [whole]},
            {"id": "C1", "group": "root", "connectors": [con]},
        ],
    )
    a_x = [32.0, 32.0, 6.5]
    b_x = [0.0, 0.0, 25.5]

    def demands(a_kwh: float, b_kwh: float) -> list[SessionDemand]:
        return [
            SessionDemand("a", "C0/1", NOW, NOW + timedelta(hours=4), a_kwh),
            SessionDemand("b", "C1/1", NOW, NOW + timedelta(hours=4), b_kwh),
        ]

    kwh = prepare(problem(site, demands(1.0, 1.0))).sessions[0].kwh_per_a
    lp = prepare(problem(site, demands(float(kwh[:3] @ a_x), float(kwh[:3] @ b_x))))
    x = np.zeros(lp.n_x)
    for sc, values in zip(lp.sessions, (a_x, b_x), strict=True):
        x[sc.first_col : sc.first_col + 3] = values
    z = make_dispatchable(lp, x)
    a = lp.sessions[0].first_col
    assert list(z[a : a + 4]) == [32.0, 32.0, 6.0, 0.0]
    assert offered_beyond_need(lp, z) == []


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(sites_and_sessions(), st.floats(0.0, 1.0))
def test_no_period_offers_a_full_car_anything(prob: PlanningProblem, scale: float) -> None:
    lp = prepare(prob)
    z = make_dispatchable(lp, water_fill(lp) * scale)
    assert offered_beyond_need(lp, z) == []
