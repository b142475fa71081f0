"""Under a peak charge the fast re-dispatch only hands on what it freed: its
raisings keep the slot's offered power within the plan's."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np

from gridshare.site.fast_dispatch import Redispatch, SteerableCar
from gridshare.tariff.fast_cap import within_planned_kw
from optimizer import Capacity, PlanningProblem, SessionDemand, TimeGrid, solve
from tests.optimizer.sites import site_from

NOW = datetime(2026, 3, 2, 17, 0, tzinfo=UTC)


def test_raisings_stay_within_the_plan_s_power() -> None:
    cons = [{"id": 1, "max_current_a": 32.0, "min_current_a": 6.0, "phases": ["L1"]}]
    site = site_from(
        [{"id": "g", "limit_a": 40}],
        [{"id": f"C{i}", "group": "g", "connectors": cons} for i in (1, 2, 3)],
    )
    grid = TimeGrid.covering(NOW, 15, 6)
    end = datetime(2026, 3, 2, 22, 0, tzinfo=UTC)
    cars = [SessionDemand(f"s{i}", f"C{i}/1", NOW, end, 30.0) for i in (1, 2, 3)]
    plan = solve(PlanningProblem(site, grid, NOW, tuple(cars), Capacity.static(site, grid)))
    planned = {f"C{i}/1": plan.now_a(f"C{i}/1") for i in (1, 2, 3)}
    assert sum(planned.values()) > 39.0
    steer = {
        cid: SteerableCar(np.full(grid.slots, a), top_a=32.0, floor_a=6.0)
        for cid, a in planned.items()
    }
    # C1 takes 4 A less than offered: lowered; the others may take 4 A more in all
    low = np.full(grid.slots, planned["C1/1"] - 4.0)
    up2 = np.full(grid.slots, planned["C2/1"] + 3.0)
    up3 = np.full(grid.slots, planned["C3/1"] + 3.0)
    decided = Redispatch({"C1/1": low}, {"C2/1": up2, "C3/1": up3})
    kept = within_planned_kw(site, lambda: plan, decided, steer, grid)
    assert set(kept.lowerings) == {"C1/1"} and list(kept.raisings) == ["C2/1"]
    other = TimeGrid(grid.start.replace(hour=18), 15, grid.slots)
    assert within_planned_kw(site, lambda: plan, decided, steer, other).raisings == {}
