"""Turn a `PlanningProblem` into the arrays of one linear program.

Shared by every backend (PuLP and direct highspy) so both solve the very same
LP. Columns, in this order:

* ``x[s,p]``   current (A per line) of session s in period p, for the periods
  its window overlaps, bounded by min(connector, cable, EV maximum);
* ``v[s,k]``   unmet energy of session s in segment k (K segments, each a K-th of
  its need, each dearer than the last: a convex penalty that evens out the
  delivered fraction between sessions when capacity is short);
* ``d[s]``     |x[s,0] − previous plan| for sessions the previous plan knew
  that have a column in the slot dispatched now; with ``stable_shape`` for all
  of those sessions, fixed at 0 and free of cost where the plan did not know
  them: the same LP, in a shape a kept solver can update in place;
* ``w[j,k]``   for x columns in the first `EVEN_SLOTS` periods, the k-th piece of
  that current (x = Σ w), each piece dearer than the last: a convex penalty
  on the rate that shares a slot's capacity evenly instead of giving one car
  everything and the next nothing.

Periods (move blocking): the grid's own slots for the first `FINE_HOURS`, then
hourly periods aligned to the clock hour. A period's capacity is the lowest of
its slots, so a coarse period is never more permissive than the slots it
covers; the plan is expanded back to every slot of the grid. Coarse periods
are far ahead and re-planned (on the fine grid) before they are dispatched;
they make the LP about three times smaller at a 24 h horizon.

Rows:

* limit rows, one per (family, period): a family is (group, line) with
  coefficient 1, (group, kW) with the session's kW per A, or a weighted group
  with |weight|; upper bound = capacity − non-EV load − load that is fixed
  whatever we plan;
* energy rows, one per session: Σ kWh-per-A·x + Σ v = energy needed (so the
  plan never delivers more than needed);
* two rows per ``d`` (free where the previous plan did not know the session);
* one row per x column that has ``w`` columns (x − Σ w = 0);
* battery-tail rows, for sessions with a ``taper_kwh``: one per x column
  where the tail can bind, x ≤ the connector's maximum × (need − energy
  planned before that period) / taper (see `optimizer.rows.tail_rows`).

Objective, in order of weight (each tier far below the one above it):
unmet energy × priority, evenness of the unmet fraction (segment slopes +δ per
segment), charging early or at low prices, evenness of the rates within a slot,
staying close to the previous plan in the slot dispatched now.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import cached_property, partial

import numpy as np

from optimizer import costs, solar, v2x
from optimizer import families as site_families
from optimizer.families import KW, WEIGHTED, FamilyKey, PhasorRows, SiteFamilies
from optimizer.problem import PlanningProblem, SessionDemand
from optimizer.rows import (
    BaseLayout,
    ExtraBlock,
    Family,
    SessionCols,
    csc,
    limit_rows,
    tail_rows,
)
from optimizer.site import LINES, ConnectorInfo, Line

UNMET_WEIGHT = 1000.0
"""Cost per kWh of need left unmet (times the session's priority)."""
FINE_HOURS = 2.0
"""Hours from now planned on the grid's own slots."""
BLOCK_MINUTES = 60
"""Length of the coarse periods after that (aligned to the clock)."""
SEGMENTS = 4
"""Pieces of the unmet-energy penalty (fairness resolution: 1/SEGMENTS of a need)."""
FAIRNESS_STEP = 0.2
"""Extra cost per kWh of each further unmet segment (at most SEGMENTS·step/UNMET
= 0.08 % of energy is ever traded for evenness)."""
EARLY_WEIGHT = 0.05
"""Cost per kWh of charging in the last slot rather than now (charge early)."""
PRICE_WEIGHT = 0.1
"""Cost per kWh at the highest price of the horizon."""
EVEN_SLOTS = 1
"""Slots (from now) whose rates are evened out between competing sessions. Only
the slot dispatched now: later slots are re-planned before they are dispatched,
and pieces there double the solve time (measured at 1000 connectors)."""
EVEN_PIECES_NOW = 8
"""Pieces of the evenness penalty in the slot dispatched now (1/8 of a maximum)."""
EVEN_PIECES = 4
"""Pieces in later slots, if `EVEN_SLOTS` > 1."""
EVEN_WEIGHT = 1e-3
"""Extra cost per kWh of each further quarter of a connector's rate in the slot
dispatched now. From the fourth of the `EVEN_PIECES_NOW` pieces on it outweighs
`PREVIOUS_WEIGHT`, so the slot is re-shared between competing cars rather than
held as the previous plan had it; far below the unmet-energy tiers, so it never
trades planned energy. On a fine grid it may exceed what charging one slot
earlier gains: a lone car's LP rate now can then be below its maximum, and the
dispatch (`optimizer.dispatch`) gives it the room left. Measured on JPL May-Aug
2019 (realistic models): +0.6 / +0.4 points of energy delivered at 30 / 50 kW
against 1e-4; neutral with ideal models."""
PREVIOUS_WEIGHT = 1e-3
"""Cost per kWh-equivalent of moving the dispatched current away from the previous plan."""

MIN_NEED_KWH = 1e-4
"""Needs below this (0.1 Wh) are treated as met: nothing to plan, and columns
bounded by a few 1e-8 kWh sit at the solvers' tolerances (PuLP's route then
reported a trivially feasible LP infeasible)."""
INF = np.inf


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
    limit_row_period: np.ndarray
    period_first: np.ndarray
    """First grid slot of every period."""
    period_len: np.ndarray
    """Number of grid slots in every period."""
    # CSC matrix
    a_start: np.ndarray
    a_index: np.ndarray
    a_value: np.ndarray
    x_session: np.ndarray
    """Session index of every x column."""
    x_period: np.ndarray
    d_session: np.ndarray
    """Session index of every d column."""
    w_x: np.ndarray
    """The x column each run of w columns splits."""
    w_piece: np.ndarray
    """Piece number of every w column."""
    tail_x: np.ndarray
    """The x column each battery-tail row bounds (rows after the w rows)."""
    phasor: PhasorRows | None = None  # rows on phasor sums, after `optimizer.phasor.exact`
    extras: tuple[ExtraBlock, ...] = ()
    """Columns and rows of the extra planning terms, after the w columns and the tail rows."""

    @property
    def n_col(self) -> int:
        return self.n_x + self.n_v + self.n_d + self.n_w + sum(e.n_col for e in self.extras)

    @property
    def n_row(self) -> int:
        return len(self.row_lower)

    @property
    def n_periods(self) -> int:
        return len(self.period_first)

    def coo(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(row, col, value) triplets of the matrix."""
        cols = np.repeat(np.arange(self.n_col), np.diff(self.a_start))
        return self.a_index, cols, self.a_value

    @cached_property
    def limit_entries(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(row, x column, value) of the limit rows' entries, column-wise."""
        rows, cols, vals = self.coo()
        m = (rows < self.n_limit_rows) & (cols < self.n_x)
        return rows[m], cols[m], vals[m]

    @cached_property
    def x_kwh(self) -> np.ndarray:
        """Energy per ampere of every x column."""
        return np.concatenate([np.zeros(0), *(s.kwh_per_a for s in self.sessions)])


def session_upper_a(demand: SessionDemand, info: ConnectorInfo) -> float:
    ub = info.max_current_a
    if demand.ev_max_current_a is not None:
        ub = min(ub, demand.ev_max_current_a)
    return ub


def periods_of(problem: PlanningProblem) -> np.ndarray:
    """First slot of every period: fine slots, then clock-aligned blocks."""
    grid = problem.grid
    T = grid.slots
    per_block = max(1, BLOCK_MINUTES // grid.slot_minutes)
    fine = min(T, int(np.ceil(FINE_HOURS * 60 / grid.slot_minutes)))
    if per_block == 1 or fine >= T:
        return np.arange(T)
    epoch = grid.epoch_slot()
    while fine < T and (epoch + fine) % per_block:
        fine += 1
    return np.concatenate([np.arange(fine), np.arange(fine, T, per_block)]).astype(np.int64)


def _families(
    problem: PlanningProblem, period_first: np.ndarray
) -> tuple[list[Family], dict[FamilyKey, int]]:
    """The LP's families, groups in site order: a weighted group's, or a group's
    lines and (if it has a power limit) its kW; capacity less the fixed loads."""
    site, grid, cap = problem.site, problem.grid, problem.capacity
    fixed = {k: v for k, v in problem.fixed_load_a.items() if v > 0}
    fams: list[Family] = []
    index: dict[FamilyKey, int] = {}

    def add(gid: str, qty: str, arr: np.ndarray) -> None:
        index[(gid, qty)] = len(fams)
        # a period is as tight as its tightest slot
        fams.append(Family(gid, qty, np.minimum.reduceat(np.maximum(arr, 0.0), period_first)))

    inf = np.full(grid.slots, INF)
    for g in site.groups:
        limit_a = site_families.group_limit_a(site, cap, g.id, grid.slots)
        if g.weights is not None:
            members = site.weighted_members(g)
            used = sum(members.get(k, 0.0) * a for k, a in fixed.items())
            add(g.id, WEIGHTED, limit_a - used)
            continue
        limit_kw = site_families.group_limit_kw(site, cap, g.id, grid.slots)
        under = [site.connectors[k] for k in fixed if g.id in site.connectors[k].ancestors]
        for line in LINES:
            used_a = sum(fixed[i.key] for i in under if line in i.lines)
            if np.all(np.isinf(limit_a)):
                add(g.id, line.value, inf)
            else:  # less a building's load on the line (`Capacity.non_ev_a`)
                add(
                    g.id,
                    line.value,
                    site_families.line_limit_a(site, cap, g.id, line, grid.slots) - used_a,
                )
        if not np.all(np.isinf(limit_kw)):
            used_kw = sum(fixed[i.key] * i.kw_per_amp() for i in under)
            add(g.id, KW, site_families.ev_limit_kw(site, cap, g.id, grid.slots) - used_kw)
    for (gid, qty), surplus in solar.mode_families(problem):  # pseudo-groups of the PV modes
        add(gid, qty, surplus)
    return fams, index


@dataclass(frozen=True)
class _Periods:
    first: np.ndarray
    """First grid slot of every period."""
    length: np.ndarray
    """Number of grid slots in every period."""
    of_slot: np.ndarray
    """Period of every grid slot."""


def _periods(problem: PlanningProblem) -> _Periods:
    """The LP's periods (see `periods_of`) with their lengths and the period of each slot."""
    first = periods_of(problem)
    length = np.diff(np.append(first, problem.grid.slots))
    return _Periods(first, length, np.repeat(np.arange(len(first)), length))


@dataclass(frozen=True)
class _XColumns:
    """The x columns of every session, built for all sessions at once."""

    infos: list[ConnectorInfo]
    lines_of: list[tuple[Line, ...]]
    kw: np.ndarray
    """kW per A of every session on the lines it loads."""
    upper: np.ndarray
    """Upper bound of every session's columns (0 for a station with a fixed load)."""
    p0: np.ndarray
    p1: np.ndarray
    """Window of every session, in fractional slot positions of the grid."""
    need: np.ndarray
    owner: np.ndarray
    """Session index of every x column."""
    period: np.ndarray
    """Period of every x column."""
    count: np.ndarray
    """Number of x columns of every session."""
    starts: np.ndarray
    """First x column of every session."""
    kwh: np.ndarray
    """Energy per ampere of every x column (overlap-weighted)."""


def _x_columns(problem: PlanningProblem, periods: _Periods) -> _XColumns:
    """Session windows on the grid and the x columns they overlap, all sessions
    at once (vectorised: this runs for every re-plan of sites with thousands of
    connectors)."""
    site, grid = problem.site, problem.grid
    T = grid.slots
    demands = problem.sessions
    n_s = len(demands)
    infos = [site.connectors[d.connector_id] for d in demands]
    lines_of = [d.lines or i.lines for d, i in zip(demands, infos, strict=True)]
    kw = np.array([i.kw_per_amp(ln) for i, ln in zip(infos, lines_of, strict=True)])
    ub = np.array(
        [
            0.0 if d.connector_id in problem.fixed_load_a else session_upper_a(d, i)
            for d, i in zip(demands, infos, strict=True)
        ]
    )  # an unresponsive station draws its fixed load whatever we plan
    start_s = grid.start.timestamp()
    step_s = grid.slot_minutes * 60.0
    now_pos = (problem.now.timestamp() - start_s) / step_s
    arr = np.array([d.arrival.timestamp() for d in demands])
    dep = np.array([d.departure.timestamp() for d in demands])
    need_all = np.array([d.energy_kwh for d in demands])
    p0 = np.maximum(np.maximum((arr - start_s) / step_s, now_pos), 0.0) if n_s else arr
    p1 = np.minimum((dep - start_s) / step_s, float(T)) if n_s else dep
    live = (p1 > p0) & (ub > 0) & (need_all > MIN_NEED_KWH)
    period_of_slot = periods.of_slot
    first = np.where(live, period_of_slot[np.clip(np.floor(p0), 0, T - 1).astype(np.int64)], 0)
    last = period_of_slot[np.clip(np.ceil(p1).astype(np.int64) - 1, 0, T - 1)]
    count = np.where(live, last - first + 1, 0)
    owner = np.repeat(np.arange(n_s), count)
    offset = np.arange(int(count.sum())) - np.repeat(np.cumsum(count) - count, count)
    x_period = first[owner] + offset
    pf = periods.first[x_period]
    overlap = np.minimum(pf + periods.length[x_period], p1[owner]) - np.maximum(pf, p0[owner])
    keep = overlap > 1e-9
    owner, x_period, overlap = owner[keep], x_period[keep], overlap[keep]
    count = np.bincount(owner, minlength=n_s)
    starts = np.cumsum(count) - count
    x_kwh = overlap * kw[owner] * grid.slot_hours
    return _XColumns(
        infos, lines_of, kw, ub, p0, p1, need_all, owner, x_period, count, starts, x_kwh
    )


def _session_cols(
    problem: PlanningProblem, x: _XColumns, fam_index: dict[FamilyKey, int]
) -> list[SessionCols]:
    """One `SessionCols` per session: its columns, window and limit families."""
    families = SiteFamilies.of(problem.site)
    family_cache: dict[tuple[str, tuple[Line, ...], float, str], tuple[tuple[int, float], ...]] = {}

    def families_of(info: ConnectorInfo, lines: tuple[Line, ...], kw: float) -> tuple:
        # connectors alike in group, lines and kW per A share their families
        key = (info.group, lines, kw, info.key if families.weighted else "")
        fam = family_cache.get(key)
        if fam is None:
            # a kW family is in the LP only where its group has a power limit
            fam = family_cache[key] = tuple(
                (fam_index[k], coef)
                for k, coef in families.loaded_by(info, lines)
                if k in fam_index
            )
        return fam

    # plain Python numbers, read once (indexing numpy arrays per session is slow)
    kw, upper, p0, p1 = x.kw.tolist(), x.upper.tolist(), x.p0.tolist(), x.p1.tolist()
    starts, ends = x.starts.tolist(), (x.starts + x.count).tolist()
    surplus = solar.surplus_kw(problem)
    return [
        SessionCols(
            demand=d,
            connector=info,
            lines=x.lines_of[i],
            kw_per_a=kw[i],
            upper_a=upper[i],
            first_col=starts[i],
            periods=x.period[starts[i] : ends[i]],
            kwh_per_a=x.kwh[starts[i] : ends[i]],
            window=(p0[i], p1[i]),
            families=families_of(info, x.lines_of[i], kw[i])
            + solar.session_families(problem.site, d, info, kw[i], fam_index, surplus),
        )
        for i, (d, info) in enumerate(zip(problem.sessions, x.infos, strict=True))
    ]


def _x_cost(problem: PlanningProblem, periods: _Periods, x: _XColumns) -> np.ndarray:
    """Cost of every x column: charging early (× priority: served first), or at low prices."""
    mid = (periods.first + periods.length / 2.0) / problem.grid.slots  # when, 0..1
    prio = np.repeat([s.priority for s in problem.sessions], x.count)
    early = EARLY_WEIGHT * mid[x.period] * prio
    if problem.costs is not None and (scale := costs.money_scale(problem, UNMET_WEIGHT)) > 0:
        money = costs.per_kwh(problem, periods.first, periods.length) * scale
        cols = (x.owner, periods.first[x.period], periods.length[x.period])
        late = costs.hedge_per_kwh(problem, money, scale, UNMET_WEIGHT, (x.p0, x.p1), cols)
        return x.kwh * (money[x.period] + 0.1 * early + late)
    if (p := problem.prices) is not None and np.ptp(p) > 0:
        rel = np.add.reduceat((p - p.min()) / np.ptp(p), periods.first) / periods.length
        return x.kwh * (PRICE_WEIGHT * rel[x.period] + 0.1 * early)
    return x.kwh * early


def _unmet_columns(problem: PlanningProblem, need: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(upper bounds, costs) of the v columns: `SEGMENTS` per session, each a
    `SEGMENTS`-th of its need and dearer than the last."""
    n_s = len(problem.sessions)
    prio = np.array([d.priority for d in problem.sessions]) if n_s else np.zeros(0)
    v_upper = np.repeat(need / SEGMENTS, SEGMENTS)
    seg = np.tile(np.arange(SEGMENTS), n_s)
    v_cost = np.repeat(prio, SEGMENTS) * (UNMET_WEIGHT + FAIRNESS_STEP * seg)
    return v_upper, v_cost


def _previous_columns(
    problem: PlanningProblem, sessions: list[SessionCols], stable_shape: bool
) -> tuple[list[int], np.ndarray, np.ndarray]:
    """(session index, previous current, cost) of the d columns: the sessions
    with a column in the slot dispatched now that the previous plan knew, or
    all of them with ``stable_shape`` (NaN and no cost where it did not)."""
    d_sessions = [
        i
        for i, s in enumerate(sessions)
        if len(s.periods)
        and s.periods[0] == 0
        and (stable_shape or s.demand.session_id in problem.previous)
    ]
    ids = [sessions[i].demand.session_id for i in d_sessions]
    prev = np.array([problem.previous.get(k, np.nan) for k in ids], dtype=float)
    kwh_now = np.array([sessions[i].kwh_per_a[0] for i in d_sessions], dtype=float)
    d_cost = np.where(np.isnan(prev), 0.0, PREVIOUS_WEIGHT * kwh_now)
    return d_sessions, prev, d_cost


@dataclass(frozen=True)
class _Pieces:
    x: np.ndarray
    """The x column each run of w columns splits (each has one row x − Σ w = 0)."""
    col: np.ndarray
    row_of_x: np.ndarray
    row: np.ndarray
    """Column and row of every w column, and the row of each split x column."""
    piece: np.ndarray
    upper: np.ndarray
    cost: np.ndarray


def _even_pieces(x: _XColumns, x_upper: np.ndarray, col: int, row: int, on: bool) -> _Pieces:
    """The w columns and their rows, x − Σ_k w[k] = 0, for the x columns in the
    first `EVEN_SLOTS` slots (none if not ``on``: `PlanningProblem.even_rates`)."""
    w_x = np.flatnonzero(x.period < (EVEN_SLOTS if on else 0))
    pieces = np.where(x.period[w_x] == 0, EVEN_PIECES_NOW, EVEN_PIECES)
    n_w = int(pieces.sum())
    w_col = col + np.arange(n_w)
    w_row_of_x = row + np.arange(len(w_x))
    w_row = np.repeat(w_row_of_x, pieces)
    w_piece = np.arange(n_w) - np.repeat(np.cumsum(pieces) - pieces, pieces)
    w_upper = np.repeat(x_upper[w_x] / pieces, pieces)
    # cost per kWh grows by EVEN_WEIGHT per quarter of the maximum, whatever the piece count
    w_cost = np.repeat(x.kwh[w_x] * EVEN_WEIGHT * EVEN_PIECES / pieces, pieces) * w_piece
    return _Pieces(w_x, w_col, w_row_of_x, w_row, w_piece, w_upper, w_cost)


def prepare(problem: PlanningProblem, *, stable_shape: bool = False) -> PreparedLP:
    """The LP of ``problem``: columns x, v, d, w and the rows of the module
    docstring (``stable_shape``: a d column for every session planned now)."""
    periods = _periods(problem)
    fams, fam_index = _families(problem, periods.first)
    x = _x_columns(problem, periods)
    sessions = _session_cols(problem, x, fam_index)
    n_s = len(sessions)
    n_x = len(x.period)

    # --- columns: x, v (unmet energy segments), d (distance to previous plan now) -------
    x_session = x.owner.astype(np.int64)
    x_upper = x.upper[x.owner]
    x_cost = _x_cost(problem, periods, x)
    n_v = n_s * SEGMENTS
    v_upper, v_cost = _unmet_columns(problem, x.need)
    d_sessions, prev, d_cost = _previous_columns(problem, sessions, stable_shape)
    known = ~np.isnan(prev)
    n_d = len(d_sessions)
    d_session = np.array(d_sessions, dtype=np.int64)

    # --- limit rows, then energy rows ------------------------------------------------------
    lim = limit_rows(sessions, fams, x_session, x.period, len(periods.first))
    n_l = len(lim.upper)
    e_row = n_l + x_session
    v_col = n_x + np.arange(n_v)
    v_row = n_l + np.repeat(np.arange(n_s), SEGMENTS)

    # --- previous-plan rows: x - d <= prev (block 1); x + d >= prev (block 2) --------
    d_col = n_x + n_v + np.arange(n_d)
    x0_col = np.array([sessions[i].first_col for i in d_sessions], dtype=np.int64)
    r1 = n_l + n_s + np.arange(n_d)
    r2 = r1 + n_d

    # --- evenness pieces: x - sum_k w[k] = 0 for x in the first EVEN_SLOTS slots --------
    w = _even_pieces(x, x_upper, n_x + n_v + n_d, n_l + n_s + 2 * n_d, problem.even_rates)
    n_w = len(w.col)

    # --- battery tail: (T/a)·x[s,j] + Σ_{τ<j} kWh·x[s,τ] ≤ need, where it can bind ---
    t_first = n_l + n_s + 2 * n_d + len(w.x)
    t_x, t_rows, t_cols, t_vals, t_upper = tail_rows(
        sessions, x.need, x.starts, x_session, x.kwh, x_upper, t_first
    )
    n_t = len(t_x)

    blocks = [  # (rows, columns, coefficients) of each block
        (lim.row, lim.col, lim.val), (e_row, np.arange(n_x), x.kwh), (v_row, v_col, np.ones(n_v)),
        (r1, x0_col, np.ones(n_d)), (r1, d_col, -np.ones(n_d)),
        (r2, x0_col, np.ones(n_d)), (r2, d_col, np.ones(n_d)),
        (w.row_of_x, w.x, np.ones(len(w.x))), (w.row, w.col, -np.ones(n_w)),
        (t_rows, t_cols, t_vals),
    ]  # fmt: skip
    energy = np.where(x.count > 0, x.need, 0.0)
    zero_w = np.zeros(len(w.x))
    prev_lo, prev_hi = np.where(known, prev, -INF), np.where(known, prev, INF)
    row_lower = [np.full(n_l, -INF), energy, np.full(n_d, -INF), prev_lo, zero_w]
    row_lower.append(np.full(n_t, -INF))
    row_upper = [lim.upper, energy, prev_hi, np.full(n_d, INF), zero_w, t_upper]
    col_upper = [x_upper, v_upper, np.where(known, INF, 0.0), w.upper]
    col_cost = [x_cost, v_cost, d_cost, w.cost]
    layout = BaseLayout(
        tuple(sessions), tuple(fams), x_session, x.period, x.kwh, periods.first, periods.length,
        n_l, lim.family, lim.period, n_l, n_x + n_v + n_d + n_w, sum(map(len, row_lower)),
    )  # fmt: skip
    extras = _extra_blocks(problem, layout)
    for e in extras:
        blocks.append(e.entries)
        for to, part in zip((row_lower, row_upper, col_upper, col_cost), _parts(e), strict=True):
            to.append(part)
    a_start, rows, vals = csc(blocks, layout.n_col + sum(e.n_col for e in extras))

    return PreparedLP(
        problem=problem,
        sessions=tuple(sessions),
        families=tuple(fams),
        n_x=n_x,
        n_v=n_v,
        n_d=n_d,
        n_w=n_w,
        col_lower=np.concatenate([np.zeros(layout.n_col), *(e.col_lower for e in extras)]),
        col_upper=np.concatenate(col_upper),
        col_cost=np.concatenate(col_cost),
        row_lower=np.concatenate(row_lower),
        row_upper=np.concatenate(row_upper),
        n_limit_rows=n_l,
        limit_row_family=lim.family,
        limit_row_period=lim.period,
        period_first=periods.first,
        period_len=periods.length,
        a_start=a_start,
        a_index=rows.astype(np.int32),
        a_value=vals.astype(float),
        x_session=x_session,
        x_period=x.period.astype(np.int64),
        d_session=d_session,
        w_x=w.x,
        w_piece=w.piece,
        tail_x=t_x,
        extras=tuple(extras),
    )


ExtraTerm = Callable[[PlanningProblem, BaseLayout], ExtraBlock | None]
EXTRA_TERMS: tuple[ExtraTerm, ...] = (
    solar.minimum_term,
    v2x.term,
    partial(costs.peak_term, unmet_weight=UNMET_WEIGHT),
    costs.optimum_term,
)
"""The planning terms that add columns of their own after the base LP, in order
(each sees the columns and rows of those before it)."""


def _parts(e: ExtraBlock) -> tuple[np.ndarray, ...]:
    return e.row_lower, e.row_upper, e.col_upper, e.col_cost


def _extra_blocks(problem: PlanningProblem, layout: BaseLayout) -> list[ExtraBlock]:
    out: list[ExtraBlock] = []
    for term in EXTRA_TERMS:
        if (block := term(problem, layout)) is not None:
            out.append(block)
            layout = replace(
                layout, n_col=layout.n_col + block.n_col, n_row=layout.n_row + block.n_row
            )
    return out


def expand_to_slots(
    lp: PreparedLP, x: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per-slot values of x columns: (session index, slot, value, x column) for
    every slot of a column's period that lies in its session's window."""
    rep = lp.period_len[lp.x_period]
    col = np.repeat(np.arange(lp.n_x), rep)
    slot = lp.period_first[lp.x_period][col] + (
        np.arange(int(rep.sum())) - np.repeat(np.cumsum(rep) - rep, rep)
    )
    sess = lp.x_session[col]
    w0 = np.array([s.window[0] for s in lp.sessions])[sess] if lp.n_x else np.zeros(0)
    w1 = np.array([s.window[1] for s in lp.sessions])[sess] if lp.n_x else np.zeros(0)
    inside = (np.minimum(slot + 1, w1) - np.maximum(slot, w0)) > 1e-9
    return sess[inside], slot[inside], x[col[inside]], col[inside]


def limit_load(lp: PreparedLP, x: np.ndarray) -> np.ndarray:
    """Load of every limit row (its linear form) under x-column values ``x``."""
    rows, cols, vals = lp.limit_entries
    return np.bincount(rows, weights=vals * x[cols], minlength=lp.n_limit_rows)
