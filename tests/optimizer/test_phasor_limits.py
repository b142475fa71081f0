"""Exact three-phase limits: plans checked on the phasor magnitudes themselves.

A line's current is evaluated here from scratch: every connector draws at unity
power factor, a line pair's current in phase with its line-to-line voltage, out
of its first line and back into its second.
"""

from __future__ import annotations

import cmath
import math
from dataclasses import replace
from datetime import timedelta
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings

from optimizer import Capacity, PlanningProblem, SessionDemand, Site, SolverStatus, phasor, solve
from optimizer.dispatch import floor_to_steps
from optimizer.highs_backend import HighsPlanner, solve_arrays
from optimizer.prepare import UNMET_WEIGHT, PreparedLP, prepare
from tests.optimizer.sites import NOW, capacity_of, problem, site_from, sites_and_sessions

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
TOL = 1e-6
DEG = {"L1": 0.0, "L2": -120.0, "L3": 120.0}


def volts(line: str) -> complex:
    return cmath.rect(1.0, math.radians(DEG[line]))


def on_line(lines: tuple[str, ...], line: str) -> complex:
    if line not in lines:
        return 0j
    if len(lines) == 2:
        v = volts(lines[0]) - volts(lines[1])
        return (v / abs(v)) * (1 if line == lines[0] else -1)
    return volts(line)


def exact_loads(prob: PlanningProblem, current: np.ndarray, lines: dict) -> dict:
    """(group, line or 'weighted') → per-slot magnitude of the phasor current
    (magnitudes summed in groups without ``phasor``), fixed loads included."""
    site = prob.site
    ids = list(site.connectors)
    current = current.copy()
    for cid, amps in prob.fixed_load_a.items():
        current[ids.index(cid)] = np.maximum(current[ids.index(cid)], amps)
    wired = {k: tuple(x.value for x in lines[k]) for k in ids}
    out = {}
    for g in site.groups:
        if g.weights is not None:
            z = np.zeros(prob.grid.slots, dtype=complex)
            for k, w in site.weighted_members(g, signed=g.phasor).items():
                own = wired[k]
                z += (w * on_line(own, own[0]) if g.phasor else abs(w)) * current[ids.index(k)]
            out[(g.id, "weighted")] = np.abs(z)
            continue
        for line in DEG:
            z = np.zeros(prob.grid.slots, dtype=complex)
            for info in site.connectors_under(g.id):
                u = on_line(wired[info.key], line)
                z += (u if g.phasor else abs(u)) * current[ids.index(info.key)]
            out[(g.id, line)] = np.abs(z)
    return out


def with_phasor(site: Site) -> Site:
    data: dict[str, Any] = site.model_dump()
    for g in data["groups"]:
        g["phasor"] = True
    return Site.model_validate(data)


def exact_problem(prob: PlanningProblem) -> PlanningProblem:
    return replace(prob, site=with_phasor(prob.site))


def assert_exactly_within(prob: PlanningProblem, **kw: Any) -> None:
    plan = solve(prob, **kw)
    lines = {k: plan.lines.get(k, v.lines) for k, v in prob.site.connectors.items()}
    loads = exact_loads(prob, plan.current_a, lines)
    fixed_only = exact_loads(prob, np.zeros_like(plan.current_a), lines)
    for (gid, qty), load in loads.items():
        cap = capacity_of(prob, gid, "A")
        # what unresponsive stations draw alone may already exceed a limit
        bound = np.maximum(cap, fixed_only[(gid, qty)])
        assert np.all(load <= bound + TOL), f"{gid}:{qty}: {load.max()} > {cap.min()}"


@SETTINGS
@given(sites_and_sessions())
def test_plans_are_within_every_phasor_magnitude(prob: PlanningProblem) -> None:
    assert_exactly_within(exact_problem(prob))


