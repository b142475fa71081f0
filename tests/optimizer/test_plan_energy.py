"""A plan's energy is the energy of its own rows, never more than a session needs,
and close to what the site can deliver at all."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings

from optimizer import Plan, PlanningProblem, solve
from tests.optimizer.reference import independent_best
from tests.optimizer.sites import mixed_sites, sites_and_sessions

SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])

NEED_TOL_KWH = 1e-6
"""Planned ≤ needed up to float noise: the energies are sums of products of
currents and hours (a few dozen terms of 1e1-1e2 kWh), far below a watt-hour."""


def row_energy(prob: PlanningProblem, plan: Plan) -> dict[str, float]:
    """Per session: Σ power_kw × the hours of each slot the car is there to charge
    (the slot's hours, less where it arrives, or the plan starts, or it leaves
    within the slot)."""
    grid = prob.grid
    out = {}
    for s in prob.sessions:
        row = plan.power_kw[plan.connector_ids.index(s.connector_id)]
        total = 0.0
        for t in range(grid.slots):
            start = max(grid.slot_start(t), s.arrival, prob.now)
            end = min(grid.slot_start(t) + grid.step, s.departure)
            total += row[t] * max((end - start).total_seconds() / 3600.0, 0.0)
        out[s.session_id] = total
    return out


def check_energy(prob: PlanningProblem, plan: Plan) -> None:
    rows = row_energy(prob, plan)
    for s in prob.sessions:
        assert plan.energy_kwh[s.session_id] == pytest.approx(rows[s.session_id], abs=1e-6)
        assert rows[s.session_id] <= s.energy_kwh + NEED_TOL_KWH
        assert plan.unmet_kwh[s.session_id] == pytest.approx(
            s.energy_kwh - rows[s.session_id], abs=1e-6
        )
    # what the rows say the car draws is never more than what it is offered
    kw_per_a = np.array(
        [prob.site.connectors[c].kw_per_amp(plan.lines[c]) for c in plan.connector_ids]
    )
    assert np.all(plan.power_kw <= plan.current_a * kw_per_a[:, None] + 1e-9)


@SETTINGS
@given(mixed_sites())
def test_a_plans_energy_is_its_rows_energy(prob: PlanningProblem) -> None:
    for backend in ("highs", "pulp"):
        check_energy(prob, solve(prob, backend=backend))


@SETTINGS
@given(sites_and_sessions())
def test_rows_match_on_any_site(prob: PlanningProblem) -> None:
    """Battery tails, pilot steps, weighted groups, unresponsive stations too."""
    check_energy(prob, solve(prob))


def pair_site(n: int = 60, hours: int = 12) -> PlanningProblem:
    """A depot with one-phase, three-phase and line-pair (400 V) connectors under
    three panels, congested, sessions arriving and leaving on the hour."""
    from datetime import timedelta

    from optimizer import SessionDemand
    from tests.optimizer.sites import NOW, problem, site_from

    layouts = [["L1", "L2", "L3"], ["L2"], ["L3", "L1"], ["L1", "L2"], ["L3"]]
    chargers = []
    for i in range(n):
        phases = layouts[i % len(layouts)]
        con: dict = {"id": 1, "max_current_a": 32.0 if i % 3 else 16.0, "phases": phases}
        if len(phases) == 2:
            con["voltage_v"] = 400.0
        chargers.append({"id": f"C{i}", "group": f"p{i % 3}", "connectors": [con]})
    groups = [
        {"id": "grid", "limit_a": 260.0},
        *({"id": f"p{k}", "parent": "grid", "limit_a": 130.0} for k in range(3)),
    ]
    site = site_from(groups, chargers, slot_minutes=60, horizon_hours=hours)
    start = NOW.replace(minute=0)
    rng = np.random.default_rng(3)
    sessions = [
        SessionDemand(
            f"s{i}",
            f"C{i}/1",
            start + timedelta(hours=int(rng.integers(0, 4))),
            start + timedelta(hours=int(rng.integers(5, hours + 1))),
            float(rng.uniform(5, 60)),
        )
        for i in range(n)
    ]
    return problem(site, sessions, now=start)


@pytest.mark.parametrize("backend", ["highs", "pulp"])
def test_the_plan_delivers_what_the_site_can(backend: str) -> None:
    """Within 0.5 % of an independent LP that has no minimum-current rule (on a
    grid of whole hours, so both plan the same slots)."""
    prob = pair_site()
    plan = solve(prob, backend=backend)
    check_energy(prob, plan)
    assert plan.energy_planned_kwh >= 0.995 * independent_best(prob)


@SETTINGS
@given(mixed_sites(max_connectors=16))
def test_no_session_is_planned_beyond_its_need(prob: PlanningProblem) -> None:
    """The slot dispatched now may give a car more than the LP planned there;
    its later slots then give that much less."""
    for backend in ("highs", "pulp"):
        plan = solve(prob, backend=backend)
        rows = row_energy(prob, plan)
        for s in prob.sessions:
            assert rows[s.session_id] <= s.energy_kwh + NEED_TOL_KWH
            assert plan.energy_kwh[s.session_id] <= s.energy_kwh + NEED_TOL_KWH
