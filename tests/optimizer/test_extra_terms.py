"""The seam for planning terms with columns of their own (`prepare.EXTRA_TERMS`):
a term's columns and rows reach the solver and bind its solution. (The
dispatch knows the limit rows only: a term that caps currents must also be
known to `optimizer.dispatch`.)"""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pytest

from optimizer import SessionDemand, solve
from optimizer import prepare as prepare_module
from optimizer.highs_backend import HighsPlanner, solve_arrays
from optimizer.problem import PlanningProblem
from optimizer.rows import BaseLayout, ExtraBlock
from tests.optimizer.sites import NOW, problem, site_from


def two_cars() -> PlanningProblem:
    cons = [{"id": i, "max_current_a": 32.0, "min_current_a": 0, "phases": ["L1"]} for i in (1, 2)]
    site = site_from([{"id": "g", "limit_a": 63}], [{"id": "C", "group": "g", "connectors": cons}])
    end = NOW + timedelta(hours=2)
    cars = [SessionDemand(f"s{i}", f"C/{i}", NOW, end, 40.0) for i in (1, 2)]
    return problem(site, cars)


def cap_slot_zero(total_a: float):
    """A term with one slack column and one row: Σ x in period 0 − slack ≤ total_a."""

    def term(problem: PlanningProblem, layout: BaseLayout) -> ExtraBlock:
        cols = np.flatnonzero(layout.x_period == 0)
        slack = layout.n_col
        row = layout.n_row
        return ExtraBlock(
            name="cap",
            col_lower=np.zeros(1),
            col_upper=np.array([np.inf]),
            col_cost=np.array([1e6]),  # dearer than any unmet energy: only when it must
            row_lower=np.array([-np.inf]),
            row_upper=np.array([total_a]),
            entries=(
                np.full(len(cols) + 1, row),
                np.append(cols, slack),
                np.append(np.ones(len(cols)), -1.0),
            ),
        )

    return term


def test_a_term_s_row_binds_the_plan(monkeypatch: pytest.MonkeyPatch) -> None:
    free = solve(two_cars())
    assert free.schedule("C/1")[0] + free.schedule("C/2")[0] == pytest.approx(63.0, abs=0.5)
    monkeypatch.setattr(prepare_module, "EXTRA_TERMS", (cap_slot_zero(20.0),))
    lp = prepare_module.prepare(two_cars())
    assert len(lp.extras) == 1 and lp.n_col == len(lp.col_cost) == len(lp.col_upper)
    raw = solve_arrays(lp, 10.0)
    assert raw.x is not None
    assert raw.x[lp.x_period == 0].sum() == pytest.approx(20.0, abs=1e-6)
    assert raw.extra is not None and raw.extra[0] == pytest.approx(0.0, abs=1e-6)  # no slack
    warm = HighsPlanner(10.0)  # a kept planner knows the term's columns and rows too
    for _ in range(2):
        kept = warm.solve(prepare_module.prepare(two_cars(), stable_shape=True))
        assert kept.x is not None
        assert kept.x[lp.x_period == 0].sum() == pytest.approx(20.0, abs=1e-6)