@SETTINGS
@given(sites_and_sessions())
def test_a_kept_planner_stays_within_them_over_replans(prob: PlanningProblem) -> None:
    prob = exact_problem(prob)
    planner = HighsPlanner()
    for minutes in (0, 0, 15, 20):
        later = replace(prob, now=prob.now + timedelta(minutes=minutes))
        assert_exactly_within(later, planner=planner)


def stored_example() -> PlanningProblem:
    """The example that showed the exact model planning less energy than the
    linear one: the room the disc leaves on L1 in the second period goes to s3
    (an L1-L2 pair, priority 2) rather than to s1 (on L1, priority 1)."""
    con = {"id": 1, "max_current_a": 10.0, "min_current_a": 8.0, "phases": ["L1", "L2", "L3"]}
    con["allowed_currents_a"] = [0.0, 8.0, 16.0, 24.0, 32.0]
    pair: dict[str, Any] = {"phases": ["L1", "L2"], "voltage_v": 208.0}
    chargers = [
        {"id": f"C{i}", "group": "g0", "connectors": [{**con, **wiring}]}
        for i, wiring in enumerate([{}, {"phases": ["L1"]}, {}, pair, {}, {}])
    ]
    weights = {"C0": 0.5, "C1/1": -0.25}
    site = site_from(
        [
            {"id": "g0", "limit_a": 1.0, "limit_kw": 1.0},
            {"id": "w", "parent": "g0", "limit_a": 5.0, "weights": weights},
        ],
        chargers,
    )
    sessions = [
        SessionDemand(f"s{i}", f"C{i}/1", NOW, NOW + timedelta(minutes=stay), 1.0, priority=prio)
        for i, stay, prio in ((1, 12, 1.0), (3, 10, 2.0))
    ]
    return problem(site, sessions, fixed_load_a={"C0/1": 0.0}, previous={})


def assert_same_lp_but_phasor_rows(lp: PreparedLP, linear: PreparedLP) -> None:
    """The cut LP is the linear one with only its phasor rows' coefficients changed."""
    for name in ("col_lower", "col_upper", "col_cost", "row_lower", "row_upper", "x_kwh"):
        assert np.array_equal(getattr(lp, name), getattr(linear, name)), name
    assert np.array_equal(lp.a_start, linear.a_start)
    assert np.array_equal(lp.a_index, linear.a_index)
    changed = np.flatnonzero(lp.a_value != linear.a_value)
    assert lp.phasor is not None or not len(changed)
    if lp.phasor is not None:
        assert np.isin(changed, lp.phasor.entry).all()


def weighted_energy(lp: PreparedLP, x: np.ndarray) -> float:
    """Σ priority × kWh planned: what the objective's top tier (`UNMET_WEIGHT` ×
    priority per kWh unmet) buys."""
    prio = np.array([s.demand.priority for s in lp.sessions])
    return float(prio[lp.x_session] @ (lp.x_kwh * x))


@SETTINGS
@given(sites_and_sessions())
@example(stored_example())
def test_the_cut_lp_is_within_the_tolerance_and_never_below_the_linear_lp(
    prob: PlanningProblem,
) -> None:
    exact = exact_problem(prob)
    lp = phasor.exact(prepare(exact))
    linear = prepare(prob)
    if lp.n_x == 0:
        return
    assert_same_lp_but_phasor_rows(lp, linear)
    raw, base = solve_arrays(lp), solve_arrays(linear)
    assert raw.x is not None and base.x is not None
    if lp.phasor is not None and raw.optimal:
        assert len(phasor.violated(lp.phasor, raw.x)) == 0
    if not base.optimal:
        return
    assert raw.optimal and raw.objective is not None and base.objective is not None
    # linear polytope ⊆ discs ⊆ cut polytope: the exact model only adds room, so
    # its optimum is never dearer...
    assert raw.objective <= base.objective + 1e-6 * max(1.0, abs(base.objective))
    # ...and what it never loses is energy × priority, not energy: the room may go
    # to a car of higher priority at the cost of more kWh of another (the stored
    # example). The tiers below (fairness segments, charging early, evenness)
    # may trade a little of it too, at most what they cost the linear optimum.
    need = linear.row_upper[linear.n_limit_rows :][: len(linear.sessions)]  # energy rows
    prio = np.array([s.demand.priority for s in linear.sessions])
    top = UNMET_WEIGHT * (prio @ need - weighted_energy(linear, base.x))
    reward = np.where(lp.col_cost < 0, lp.col_upper, 0.0) @ np.minimum(lp.col_cost, 0.0)
    lower_tiers = base.objective - top - reward
    slack = lower_tiers / UNMET_WEIGHT + 1e-6
    assert weighted_energy(lp, raw.x) >= weighted_energy(linear, base.x) - slack


