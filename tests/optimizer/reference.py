"""An independent LP: the best energy a site can deliver, written from scratch.

A PuLP model over the grid's own slots that only maximises priority-weighted
energy under every group limit, each car's maximum and battery tail: no
periods, no evenness, no timing terms, and no minimum-current rule.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pulp

from optimizer import PlanningProblem
from tests.optimizer.sites import group_loads


def independent_best(prob: PlanningProblem) -> float:
    site, grid = prob.site, prob.grid
    m = pulp.LpProblem("check", pulp.LpMaximize)
    x: dict[tuple[str, int], pulp.LpVariable] = {}
    energy: dict[str, pulp.LpAffineExpression] = {}
    for s in prob.sessions:
        info = site.connectors[s.connector_id]
        ub = (
            0.0
            if s.connector_id in prob.fixed_load_a
            else min(info.max_current_a, s.ev_max_current_a or np.inf)
        )
        terms: list[tuple[pulp.LpVariable, float]] = []
        for t in range(grid.slots):
            a = max(grid.slot_start(t), s.arrival, prob.now)
            b = min(grid.slot_start(t) + grid.step, s.departure)
            hours = (b - a).total_seconds() / 3600
            if hours <= 1e-9:
                continue
            x[(s.session_id, t)] = m.add_variable(f"x_{s.session_id}_{t}", 0, ub)
            if s.taper_kwh is not None:
                # battery tail: never more than max × (need − delivered so far) / taper
                so_far = pulp.LpAffineExpression(terms)
                m += x[(s.session_id, t)] * s.taper_kwh <= info.max_current_a * (
                    s.energy_kwh - so_far
                )
            terms.append((x[(s.session_id, t)], info.kw_per_amp(s.lines) * hours))
        energy[s.session_id] = pulp.LpAffineExpression(terms)
        m += energy[s.session_id] <= s.energy_kwh
    m += pulp.lpSum(s.priority * energy[s.session_id] for s in prob.sessions)
    # limits: evaluate the load expressions with the same independent helper
    ids = list(site.connectors)
    for t in range(grid.slots):
        cur = np.zeros((len(ids), grid.slots), dtype=object)
        for s in prob.sessions:
            if (s.session_id, t) in x:
                cur[ids.index(s.connector_id), t] = x[(s.session_id, t)]
        zero_fixed = replace(prob, fixed_load_a={})
        loads = group_loads(zero_fixed, cur, {k: v.lines for k, v in site.connectors.items()})
        fixed = group_loads(
            zero_fixed, _fixed_matrix(prob, ids), {k: v.lines for k, v in site.connectors.items()}
        )
        for (gid, qty), load in loads.items():
            expr = load[t]
            if not isinstance(expr, pulp.LpAffineExpression) and not isinstance(
                expr, pulp.LpVariable
            ):
                continue
            cap = _cap(prob, gid, qty, t) - float(fixed[(gid, qty)][t])
            if np.isfinite(cap):
                m += expr <= max(cap, 0.0)
    m.solve(pulp.HiGHS(msg=False))
    return float(pulp.value(m.objective) or 0.0)


def _fixed_matrix(prob: PlanningProblem, ids: list[str]) -> np.ndarray:
    out = np.zeros((len(ids), prob.grid.slots))
    for cid, amps in prob.fixed_load_a.items():
        out[ids.index(cid)] = amps
    return out


def _cap(prob: PlanningProblem, gid: str, qty: str, t: int) -> float:
    g = prob.site.group_by_id[gid]
    if qty == "kW":
        arr = prob.capacity.limit_kw.get(gid)
        return float(arr[t]) if arr is not None else (g.limit_kw or np.inf)
    arr = prob.capacity.limit_a.get(gid)
    return float(arr[t]) if arr is not None else (g.limit_a if g.limit_a is not None else np.inf)
