"""The minimum-current rule on hand-checked cases."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pytest

from optimizer import SessionDemand, solve
from tests.optimizer.sites import NOW, problem, site_from


def shared_site(limit_a: float, n: int, **connector: object) -> object:
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
