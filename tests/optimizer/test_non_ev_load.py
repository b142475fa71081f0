"""A building's load behind the connection: taken off the chargers' share, per line."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pytest

from optimizer import Capacity, SessionDemand, Site, TimeGrid, solve
from optimizer.errors import ProblemError
from optimizer.families import family_limit
from optimizer.problem import LimitWindow
from optimizer.site import Line
from tests.optimizer.sites import NOW, problem, site_from


def _site() -> Site:
    return site_from(
        [{"id": "grid", "limit_a": 64, "limit_kw": 40}],
        [
            {"id": f"CP{i}", "group": "grid", "connectors": [{"id": 1, "max_current_a": 32}]}
            for i in range(3)
        ],
    )


def _sessions() -> list[SessionDemand]:
    return [
        SessionDemand(f"s{i}", f"CP{i}/1", NOW, NOW + timedelta(hours=6), 60.0) for i in range(3)
    ]


def _cap(site: Site, load_l1: float, load_l2: float = 0.0) -> Capacity:
    grid = TimeGrid.covering(NOW, site.site.slot_minutes, site.site.horizon_hours)
    n = grid.slots
    loads = {"grid": {Line.L1: np.full(n, load_l1), Line.L2: np.full(n, load_l2)}}
    return Capacity.static(site, grid).with_non_ev(loads)


def test_building_load_on_a_line_leaves_the_rest_to_the_chargers() -> None:
    site = _site()
    plan = solve(problem(site, _sessions(), capacity=_cap(site, 30.0)))
    now_sum = sum(plan.schedule(f"CP{i}/1")[0] for i in range(3))
    # three-phase chargers: every line carries the sum; L1 has 64 − 30 A left
    assert now_sum <= 34.0 + 1e-6
    assert now_sum >= 34.0 - 3.0


def test_power_limit_counts_the_building_too() -> None:
    site = _site()
    cap = _cap(site, 20.0, 20.0)
    grid = TimeGrid.covering(NOW, site.site.slot_minutes, site.site.horizon_hours)
    kw = family_limit(site, cap, ("grid", "kW"), grid.slots)
    assert kw[0] == pytest.approx(40 - 40 * 230 / 1000)
    plan = solve(problem(site, _sessions(), capacity=cap))
    drawn_kw = sum(plan.schedule(f"CP{i}/1")[0] for i in range(3)) * 3 * 230 / 1000
    assert drawn_kw <= kw[0] + 1e-6


def test_generation_or_export_never_raises_a_limit() -> None:
    site = _site()
    cap = _cap(site, -50.0, -50.0)  # export: counts as no load, not as more capacity
    grid = TimeGrid.covering(NOW, site.site.slot_minutes, site.site.horizon_hours)
    assert family_limit(site, cap, ("grid", "L1"), grid.slots)[0] == 64.0
    plan = solve(problem(site, _sessions(), capacity=cap))
    assert sum(plan.schedule(f"CP{i}/1")[0] for i in range(3)) <= 64.0 + 1e-6


def test_a_building_above_the_limit_leaves_nothing() -> None:
    site = _site()
    plan = solve(problem(site, _sessions(), capacity=_cap(site, 80.0)))
    assert sum(plan.schedule(f"CP{i}/1")[0] for i in range(3)) == 0.0


def test_operator_windows_keep_the_building_load() -> None:
    site = _site()
    cap = _cap(site, 30.0)
    grid = TimeGrid.covering(NOW, site.site.slot_minutes, site.site.horizon_hours)

    folded = cap.limited(grid, [LimitWindow("grid", limit_a=50.0)])
    assert family_limit(site, folded, ("grid", "L1"), grid.slots)[0] == 20.0


def test_a_wrong_shaped_load_is_refused() -> None:
    site = _site()
    grid = TimeGrid.covering(NOW, site.site.slot_minutes, site.site.horizon_hours)
    cap = Capacity.static(site, grid).with_non_ev({"grid": {Line.L1: np.zeros(3)}})
    with pytest.raises(ProblemError, match="non-EV load"):
        problem(site, _sessions(), capacity=cap)
