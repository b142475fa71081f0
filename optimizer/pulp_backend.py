"""PuLP backend: the prepared LP written out as a PuLP model.

The readable reference route (and the one that reaches CBC); the direct highspy
backend must agree with it, which tests check scenario by scenario.
"""

from __future__ import annotations

import time

import numpy as np
import pulp

from optimizer.highs_backend import RawResult, new_highs
from optimizer.prepare import PreparedLP


def build_model(lp: PreparedLP) -> tuple[pulp.LpProblem, list[pulp.LpVariable]]:
    prob = pulp.LpProblem("gridshare_plan", pulp.LpMinimize)
    variables = [
        prob.add_variable(
            f"c{j}",
            lowBound=float(lp.col_lower[j]),
            upBound=None if np.isinf(lp.col_upper[j]) else float(lp.col_upper[j]),
        )
        for j in range(lp.n_col)
    ]
    prob += pulp.LpAffineExpression(
        [(variables[j], float(c)) for j, c in enumerate(lp.col_cost) if c != 0.0]
    )
    rows, cols, vals = lp.coo()
    order = np.argsort(rows, kind="stable")
    rows, cols, vals = rows[order], cols[order], vals[order]
    bounds = np.searchsorted(rows, np.arange(lp.n_row + 1))
    for r in range(lp.n_row):
        a, b = bounds[r], bounds[r + 1]
        expr = pulp.LpAffineExpression(
            [(variables[int(c)], float(v)) for c, v in zip(cols[a:b], vals[a:b], strict=True)]
        )
        lo, hi = lp.row_lower[r], lp.row_upper[r]
        if lo == hi:
            prob += (expr == float(hi), f"r{r}")
        else:
            if np.isfinite(hi):
                prob += (expr <= float(hi), f"r{r}u")
            if np.isfinite(lo):
                prob += (expr >= float(lo), f"r{r}l")
    return prob, variables


class QuietHiGHS(pulp.HiGHS):
    """PuLP's HiGHS on the same quiet, configured instance as the direct backend
    (PuLP builds ``highspy.Highs``, whose constructor prints HiGHS's banner; see
    `highs_backend.new_highs`). PuLP only calls core methods on the instance."""

    def createAndConfigureSolver(self, lp: pulp.LpProblem) -> None:
        lp.solverModel = new_highs(self.timeLimit)


def solver_for(name: str, time_limit_s: float | None) -> pulp.LpSolver:
    if name == "highs":
        return QuietHiGHS(msg=False, timeLimit=time_limit_s)
    if name == "cbc":
        # the CBC binary PuLP 3.x ships, through the command-line API that stays
        # in PuLP 4 (PULP_CBC_CMD is deprecated)
        from pulp.apis import coin_api

        return pulp.COIN_CMD(msg=False, timeLimit=time_limit_s, path=coin_api.pulp_cbc_path)
    raise ValueError(f"unknown PuLP solver {name!r} (highs, cbc)")


def solve_pulp(
    lp: PreparedLP, solver: str = "highs", time_limit_s: float | None = None
) -> RawResult:
    t0 = time.perf_counter()
    prob, variables = build_model(lp)
    status = prob.solve(solver_for(solver, time_limit_s))
    ms = (time.perf_counter() - t0) * 1000.0
    name = pulp.LpStatus[status]
    if status != pulp.LpStatusOptimal:
        return RawResult(None, False, None, ms, name)
    x = np.array([v.value() or 0.0 for v in variables[: lp.n_x]], dtype=float)
    n_extra = sum(e.n_col for e in lp.extras)  # the planning terms' own columns, last
    extra = np.array([v.value() or 0.0 for v in variables[lp.n_col - n_extra :]], dtype=float)
    objective = float(pulp.value(prob.objective) or 0.0)
    return RawResult(x, True, objective, ms, name, extra=extra if n_extra else None)
