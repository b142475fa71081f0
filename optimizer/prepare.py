"""Turn a `PlanningProblem` into the arrays of one linear program.

Shared by every backend (PuLP and direct highspy) so both solve the very same
LP. Columns, in this order:

* ``x[s,t]``   current (A per line) of session s in slot t, for the slots its
  window overlaps, bounded by min(connector, cable, EV maximum);
* ``v[s,k]``   unmet energy of session s in segment k (K segments, each a K-th of
  its need, each dearer than the last: a convex penalty that evens out the
  delivered fraction between sessions when capacity is short);
* ``d[s]``     |x[s,0] − previous plan| for sessions the previous plan knew;
* ``w[j,k]``   for x columns in the first `EVEN_SLOTS` slots, the k-th piece of
  that current (x = Σ w), each piece dearer than the last: a convex penalty
  on the rate that shares a slot's capacity evenly instead of giving one car
  everything and the next nothing.

Rows:

* limit rows, one per (family, slot): a family is (group, line) with
  coefficient 1, (group, kW) with the session's kW per A, or a weighted group
  with |weight|; upper bound = capacity − load that is fixed whatever we plan;
* energy rows, one per session: Σ kWh-per-A·x + Σ v = energy needed (so the
  plan never delivers more than needed);
* two rows per ``d``;
* one row per x column that has ``w`` columns (x − Σ w = 0).

Objective, in order of weight (each tier far below the one above it):
unmet energy × priority, evenness of the unmet fraction (segment slopes +δ per
segment), charging early or at low prices, evenness of the rates within a slot,
staying close to the previous plan in the slot dispatched now.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from optimizer.problem import PlanningProblem, SessionDemand
from optimizer.site import LINES, ConnectorInfo, Line

UNMET_WEIGHT = 1000.0
"""Cost per kWh of need left unmet (times the session's priority)."""
SEGMENTS = 8
"""Pieces of the unmet-energy penalty (fairness resolution: 1/SEGMENTS of a need)."""
FAIRNESS_STEP = 0.2
"""Extra cost per kWh of each further unmet segment (at most SEGMENTS·step/UNMET
= 0.16 % of energy is ever traded for evenness)."""
EARLY_WEIGHT = 0.05
"""Cost per kWh of charging in the last slot rather than now (charge early)."""
PRICE_WEIGHT = 0.1
"""Cost per kWh at the highest price of the horizon."""
EVEN_SLOTS = 8
"""Slots (from now) whose rates are evened out between competing sessions."""
EVEN_PIECES_NOW = 16
"""Pieces of the evenness penalty in the slot dispatched now (fine: 1/16 of a maximum)."""
EVEN_PIECES = 4
"""Pieces in the later `EVEN_SLOTS` slots (coarser: they are re-planned before dispatch)."""
EVEN_WEIGHT = 1e-4
"""Extra cost per kWh of each further quarter of a connector's rate: well below
what charging one slot earlier gains, so a lone car still charges at full rate."""
PREVIOUS_WEIGHT = 1e-3
"""Cost per kWh-equivalent of moving the dispatched current away from the previous plan."""

INF = math.inf


@dataclass(frozen=True)
class SessionCols:
    """What the LP knows of one session."""

    demand: SessionDemand
    connector: ConnectorInfo
    lines: tuple[Line, ...]
    kw_per_a: float
    upper_a: float
    first_col: int
    slots: np.ndarray
    """Slots the session has a column in (increasing)."""
    kwh_per_a: np.ndarray
    """Energy per ampere in each of those slots (overlap-weighted)."""
    families: tuple[tuple[int, float], ...]
    """(family index, coefficient) of every limit family the session loads."""


@dataclass(frozen=True)
class Family:
    group_id: str
    quantity: str  # "L1" | "L2" | "L3" | "kW" | "weighted"
    capacity: np.ndarray
    """Per-slot upper bound of the family's rows (fixed loads already removed)."""


@dataclass(frozen=True)
class PreparedLP:
    problem: PlanningProblem
    sessions: tuple[SessionCols, ...]
    families: tuple[Family, ...]
    n_x: int
    n_v: int
    n_d: int
    n_w: int
    col_lower: np.ndarray
    col_upper: np.ndarray
    col_cost: np.ndarray
    row_lower: np.ndarray
    row_upper: np.ndarray
    n_limit_rows: int
    limit_row_family: np.ndarray
    limit_row_slot: np.ndarray
    # CSC matrix
    a_start: np.ndarray
    a_index: np.ndarray
    a_value: np.ndarray
    x_session: np.ndarray
    """Session index of every x column."""
    x_slot: np.ndarray
    d_session: np.ndarray
    """Session index of every d column."""
    w_x: np.ndarray
    """The x column each run of w columns splits."""
    w_piece: np.ndarray
    """Piece number of every w column."""

    @property
    def n_col(self) -> int:
        return self.n_x + self.n_v + self.n_d + self.n_w

    @property
    def n_row(self) -> int:
        return len(self.row_lower)

    def coo(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(row, col, value) triplets of the matrix."""
        cols = np.repeat(np.arange(self.n_col), np.diff(self.a_start))
        return self.a_index, cols, self.a_value


def session_upper_a(demand: SessionDemand, info: ConnectorInfo) -> float:
    ub = info.max_current_a
    if demand.ev_max_current_a is not None:
        ub = min(ub, demand.ev_max_current_a)
    return ub


def _families(problem: PlanningProblem) -> tuple[list[Family], dict[tuple[str, str], int]]:
    site, grid, cap = problem.site, problem.grid, problem.capacity
    fixed = {k: v for k, v in problem.fixed_load_a.items() if v > 0}
    fams: list[Family] = []
    index: dict[tuple[str, str], int] = {}

    def add(gid: str, qty: str, arr: np.ndarray) -> None:
        index[(gid, qty)] = len(fams)
        fams.append(Family(gid, qty, np.maximum(arr, 0.0)))

    inf = np.full(grid.slots, INF)
    for g in site.groups:
        limit_a = cap.limit_a.get(g.id)
        if limit_a is None:
            limit_a = np.full(grid.slots, g.limit_a if g.limit_a is not None else INF)
        if g.weights is not None:
            members = site.weighted_members(g)
            used = sum(members.get(k, 0.0) * a for k, a in fixed.items())
            add(g.id, "weighted", limit_a - used)
            continue
        limit_kw = cap.limit_kw.get(g.id)
        if limit_kw is None:
            limit_kw = np.full(grid.slots, g.limit_kw if g.limit_kw is not None else INF)
        under = [site.connectors[k] for k in fixed if g.id in site.connectors[k].ancestors]
        for line in LINES:
            used_a = sum(fixed[i.key] for i in under if line in i.lines)
            if np.all(np.isinf(limit_a)):
                add(g.id, line.value, inf)
            else:
                add(g.id, line.value, limit_a - used_a)
        if not np.all(np.isinf(limit_kw)):
            used_kw = sum(fixed[i.key] * i.kw_per_amp() for i in under)
            add(g.id, "kW", limit_kw - used_kw)
    return fams, index


def prepare(problem: PlanningProblem) -> PreparedLP:
    site, grid = problem.site, problem.grid
    T = grid.slots
    fams, fam_index = _families(problem)
    weighted = [(g, site.weighted_members(g)) for g in site.groups if g.weights is not None]
    now_pos = grid.position(problem.now)

    sessions: list[SessionCols] = []
    col = 0
    for d in problem.sessions:
        info = site.connectors[d.connector_id]
        lines = d.lines or info.lines
        kw = info.kw_per_amp(lines)
        ub = session_upper_a(d, info)
        p0 = max(grid.position(d.arrival), now_pos, 0.0)
        p1 = min(grid.position(d.departure), float(T))
        if p1 > p0 and ub > 0 and d.energy_kwh > 0:
            t = np.arange(math.floor(p0), math.ceil(p1))
            overlap = np.minimum(t + 1, p1) - np.maximum(t, p0)
            keep = overlap > 1e-9
            t, overlap = t[keep], overlap[keep]
        else:
            t, overlap = np.zeros(0, dtype=np.int64), np.zeros(0)
        families: list[tuple[int, float]] = []
        for gid in info.ancestors:
            for line in lines:
                families.append((fam_index[(gid, line.value)], 1.0))
            if (gid, "kW") in fam_index:
                families.append((fam_index[(gid, "kW")], kw))
        for g, members in weighted:
            if members.get(info.key):
                families.append((fam_index[(g.id, "weighted")], members[info.key]))
        sessions.append(
            SessionCols(
                demand=d,
                connector=info,
                lines=lines,
                kw_per_a=kw,
                upper_a=ub,
                first_col=col,
                slots=t.astype(np.int64),
                kwh_per_a=overlap * kw * grid.slot_hours,
                families=tuple(families),
            )
        )
        col += len(t)
    n_x = col
    n_s = len(sessions)

    # --- x columns -------------------------------------------------------------
    x_session = np.repeat(np.arange(n_s), [len(s.slots) for s in sessions]).astype(np.int64)
    x_slot = np.concatenate([s.slots for s in sessions]) if n_s else np.zeros(0, np.int64)
    x_kwh = np.concatenate([s.kwh_per_a for s in sessions]) if n_s else np.zeros(0)
    x_upper = np.repeat([s.upper_a for s in sessions], [len(s.slots) for s in sessions])
    prio = np.array([s.demand.priority for s in sessions]) if n_s else np.zeros(0)
    if problem.prices is not None and np.ptp(problem.prices) > 0:
        p = problem.prices
        rel = (p - p.min()) / np.ptp(p)
        x_cost = x_kwh * (PRICE_WEIGHT * rel[x_slot] + 0.1 * EARLY_WEIGHT * x_slot / T)
    else:
        x_cost = x_kwh * EARLY_WEIGHT * (x_slot + 0.5) / T

    # --- v columns (unmet energy segments) ----------------------------------------
    need = np.array([s.demand.energy_kwh for s in sessions]) if n_s else np.zeros(0)
    has_cols = np.array([len(s.slots) > 0 for s in sessions], dtype=bool)
    n_v = n_s * SEGMENTS
    v_upper = np.repeat(need / SEGMENTS, SEGMENTS)
    seg = np.tile(np.arange(SEGMENTS), n_s)
    v_cost = np.repeat(prio, SEGMENTS) * (UNMET_WEIGHT + FAIRNESS_STEP * seg)

    # --- d columns (distance to previous plan now) -----------------------------
    d_sessions = [
        i
        for i, s in enumerate(sessions)
        if s.demand.session_id in problem.previous and len(s.slots) and s.slots[0] == 0
    ]
    n_d = len(d_sessions)
    d_session = np.array(d_sessions, dtype=np.int64)
    d_cost = np.array(
        [PREVIOUS_WEIGHT * sessions[i].kwh_per_a[0] for i in d_sessions], dtype=float
    )

    # --- limit rows -------------------------------------------------------------------
    rows_f: list[np.ndarray] = []
    cols_f: list[np.ndarray] = []
    vals_f: list[np.ndarray] = []
    for s in sessions:
        n = len(s.slots)
        if not n or not s.families:
            continue
        fam = np.array([f for f, _ in s.families], dtype=np.int64)
        coef = np.array([c for _, c in s.families])
        cols = s.first_col + np.arange(n)
        rows_f.append((fam[:, None] * T + s.slots[None, :]).ravel())
        cols_f.append(np.broadcast_to(cols, (len(fam), n)).ravel())
        vals_f.append(np.repeat(coef, n))
    if rows_f:
        lim_key = np.concatenate(rows_f)
        lim_col = np.concatenate(cols_f)
        lim_val = np.concatenate(vals_f)
    else:
        lim_key = np.zeros(0, np.int64)
        lim_col = np.zeros(0, np.int64)
        lim_val = np.zeros(0)
    cap_all = np.concatenate([f.capacity for f in fams]) if fams else np.zeros(0)
    # only rows that have members and a finite bound
    finite = np.isfinite(cap_all[lim_key]) if len(lim_key) else np.zeros(0, bool)
    lim_key, lim_col, lim_val = lim_key[finite], lim_col[finite], lim_val[finite]
    used_keys, lim_row = np.unique(lim_key, return_inverse=True)
    n_l = len(used_keys)
    limit_row_family = used_keys // T
    limit_row_slot = used_keys % T
    lim_upper = cap_all[used_keys] if n_l else np.zeros(0)

    # --- energy rows --------------------------------------------------------------------
    e_row = n_l + x_session
    v_col = n_x + np.arange(n_v)
    v_row = n_l + np.repeat(np.arange(n_s), SEGMENTS)

    # --- previous-plan rows: x - d <= prev (block 1); x + d >= prev (block 2) --------
    prev = np.array([problem.previous[sessions[i].demand.session_id] for i in d_sessions])
    d_col = n_x + n_v + np.arange(n_d)
    x0_col = np.array([sessions[i].first_col for i in d_sessions], dtype=np.int64)
    r1 = n_l + n_s + np.arange(n_d)
    r2 = r1 + n_d

    # --- evenness pieces: x - sum_k w[k] = 0 for x in the first EVEN_SLOTS slots --------
    w_x = np.flatnonzero(x_slot < EVEN_SLOTS)
    pieces = np.where(x_slot[w_x] == 0, EVEN_PIECES_NOW, EVEN_PIECES)
    n_w = int(pieces.sum())
    w_col = n_x + n_v + n_d + np.arange(n_w)
    w_row_of_x = n_l + n_s + 2 * n_d + np.arange(len(w_x))
    w_row = np.repeat(w_row_of_x, pieces)
    w_piece = np.arange(n_w) - np.repeat(np.cumsum(pieces) - pieces, pieces)
    w_upper = np.repeat(x_upper[w_x] / pieces, pieces)
    # cost per kWh grows by EVEN_WEIGHT per quarter of the maximum, whatever the piece count
    w_cost = np.repeat(x_kwh[w_x] * EVEN_WEIGHT * EVEN_PIECES / pieces, pieces) * w_piece

    rows = np.concatenate([lim_row, e_row, v_row, r1, r1, r2, r2, w_row_of_x, w_row])
    cols = np.concatenate(
        [lim_col, np.arange(n_x), v_col, x0_col, d_col, x0_col, d_col, w_x, w_col]
    )
    vals = np.concatenate(
        [
            lim_val, x_kwh, np.ones(n_v), np.ones(n_d), -np.ones(n_d), np.ones(n_d),
            np.ones(n_d), np.ones(len(w_x)), -np.ones(n_w),
        ]
    )
    order = np.lexsort((rows, cols))
    rows, cols, vals = rows[order], cols[order], vals[order]
    n_col = n_x + n_v + n_d + n_w
    a_start = np.zeros(n_col + 1, dtype=np.int64)
    np.cumsum(np.bincount(cols, minlength=n_col), out=a_start[1:])

    energy = np.where(has_cols, need, 0.0)
    zero_w = np.zeros(len(w_x))
    row_lower = np.concatenate([np.full(n_l, -INF), energy, np.full(n_d, -INF), prev, zero_w])
    row_upper = np.concatenate([lim_upper, energy, prev, np.full(n_d, INF), zero_w])

    return PreparedLP(
        problem=problem,
        sessions=tuple(sessions),
        families=tuple(fams),
        n_x=n_x,
        n_v=n_v,
        n_d=n_d,
        n_w=n_w,
        col_lower=np.zeros(n_col),
        col_upper=np.concatenate([x_upper, v_upper, np.full(n_d, INF), w_upper]),
        col_cost=np.concatenate([x_cost, v_cost, d_cost, w_cost]),
        row_lower=row_lower,
        row_upper=row_upper,
        n_limit_rows=n_l,
        limit_row_family=limit_row_family,
        limit_row_slot=limit_row_slot,
        a_start=a_start,
        a_index=rows.astype(np.int32),
        a_value=vals.astype(float),
        x_session=x_session,
        x_slot=x_slot.astype(np.int64),
        d_session=d_session,
        w_x=w_x,
        w_piece=w_piece,
    )


def limit_load(lp: PreparedLP, x: np.ndarray) -> np.ndarray:
    """Load of every limit row under x-column values ``x`` (length n_x)."""
    rows, cols, vals = lp.coo()
    m = (rows < lp.n_limit_rows) & (cols < lp.n_x)
    return np.bincount(rows[m], weights=vals[m] * x[cols[m]], minlength=lp.n_limit_rows)