def test_higher_priority_takes_the_room_the_discs_leave() -> None:
    """In the second period of the stored example the linear model fills L1 with
    s1 (1 A); on the disc |a + b·e^(j30°)| ≤ 1, moving along its edge from
    (1, 0) trades cos 30° A of s1 for each A of s3, and s3's kWh per A × its
    priority (2 min left at 208 V, × 2) beats s1's × cos 30° (4 min at 230 V,
    × 0.87): fewer kWh, more of them for the car that matters more."""
    prob = stored_example()
    lp, linear = phasor.exact(prepare(exact_problem(prob))), prepare(prob)
    raw, base = solve_arrays(lp), solve_arrays(linear)
    assert raw.x is not None and base.x is not None
    assert raw.objective is not None and base.objective is not None
    assert raw.objective < base.objective
    assert lp.x_kwh @ raw.x < lp.x_kwh @ base.x
    assert weighted_energy(lp, raw.x) > weighted_energy(linear, base.x)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(sites_and_sessions(max_connectors=5))
def test_pulp_and_highs_agree_on_exact_limits(prob: PlanningProblem) -> None:
    prob = exact_problem(prob)
    a = solve(prob, backend="highs")
    b = solve(prob, backend="pulp")
    assert a.status == b.status
    if a.status is SolverStatus.OPTIMAL:
        assert a.objective is not None and b.objective is not None
        # both stop within the cut tolerance of the disc, each at its own vertex
        assert abs(a.objective - b.objective) <= 2e-3 * max(1.0, abs(a.objective))


@SETTINGS
@given(sites_and_sessions())
def test_a_site_without_phasor_sums_keeps_its_lp_array_for_array(prob: PlanningProblem) -> None:
    lp = prepare(prob)
    assert phasor.exact(lp) is lp
    assert lp.phasor is None


def test_a_group_of_one_pair_keeps_its_linear_lp() -> None:
    """Every member at one angle: |Σ| = Σ, nothing to make exact."""
    site = site_from(
        [{"id": "g", "limit_a": 40.0, "phasor": True}],
        [{"id": f"C{i}", "group": "g", "connectors": [conn(("L1", "L2"))]} for i in range(3)],
    )
    prob = problem(site, sessions(site))
    lp = prepare(prob)
    assert phasor.exact(lp) is lp


def conn(phases: tuple[str, ...]) -> dict:
    out: dict = {"id": 1, "max_current_a": 32.0, "min_current_a": 6.0, "phases": list(phases)}
    if len(phases) == 2:
        out["voltage_v"] = 208.0
    return out


def sessions(site: Site, kwh: float = 60.0) -> list[SessionDemand]:
    return [
        SessionDemand(f"s{i}", cid, NOW - timedelta(minutes=5), NOW + timedelta(hours=4), kwh)
        for i, cid in enumerate(site.connectors)
    ]


