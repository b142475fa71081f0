"""`solve`: the planning engine's one entry point.

prepare (shared arrays) → exact phasor rows, if the site has phasor sums
(`optimizer.phasor`) → LP backend (direct highspy, kept warm, with cutting
planes; or PuLP) → even out interchangeable sessions → scaled into every exact
limit → minimum-current rule → exact limits checked → `Plan`.

Always returns a plan: when the solver fails or runs out of time without a
point, the water-filling heuristic plans and the status says so.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from enum import StrEnum

import numpy as np

from optimizer import peak_dispatch, phasor, v2x_dispatch
from optimizer.dispatch import floor_to_steps, make_dispatchable, water_fill
from optimizer.highs_backend import HighsPlanner, RawResult, solve_arrays
from optimizer.plan import BindingLimit, Plan, SolverStatus
from optimizer.prepare import PreparedLP, expand_to_slots, limit_load, prepare
from optimizer.problem import PlanningProblem
from optimizer.pulp_backend import solve_pulp

log = logging.getLogger(__name__)

LIMIT_TOLERANCE = 1e-6


class Backend(StrEnum):
    HIGHS = "highs"
    """The prepared arrays straight to highspy (default)."""
    PULP = "pulp"
    """The same LP written as a PuLP model (HiGHS through PuLP, or CBC)."""
    HEURISTIC = "heuristic"
    """No LP: per-slot water-filling (equal shares)."""


def symmetrize(lp: PreparedLP, x: np.ndarray) -> np.ndarray:
    """Give interchangeable sessions the average of their plans.

    Two sessions are interchangeable when the LP cannot tell them apart: same
    limit rows and coefficients, same slots and energy per ampere, same bounds,
    need, priority and previous-plan value. Swapping them maps an optimal
    solution to an optimal solution, so their average is optimal too (the LP is
    convex); this is what makes identical sessions get identical plans.
    """
    # a cheap key first; the full comparison only where it may match
    candidates: dict[tuple[object, ...], list[int]] = defaultdict(list)
    for i, s in enumerate(lp.sessions):
        if len(s.periods):
            d = s.demand
            if d.v2x is None:  # a discharge is not averaged with its x
                candidates[(s.families, s.window, s.upper_a, d.energy_kwh, d.priority)].append(i)
    classes: dict[tuple[object, ...], list[int]] = defaultdict(list)
    for members in candidates.values():
        if len(members) < 2:
            continue
        for i in members:
            s = lp.sessions[i]
            key = (
                s.periods.tobytes(),
                np.round(s.kwh_per_a, 12).tobytes(),
                lp.problem.previous.get(s.demand.session_id),
                members[0],
            )
            classes[key].append(i)
    out = x.copy()
    for members in classes.values():
        if len(members) < 2:
            continue
        n = len(lp.sessions[members[0]].periods)
        blocks = [slice(lp.sessions[i].first_col, lp.sessions[i].first_col + n) for i in members]
        mean = np.mean([x[b] for b in blocks], axis=0)
        for b in blocks:
            out[b] = mean
    return out


def _run_backend(
    lp: PreparedLP,
    backend: Backend,
    planner: HighsPlanner | None,
    pulp_solver: str,
    time_limit_s: float | None,
) -> RawResult:
    if backend is Backend.PULP:
        # the cutting planes of the highspy route, each round solved from scratch
        raw = solve_pulp(lp, pulp_solver, time_limit_s)
        cut = lp
        for _ in range(phasor.MAX_CUT_ROUNDS if lp.phasor is not None else 0):
            if raw.x is None or lp.phasor is None:
                break
            which = phasor.violated(lp.phasor, raw.x)
            if not len(which):
                break
            cut = phasor.with_cuts(cut, raw.x, which)
            raw = solve_pulp(cut, pulp_solver, time_limit_s)
        return raw
    if planner is not None:
        return planner.solve(lp)
    return solve_arrays(lp, time_limit_s)


def solve(
    problem: PlanningProblem,
    *,
    backend: Backend | str = Backend.HIGHS,
    planner: HighsPlanner | None = None,
    pulp_solver: str = "highs",
    time_limit_s: float | None = 10.0,
) -> Plan:
    """Plan the site: current per connector per slot, and its figures."""
    t0 = time.perf_counter()
    backend = Backend(backend)
    # a kept planner changes bounds in place when the LP keeps its shape
    linear = prepare(problem, stable_shape=planner is not None and backend is Backend.HIGHS)
    lp = phasor.exact(linear)  # `linear` itself on a site without phasor sums
    notes: list[str] = []
    objective: float | None = None
    extra: np.ndarray | None = None
    if lp.n_x == 0:
        x_lp = np.zeros(0)
        status = SolverStatus.EMPTY
    elif backend is Backend.HEURISTIC:
        x_lp = water_fill(linear)
        status = SolverStatus.HEURISTIC
    else:
        try:
            raw = _run_backend(lp, backend, planner, pulp_solver, time_limit_s)
        # A solver crash must not leave the site without a plan; it is reported
        # in the plan's status and notes, never hidden.
        except Exception as exc:
            log.exception("solver failed; planning with the heuristic")
            raw = RawResult(None, False, None, 0.0, f"solver error: {exc}")
        if raw.x is None:
            notes.append(f"solver: {raw.detail}; water-filling heuristic used")
            x_lp = water_fill(linear)
            status = SolverStatus.HEURISTIC
        else:
            x_lp = symmetrize(lp, np.clip(raw.x, 0.0, lp.col_upper[: lp.n_x]))
            x_lp = phasor.scale_inside(lp, x_lp)
            status = SolverStatus.OPTIMAL if raw.optimal else SolverStatus.FEASIBLE
            objective = raw.objective
            extra = raw.extra
            if raw.warm:
                notes.append("warm start")
    # the dispatch fills each phasor row up to its tangent at the LP's point
    lp = phasor.tangent(lp, x_lp) if status is not SolverStatus.HEURISTIC else linear
    discharge = v2x_dispatch.discharge_columns(lp, extra)  # V2X: room only as confirmed
    lp, x_lp = v2x_dispatch.for_dispatch(lp, x_lp, discharge)
    lp = peak_dispatch.keep(lp, x_lp, extra)  # the peak the LP chose stays a limit
    z = make_dispatchable(lp, x_lp)
    exact_z = phasor.enforce(lp, z, floor_to_steps)
    loads = limit_load(lp, z)
    upper = lp.row_upper[: lp.n_limit_rows]
    over = np.any((loads > upper + LIMIT_TOLERANCE) & phasor.linear_rows(lp))
    if over or exact_z is None:
        if over:  # never happens by construction; if it ever does, plan safely instead
            notes.append("dispatch exceeded a limit; water-filling heuristic used")
            log.error("dispatched plan exceeded a limit; falling back to water-filling")
        else:  # lowering currents into the discs did not settle: magnitudes summed
            notes.append("exact limits not met by the dispatch; water-filling, magnitudes summed")
            log.warning("dispatch did not settle within the exact limits; water-filling")
        lp = linear
        x_lp = water_fill(lp)
        z = make_dispatchable(lp, x_lp)
        status = SolverStatus.HEURISTIC
        discharge = {}
    else:
        z = exact_z
    plan = _assemble(lp, x_lp, z, status, objective, backend, notes, t0)
    return v2x_dispatch.with_discharge(plan, lp, v2x_dispatch.within_rows(lp, z, discharge))


def _assemble(
    lp: PreparedLP,
    x_lp: np.ndarray,
    z: np.ndarray,
    status: SolverStatus,
    objective: float | None,
    backend: Backend,
    notes: list[str],
    t0: float,
) -> Plan:
    problem = lp.problem
    T = problem.grid.slots
    ids = tuple(problem.site.connectors)
    row = {cid: i for i, cid in enumerate(ids)}
    current = np.zeros((len(ids), T))
    power = np.zeros((len(ids), T))
    n_s = len(lp.sessions)
    need = np.array([s.demand.energy_kwh for s in lp.sessions])
    kwh = lp.x_kwh
    drawn = drawn_kwh(lp, z, need, kwh)
    sess_idx, slot, value, col = expand_to_slots(lp, z)
    rows_of_session = np.array([row[s.demand.connector_id] for s in lp.sessions], dtype=np.int64)
    kw_of_session = np.array([s.kw_per_a for s in lp.sessions])
    if len(sess_idx):
        current[rows_of_session[sess_idx], slot] = value
        # the power the car draws: its energy in the column over the column's hours
        drawn_a = np.divide(drawn, kwh, out=np.zeros_like(drawn), where=kwh > 0)
        power[rows_of_session[sess_idx], slot] = drawn_a[col] * kw_of_session[sess_idx]
    now_cols = lp.x_period == 0
    delivered = np.bincount(lp.x_session, drawn, minlength=n_s)
    lost = np.maximum(x_lp - z, 0.0) if len(x_lp) else np.zeros(lp.n_x)
    lost0 = float(np.sum((lost * kwh)[now_cols]))
    ids_of = [s.demand.session_id for s in lp.sessions]
    energy = dict(zip(ids_of, delivered.tolist(), strict=True))
    requested = dict(zip(ids_of, need.tolist(), strict=True))
    unmet = dict(zip(ids_of, np.maximum(need - delivered, 0.0).tolist(), strict=True))
    session_connector = {s.demand.session_id: s.demand.connector_id for s in lp.sessions}
    lines = {cid: info.lines for cid, info in problem.site.connectors.items()}
    for s in lp.sessions:
        if len(s.periods) and s.periods[0] == 0:
            lines[s.demand.connector_id] = s.lines
    # tight in the LP's plan or in the slot as dispatched (which may use room
    # the LP left for evenness)
    binding = _binding(lp, x_lp, z) if len(x_lp) else ()
    return Plan(
        grid=problem.grid,
        connector_ids=ids,
        current_a=current,
        power_kw=power,
        lines=lines,
        session_connector=session_connector,
        energy_kwh=energy,
        requested_kwh=requested,
        unmet_kwh=unmet,
        binding=binding,
        status=status,
        solve_ms=(time.perf_counter() - t0) * 1000.0,
        backend=backend.value,
        objective=objective,
        dispatch_cost_kwh=lost0,
        notes=tuple(notes),
    )


def drawn_kwh(lp: PreparedLP, z: np.ndarray, need: np.ndarray, kwh: np.ndarray) -> np.ndarray:
    """Energy each x column delivers under currents ``z``: a car draws no more
    than its own maximum (a car below its station's minimum is offered the
    minimum), and stops once its need is met, even if offered its minimum."""
    if lp.n_x == 0:
        return np.zeros(0)
    offered = kwh * np.minimum(z, lp.col_upper[: lp.n_x])
    first = np.array([s.first_col for s in lp.sessions], dtype=np.int64)
    total = np.cumsum(offered)
    before = total - offered  # over all columns before this one...
    before -= before[first[lp.x_session]]  # ...of this column's session
    left = np.maximum(need[lp.x_session] - before, 0.0)
    return np.minimum(offered, left)


def _binding(lp: PreparedLP, *xs: np.ndarray) -> tuple[BindingLimit, ...]:
    upper = lp.row_upper[: lp.n_limit_rows]
    near = np.zeros(len(upper), dtype=bool)
    for x in xs:
        near |= upper - limit_load(lp, x) <= 1e-6 * np.maximum(1.0, upper)
    tight = np.flatnonzero(near)
    out = []
    for r in tight:
        fam = lp.families[int(lp.limit_row_family[r])]
        first = int(lp.period_first[lp.limit_row_period[r]])
        out.append(BindingLimit(fam.group_id, fam.quantity, first))
    return tuple(out)
