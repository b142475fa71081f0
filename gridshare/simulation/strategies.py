"""Strategies the simulator compares, all on the same sessions and site.

* ``gridshare`` — the planning engine re-planning at every step (every arrival,
  departure and slot), one warm `HighsPlanner` per run, as the service does;
* ``uncontrolled`` — every car offered its connector's maximum;
* ``equal-share`` — the engine's water-filling heuristic on the step now
  (equal split within every limit, then the minimum-current rule);
* ``fcfs`` / ``edf`` / ``llf`` — sessions served one after another (first come,
  earliest stated departure, least laxity), each raised to the most every limit
  it loads still allows, floored to a pilot the station accepts (0 below the
  minimum). Limits come from the engine's own problem preparation, so every
  strategy obeys the same rows;
* ``offline-optimal`` — one LP with perfect knowledge (real departures and
  needs, the car taper): the most energy any strategy could deliver. It
  decomposes exactly into the periods between instants with no car plugged in,
  and each such period is solved as one LP. On a limit on a phasor sum
  (``phasor = true``) it is exact: |Σ cᵢ·xᵢ| ≤ U is an outer polygon refined by
  cutting planes (the tangent where a sum is out) until the largest violation is
  below `OFFLINE_CUT_TOLERANCE` of the limit; the bound is that LP's optimum
  (a relaxation: never below the exact optimum), the replayed currents are
  scaled, step by step, inside every exact limit.

The rules (``equal-share``, ``fcfs``, ``edf``, ``llf``) read the engine's
linear rows, where a phasor sum counts as its magnitudes summed (Σ|cᵢ|·xᵢ,
never looser): the exact limits are the planner's and the offline bound's.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from datetime import datetime

import highspy
import numpy as np

from gridshare.errors import GridshareError
from gridshare.simulation.costs import (
    OfflinePeaks,
    OnlineCosts,
    add_offline_terms,
    record_offline_peaks,
    seed_offline_peaks,
)
from gridshare.simulation.engine import LiveSession, Simulation, StepContext
from optimizer import Backend, HighsPlanner, PlanningProblem, SessionDemand, TimeGrid, solve
from optimizer.dispatch import STEP_A, min_current
from optimizer.highs_backend import HighsInstance, quiet_highs
from optimizer.prepare import PreparedLP, prepare

STRATEGIES = ("gridshare", "uncontrolled", "equal-share", "fcfs", "edf", "llf", "offline-optimal")
ONLINE = tuple(s for s in STRATEGIES if s != "offline-optimal")
COST_STRATEGIES = ("gridshare-energy-only",)
"""With a tariff or a carbon signal (`gridshare.simulation.costs`): the planner
without the money and carbon terms."""
EPS = 1e-9


def _step_problem(ctx: StepContext) -> PlanningProblem:
    """The decision now as a one-slot planning problem."""
    sim = ctx.sim
    grid = TimeGrid(start=ctx.now, slot_minutes=int(sim.step.total_seconds() // 60), slots=1)
    return PlanningProblem(
        site=sim.site,
        grid=grid,
        now=ctx.now,
        sessions=ctx.demands(),
        capacity=sim.capacity(grid, ctx.now),
    )


class GridshareStrategy:
    """The planning engine as the service runs it. ``meter_values=False`` plans
    as if no meter reading ever came in (the car's maximum and phases unknown)."""

    name = "gridshare"

    def __init__(self, meter_values: bool = True, priced: bool = True) -> None:
        self.meter_values = meter_values
        self.priced = priced  # False: without the money and carbon terms
        if not priced:
            self.name = "gridshare-energy-only"
        self.costs: OnlineCosts | None = None
        self.planner = HighsPlanner(time_limit_s=10.0)
        self.previous: dict[str, float] = {}
        self.statuses: dict[str, int] = {}
        self.dispatch_cost_kwh = 0.0

    def decide(self, ctx: StepContext) -> Mapping[str, float]:
        sim = ctx.sim
        info = sim.site.site
        grid = TimeGrid.covering(ctx.now, info.slot_minutes, info.horizon_hours)
        demands = ctx.demands(self.meter_values)
        prev = {
            d.session_id: self.previous[d.session_id]
            for d in demands
            if d.session_id in self.previous
        }
        if self.costs is None and self.priced and sim.costs is not None:
            self.costs = OnlineCosts(sim.costs)
        problem = PlanningProblem(
            site=sim.site,
            grid=grid,
            now=ctx.now,
            sessions=demands,
            capacity=sim.capacity(grid, ctx.now),
            previous=prev,
            costs=self.costs.signal(sim, grid, ctx.now, ctx.step) if self.costs else None,
        )
        plan = solve(problem, planner=self.planner)
        self.statuses[plan.status.value] = self.statuses.get(plan.status.value, 0) + 1
        self.dispatch_cost_kwh += plan.dispatch_cost_kwh
        out = {d.session_id: plan.now_a(d.connector_id) for d in demands}
        self.previous = dict(out)
        return out

    def observe(self, step: int, kw: float) -> None:
        """What the cars drew in ``step`` (the meters, for the peak so far)."""
        if self.costs is not None:
            self.costs.observe(step, kw)


class UncontrolledStrategy:
    name = "uncontrolled"

    def decide(self, ctx: StepContext) -> Mapping[str, float]:
        cons = ctx.sim.site.connectors
        return {s.session_id: cons[s.connector_id].max_current_a for s in ctx.live}


class EqualShareStrategy:
    name = "equal-share"

    def decide(self, ctx: StepContext) -> Mapping[str, float]:
        problem = _step_problem(ctx)
        plan = solve(problem, backend=Backend.HEURISTIC)
        return {s.session_id: plan.now_a(s.connector_id) for s in ctx.live}


def _floor_to_pilot(lp: PreparedLP, i: int, value: float, lo: float) -> float:
    """The largest current ≤ value the station accepts (0 if below its minimum)."""
    allowed = lp.sessions[i].connector.connector.allowed_currents_a
    if allowed is not None:
        steps = [a for a in sorted(allowed) if a <= value + EPS]
        value = steps[-1] if steps else 0.0
    else:
        value = math.floor(value / STEP_A + 1e-6) * STEP_A
    return value if value >= lo - EPS else 0.0


def sorted_allocation(lp: PreparedLP, order: list[int]) -> np.ndarray:
    """Slot-0 currents: sessions in ``order`` each take the most the rows' room allows."""
    x = np.zeros(lp.n_x)
    if lp.n_x == 0:
        return x
    rows, cols, vals = lp.coo()
    m = (rows < lp.n_limit_rows) & (cols < lp.n_x)
    rows, cols, vals = rows[m], cols[m], vals[m]
    room = lp.row_upper[: lp.n_limit_rows].copy()
    lo = min_current(lp)
    for i in order:
        s = lp.sessions[i]
        if not len(s.kwh_per_a):  # no column now (nothing needed, or no room to charge)
            continue
        c = s.first_col
        cap = min(float(lp.col_upper[c]), s.demand.energy_kwh / max(float(s.kwh_per_a[0]), EPS))
        sel = cols == c
        for r, v in zip(rows[sel], vals[sel], strict=True):
            if v > EPS:
                cap = min(cap, max(float(room[r]), 0.0) / v)
        value = _floor_to_pilot(lp, i, cap, float(lo[i]))
        if value > 0:
            x[c] = value
            room[rows[sel]] -= vals[sel] * value
    return x


class SortedStrategy:
    """Serve sessions one by one in an order given by a key."""

    def __init__(
        self,
        name: str,
        key: Callable[[LiveSession, SessionDemand, float, datetime], tuple[object, ...]],
    ) -> None:
        self.name = name
        self._key = key

    def decide(self, ctx: StepContext) -> Mapping[str, float]:
        problem = _step_problem(ctx)
        lp = prepare(problem)
        keys = []
        for i, (live, sc) in enumerate(zip(ctx.live, lp.sessions, strict=True)):
            rate_kw = sc.kw_per_a * sc.upper_a
            keys.append((self._key(live, sc.demand, rate_kw, ctx.now), live.session_id, i))
        order = [k[-1] for k in sorted(keys)]
        x = sorted_allocation(lp, order)
        out = {}
        for sc in lp.sessions:
            out[sc.demand.session_id] = float(x[sc.first_col]) if len(sc.kwh_per_a) else 0.0
        return out


def _fcfs(live: LiveSession, d: SessionDemand, rate_kw: float, now: datetime) -> tuple[object, ...]:
    return (live.arrival,)


def _edf(live: LiveSession, d: SessionDemand, rate_kw: float, now: datetime) -> tuple[object, ...]:
    return (d.departure,)


def _llf(live: LiveSession, d: SessionDemand, rate_kw: float, now: datetime) -> tuple[object, ...]:
    hours_left = (d.departure - now).total_seconds() / 3600.0
    need_h = d.energy_kwh / rate_kw if rate_kw > EPS else math.inf
    return (hours_left - need_h,)


# --- offline optimum --------------------------------------------------------------


class OfflineSchedule:
    """Replays the offline LP's currents (the LP knows the future; the run does not
    hide it). ``bound_kwh`` is the LP's optimum."""

    name = "offline-optimal"

    def __init__(self, sim: Simulation) -> None:
        self.schedule, self.bound_kwh, self.solve_ms, self.periods = offline_optimum(sim)

    def decide(self, ctx: StepContext) -> Mapping[str, float]:
        out = {}
        sim = ctx.sim
        for live in ctx.live:
            i = sim.index_of[live.session_id]
            j = ctx.step - int(sim.arrive_step[i])
            out[live.session_id] = float(self.schedule[i][j])
        return out


def busy_periods(sim: Simulation) -> list[list[int]]:
    """Sessions grouped into periods separated by instants with no car plugged in."""
    order = np.argsort(sim.arrive_step, kind="stable")
    out: list[list[int]] = []
    end = -1
    for i in order:
        if int(sim.arrive_step[i]) >= end:
            out.append([])
        out[-1].append(int(i))
        end = max(end, int(sim.leave_step[i]))
    return out


def offline_optimum(sim: Simulation) -> tuple[list[np.ndarray], float, list[float], int]:
    """Per session, the current in each step of its stay; the LP bound (kWh); solve ms."""
    schedule = [
        np.zeros(int(sim.leave_step[i] - sim.arrive_step[i])) for i in range(len(sim.sessions))
    ]
    total = 0.0
    times: list[float] = []
    periods = busy_periods(sim)
    peaks = seed_offline_peaks(sim)
    for members in periods:
        x, value, ms = _solve_period(sim, members, peaks)
        times.append(ms)
        total += value
        for i, xi in zip(members, x, strict=True):
            schedule[i] = xi
    return schedule, total, times, len(periods)


def _solve_period(
    sim: Simulation, members: list[int], peaks: OfflinePeaks | None = None
) -> tuple[list[np.ndarray], float, float]:
    """The most energy the sessions of one busy period can take: an LP over every
    step of the period with the site's limit rows (`SiteLimits`, the same rows
    the simulator checks), each car's maximum, need and taper; with a tariff,
    the online objective's money terms (`gridshare.simulation.costs`)."""
    t0 = time.perf_counter()
    k0 = min(int(sim.arrive_step[i]) for i in members)
    k1 = max(int(sim.leave_step[i]) for i in members)
    bounds = _period_bounds(sim, k0, k1)
    first = np.zeros(len(members) + 1, dtype=np.int64)
    lens = np.array([int(sim.leave_step[i] - sim.arrive_step[i]) for i in members])
    np.cumsum(lens, out=first[1:])
    n_x = int(first[-1])
    row, col, val, used = _limit_entries(sim, members, k0, k1 - k0, first, lens, bounds)
    lp = _PeriodLP(n_x, np.repeat(sim.car_max_a[members], lens))
    limit = bounds.ravel()[used]
    lp.add_rows(np.full(len(used), -np.inf), limit)  # rows 0 .. len(used) - 1
    # a phasor row's first plane: its sum projected on the mean direction of its
    # coefficients (exact where they all point one way, as on a real row)
    mean = np.bincount(row, weights=val.real, minlength=len(used)) + 1j * np.bincount(
        row, weights=val.imag, minlength=len(used)
    )
    direction = np.where(np.abs(mean) > 1e-12, mean / np.maximum(np.abs(mean), 1e-300), 1.0)
    lp.add_entries(row.astype(np.int64), col.astype(np.int64), _project(val, direction[row]))
    for j, i in enumerate(members):
        _add_session_rows(lp, sim, i, first[j] + np.arange(int(lens[j])))
    cols = _column_steps(sim, members, lens)
    energy_of = -lp.x_cost.copy()
    if sim.costs is not None and peaks is not None:
        add_offline_terms(lp, sim, sim.costs, cols, k0, k1, peaks)
    h = _solve_offline_lp(lp.model())
    if np.iscomplexobj(val):
        h = _cut_phasor_rows(h, row, col, val, limit)
    sol = np.clip(np.asarray(h.getSolution().col_value)[:n_x], 0.0, lp.x_upper)
    value = float(np.dot(energy_of, sol))
    sol = _within_limits(sol, row, col, val, limit + 1e-6, sim.arrive_step[members], first, k0)
    if sim.costs is not None and sim.costs.tariff is not None and peaks is not None:
        ev_kw = np.bincount(cols[1] - k0, sol * sim.kw_per_a[cols[2]], minlength=k1 - k0)
        record_offline_peaks(sim, sim.costs.tariff, peaks, k0, ev_kw)
    out = [sol[first[j] : first[j + 1]].copy() for j in range(len(members))]
    return out, value, (time.perf_counter() - t0) * 1000.0


def _column_steps(
    sim: Simulation, members: list[int], lens: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(column, step, session) of every current of a busy period's LP."""
    steps = [
        int(sim.arrive_step[i]) + np.arange(int(n)) for i, n in zip(members, lens, strict=True)
    ]
    sess = np.repeat(np.array(members, dtype=np.int64), lens)
    return np.arange(int(lens.sum())), np.concatenate(steps), sess


def _period_bounds(sim: Simulation, k0: int, k1: int) -> np.ndarray:
    """Every limit row's bound (A) in each step from ``k0`` to ``k1`` (excluded)."""
    limits = sim.limits
    bounds = (
        np.repeat(limits.static[:, None], k1 - k0, axis=1)
        if not limits.overrides
        else np.stack([limits.at(sim.time_of(k)) for k in range(k0, k1)], axis=1)
    )
    if sim.building is not None:  # the optimum knows the building's load
        bounds = bounds - sim.building[k0:k1].T
    # a micro-ampere inside every limit, so solver tolerances never show as a
    # violation (none below 0: a building over the limit leaves the cars nothing)
    return np.maximum(bounds - 1e-6, 0.0)


def _limit_entries(
    sim: Simulation,
    members: list[int],
    k0: int,
    n_steps: int,
    first: np.ndarray,
    lens: np.ndarray,
    bounds: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The entries of the finite limit rows: (row, column, coefficient) with rows
    numbered from 0, and per row its (limit row, step) key into ``bounds``."""
    lim_key: list[np.ndarray] = []
    lim_col: list[np.ndarray] = []
    lim_val: list[np.ndarray] = []
    for j, i in enumerate(members):
        coef = sim.coef[:, i]  # complex on a phasor row
        rows = np.flatnonzero(coef)
        steps = int(sim.arrive_step[i]) - k0 + np.arange(lens[j])
        lim_key.append((rows[:, None] * n_steps + steps[None, :]).ravel())
        lim_col.append(np.broadcast_to(first[j] + np.arange(lens[j]), (len(rows), lens[j])).ravel())
        lim_val.append(np.repeat(coef[rows], lens[j]))
    key = np.concatenate(lim_key)
    col = np.concatenate(lim_col)
    val = np.concatenate(lim_val)
    finite = np.isfinite(bounds.ravel()[key])
    key, col, val = key[finite], col[finite], val[finite]
    used, row = np.unique(key, return_inverse=True)
    return row, col, val, used


class _PeriodLP:
    """A period's LP, built a block of rows or columns at a time: the first
    ``n_x`` columns are the currents (their cost and upper bound kept apart,
    the session rows tighten them), then any helper columns."""

    def __init__(self, n_x: int, x_upper: np.ndarray) -> None:
        self.x_cost = np.zeros(n_x)
        self.x_upper = x_upper
        self.n_col = n_x
        self.n_row = 0
        self._cost: list[np.ndarray] = []
        self._upper: list[np.ndarray] = []
        self._row_lo: list[np.ndarray] = []
        self._row_hi: list[np.ndarray] = []
        self._r: list[np.ndarray] = []
        self._c: list[np.ndarray] = []
        self._v: list[np.ndarray] = []

    def add_cols(self, n: int, cost: np.ndarray | None = None) -> np.ndarray:
        """``n`` helper columns (cost 0 unless given, no upper bound); their indices."""
        idx = self.n_col + np.arange(n)
        self.n_col += n
        self._upper.append(np.full(n, np.inf))
        self._cost.append(np.zeros(n) if cost is None else np.asarray(cost, dtype=float))
        return idx

    def add_rows(self, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
        """Rows ``lo ≤ a·x ≤ hi``; their indices."""
        idx = self.n_row + np.arange(len(hi))
        self.n_row += len(hi)
        self._row_lo.append(lo)
        self._row_hi.append(hi)
        return idx

    def add_entries(self, rows: np.ndarray, cols: np.ndarray, vals: np.ndarray) -> None:
        self._r.append(rows)
        self._c.append(cols)
        self._v.append(vals)

    def model(self) -> highspy.HighsLp:
        r = np.concatenate(self._r)
        c = np.concatenate(self._c)
        v = np.concatenate(self._v)
        order = np.lexsort((r, c))
        r, c, v = r[order], c[order], v[order]
        start = np.zeros(self.n_col + 1, dtype=np.int64)
        np.cumsum(np.bincount(c, minlength=self.n_col), out=start[1:])
        model = highspy.HighsLp()
        model.num_col_ = self.n_col
        model.num_row_ = self.n_row
        model.col_cost_ = np.concatenate([self.x_cost, *self._cost])
        model.col_lower_ = np.zeros(self.n_col)
        model.col_upper_ = np.concatenate([self.x_upper, *self._upper])
        model.row_lower_ = np.concatenate(self._row_lo)
        model.row_upper_ = np.concatenate(self._row_hi)
        model.a_matrix_.format_ = highspy.MatrixFormat.kColwise
        model.a_matrix_.start_ = start.astype(np.int32)
        model.a_matrix_.index_ = r.astype(np.int32)
        model.a_matrix_.value_ = v.astype(float)
        model.a_matrix_.num_col_ = self.n_col
        model.a_matrix_.num_row_ = self.n_row
        return model


def _add_session_rows(lp: _PeriodLP, sim: Simulation, i: int, xs: np.ndarray) -> None:
    """Session ``i`` (currents in columns ``xs``): the energy it takes is the
    objective, at most its need, and with a car taper, under its battery tail."""
    n = len(xs)
    k = np.full(n, float(sim.kwh_per_a[i]))
    lp.x_cost[xs] = -k
    E = float(sim.need[i])
    a = float(sim.car_max_a[i])
    # total energy: Σ k·x ≤ E
    total = lp.add_rows(np.array([-np.inf]), np.array([E]))
    lp.add_entries(np.full(n, total[0]), xs, k)
    taper = sim.car.taper_kwh
    if taper <= 0:
        return
    lp.x_upper[xs[0]] = min(lp.x_upper[xs[0]], a * E / taper)
    if n == 1:
        return
    # D_j (j ≥ 1): energy taken before step j; D_j − D_{j−1} − k x_{j−1} = 0
    d = lp.add_cols(n - 1)
    eq = lp.add_rows(np.zeros(n - 1), np.zeros(n - 1))
    lp.add_entries(eq, d, np.ones(n - 1))
    lp.add_entries(eq[1:], d[:-1], -np.ones(n - 2))
    lp.add_entries(eq, xs[:-1], -k[:-1])
    # taper: x_j ≤ a (E − D_j) / T, i.e. (T / a) x_j + D_j ≤ E
    tp = lp.add_rows(np.full(n - 1, -np.inf), np.full(n - 1, E))
    lp.add_entries(tp, xs[1:], np.full(n - 1, taper / a))
    lp.add_entries(tp, d, np.ones(n - 1))


def _within_limits(
    sol: np.ndarray,
    row: np.ndarray,
    col: np.ndarray,
    val: np.ndarray,
    limit: np.ndarray,
    arrive: np.ndarray,
    first: np.ndarray,
    k0: int,
) -> np.ndarray:
    """Solver tolerances, and on a phasor row the cuts' last fraction, may leave a
    row a hair over: scale every current of such a row's step by the same factor
    (so each phasor sum of that step shrinks with it, whatever its angles), the
    smallest any row of the step needs, so every limit holds exactly."""
    load = _row_loads(row, col, val, sol, len(limit))
    ratio = np.where(load > limit, limit / np.maximum(load, 1e-300), 1.0)
    lens = np.diff(first)
    step_of_col = np.concatenate(
        [int(a) - k0 + np.arange(int(n)) for a, n in zip(arrive, lens, strict=True)]
    )
    n_steps = int(step_of_col.max()) + 1 if len(step_of_col) else 0
    step_factor = np.ones(n_steps)
    np.minimum.at(step_factor, step_of_col[col], ratio[row])
    return sol * step_factor[step_of_col]


def _row_loads(
    row: np.ndarray, col: np.ndarray, val: np.ndarray, x: np.ndarray, n_rows: int
) -> np.ndarray:
    """|Σ coefficient · x| of every row (a plain sum on a real row)."""
    term = val * x[col]
    re = np.bincount(row, weights=term.real, minlength=n_rows)
    if not np.iscomplexobj(term):
        return np.abs(re)
    return np.hypot(re, np.bincount(row, weights=term.imag, minlength=n_rows))


def _project(val: np.ndarray, direction: np.ndarray) -> np.ndarray:
    """Re(conj(d) · v): a phasor coefficient's share along direction ``d``."""
    return np.real(np.conj(direction) * val) if np.iscomplexobj(val) else val


OFFLINE_CUT_TOLERANCE = 1e-6
"""Largest violation of a phasor limit left to the final scaling (fraction of it)."""
OFFLINE_CUT_ROUNDS = 60


def _cut_phasor_rows(
    h: HighsInstance, row: np.ndarray, col: np.ndarray, val: np.ndarray, limit: np.ndarray
) -> HighsInstance:
    """Add the tangent Re(conj(u)·Σ cᵢxᵢ) ≤ U at every phasor sum out of its disc
    (u its direction) and re-solve warm, until none is out by more than the
    tolerance (or the rounds run out: the final scaling then takes the rest)."""
    order = np.argsort(row, kind="stable")
    row_s, col_s, val_s = row[order], col[order], val[order]
    starts = np.searchsorted(row_s, np.arange(len(limit) + 1))
    for _ in range(OFFLINE_CUT_ROUNDS):
        x = np.asarray(h.getSolution().col_value)
        term = val * x[col]
        total = np.bincount(row, weights=term.real, minlength=len(limit)) + 1j * np.bincount(
            row, weights=term.imag, minlength=len(limit)
        )
        out = np.flatnonzero(np.abs(total) > limit * (1.0 + OFFLINE_CUT_TOLERANCE) + 1e-9)
        if not len(out):
            break
        u = total[out] / np.abs(total[out])
        lens = starts[out + 1] - starts[out]
        sel = np.concatenate([np.arange(starts[r], starts[r + 1]) for r in out])
        values = _project(val_s[sel], np.repeat(u, lens))
        cut_starts = np.concatenate([[0], np.cumsum(lens)[:-1]])
        h.addRows(
            len(out),
            np.full(len(out), -np.inf),
            limit[out],
            len(sel),
            cut_starts.astype(np.int32),
            col_s[sel].astype(np.int32),
            values.astype(float),
        )
        h.run()
        if h.getModelStatus() != highspy.HighsModelStatus.kOptimal:
            h = _solve_offline_lp(h.getLp())
    return h


class OfflineLPError(GridshareError, RuntimeError):
    """The offline LP could not be solved to optimality by any route."""


def _solve_offline_lp(model: highspy.HighsLp) -> HighsInstance:
    """Dual simplex first; on a numerical failure, interior point with crossover,
    then primal simplex with presolve. Only an optimal answer is a valid bound."""
    tried = []
    routes: tuple[dict[str, str | int], ...] = (
        {"solver": "simplex"},
        {"solver": "ipm", "run_crossover": "on"},
        {"solver": "simplex", "simplex_strategy": 4, "presolve": "on"},
    )
    for options in routes:
        h = quiet_highs()
        # no "threads": one HiGHS scheduler per process (see optimizer.highs_backend)
        for k, v in options.items():
            h.setOptionValue(k, v)
        h.passModel(model)
        h.run()
        status = h.getModelStatus()
        if status == highspy.HighsModelStatus.kOptimal:
            return h
        tried.append(f"{options['solver']}: {h.modelStatusToString(status)}")
    raise OfflineLPError("offline LP not solved: " + "; ".join(tried))


def make_strategy(name: str, sim: Simulation) -> object:
    if name == "gridshare":
        return GridshareStrategy()
    if name == "gridshare-energy-only":
        return GridshareStrategy(priced=False)
    if name == "uncontrolled":
        return UncontrolledStrategy()
    if name == "equal-share":
        return EqualShareStrategy()
    if name == "fcfs":
        return SortedStrategy("fcfs", _fcfs)
    if name == "edf":
        return SortedStrategy("edf", _edf)
    if name == "llf":
        return SortedStrategy("llf", _llf)
    if name == "offline-optimal":
        return OfflineSchedule(sim)
    raise ValueError(f"unknown strategy {name!r}; one of {', '.join(STRATEGIES + COST_STRATEGIES)}")