@pytest.mark.parametrize("exact", [False, True])
def test_two_pairs_on_a_line_share_it_as_phasors(exact: bool) -> None:
    """AB and CA chargers both load L1: 30° apart from it on either side, so
    their currents add as a·e^(j30°) + b·e^(−j30°): |I_L1| = √(a² + b² + ab),
    √3·a for two equal currents, not 2a."""
    site = site_from(
        [{"id": "g", "limit_a": 40.0, "phasor": exact}],
        [
            {"id": "AB", "group": "g", "connectors": [conn(("L1", "L2"))]},
            {"id": "CA", "group": "g", "connectors": [conn(("L3", "L1"))]},
        ],
    )
    plan = solve(problem(site, sessions(site)))
    now = plan.current_a[:, 0]
    if exact:
        assert now.sum() == pytest.approx(2 * 40 / math.sqrt(3), abs=0.2)
        assert math.sqrt(now[0] ** 2 + now[1] ** 2 + now[0] * now[1]) <= 40 + TOL
    else:
        assert now.sum() == pytest.approx(40.0, abs=0.1)


def test_a_phasor_weighted_group_keeps_its_signs() -> None:
    """A primary-side limit 0.25·I_AB − 0.5·I_CA: the two currents are 60° apart
    once the sign is applied, so the exact sum is below the magnitudes'."""
    site = site_from(
        [
            {"id": "g"},
            {
                "id": "primary",
                "parent": "g",
                "limit_a": 10.0,
                "phasor": True,
                "weights": {"AB": 0.25, "CA": -0.5},
            },
        ],
        [
            {"id": "AB", "group": "g", "connectors": [conn(("L1", "L2"))]},
            {"id": "CA", "group": "g", "connectors": [conn(("L3", "L1"))]},
        ],
    )
    prob = problem(site, sessions(site))
    plan = solve(prob)
    a, b = plan.current_a[:, 0]
    z = 0.25 * a * on_line(("L1", "L2"), "L1") - 0.5 * b * on_line(("L3", "L1"), "L3")
    assert abs(z) <= 10 + TOL
    assert 0.25 * a + 0.5 * b > 10.5  # more than the magnitudes summed allow


def test_exact_limits_deliver_more_on_a_capped_site() -> None:
    chargers = [
        {"id": f"C{i}", "group": "g", "connectors": [conn(pair)]}
        for i, pair in enumerate([("L1", "L2"), ("L2", "L3"), ("L3", "L1")] * 4)
    ]
    energy = []
    for exact in (False, True):
        site = site_from([{"id": "g", "limit_a": 100.0, "phasor": exact}], chargers)
        prob = problem(site, sessions(site), capacity=None)
        plan = solve(prob)
        assert plan.status is SolverStatus.OPTIMAL
        energy.append(sum(plan.energy_kwh.values()))
        assert_exactly_within(prob)
    assert energy[1] > energy[0] * 1.1


def test_capacity_lowered_in_a_slot_is_respected_exactly() -> None:
    chargers = [
        {"id": f"C{i}", "group": "g", "connectors": [conn(pair)]}
        for i, pair in enumerate([("L1", "L2"), ("L2", "L3"), ("L3", "L1"), ("L1",)] * 2)
    ]
    site = site_from([{"id": "g", "limit_a": 60.0, "phasor": True}], chargers)
    base = problem(site, sessions(site))
    cap = Capacity.static(site, base.grid).lowered(
        "g", np.arange(base.grid.slots) < 3, limit_a=20.0, limit_kw=None
    )
    assert_exactly_within(replace(base, capacity=cap))


def test_enforce_lowers_a_dispatched_slot_into_every_disc() -> None:
    chargers = [
        {"id": f"C{i}", "group": "g", "connectors": [conn(pair)]}
        for i, pair in enumerate([("L1", "L2"), ("L2", "L3"), ("L3", "L1"), ("L1",)] * 2)
    ]
    site = site_from([{"id": "g", "limit_a": 50.0, "phasor": True}], chargers)
    lp = phasor.exact(prepare(problem(site, sessions(site))))
    assert lp.phasor is not None
    z = np.full(lp.n_x, 32.0)
    out = phasor.enforce(lp, z, floor_to_steps)
    assert out is not None
    assert np.all(out <= z)
    assert np.all(np.abs(phasor.sums(lp.phasor, out)) <= lp.phasor.bound + TOL)
    assert np.abs(phasor.sums(lp.phasor, out)).max() > 0.9 * 50.0  # lowered, not emptied
