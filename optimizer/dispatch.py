"""From LP currents to currents a station can be given.

* Water-filling (`water_fill`): equal shares per slot, raised together until a
  limit, a car's maximum or its energy need stops them. Always feasible, fast,
  not optimal: the fallback when the solver gives nothing, and the
  ``equal-share`` strategy of the simulator.
* The minimum-current rule (`make_dispatchable`): a connector is offered 0 A or
  at least its minimum (or one of its allowed pilot steps). Rounding *down* can
  never break a ≤ limit, so every current is first floored to a step (0.1 A,
  the resolution of an OCPP limit, or an allowed step). In every period, the
  slot dispatched now first, the room this leaves on every row is given back:
  sessions that fell to 0 are raised to their minimum (now: those the previous
  plan paused first; then the most urgent), continuous connectors are
  water-filled, and connectors with pilot steps are raised one step at a
  time, most urgent first, while any step fits. Each raise is checked against
  the remaining room of every row it touches, so the result respects every
  limit by construction (see tests/optimizer/test_properties.py), and the
  plan's rows deliver about what the LP planned (tests/optimizer/test_plan_energy.py).
"""

from __future__ import annotations

import math

import numpy as np

from optimizer.prepare import PreparedLP

STEP_A = 0.1
EPS = 1e-9


def _limit_entries(lp: PreparedLP) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return lp.limit_entries  # built once per LP: read here several times a re-plan


def fill(
    cols: np.ndarray,
    e_row: np.ndarray,
    e_col: np.ndarray,
    e_val: np.ndarray,
    room: np.ndarray,
    x: np.ndarray,
    upper: np.ndarray,
) -> None:
    """Raise x[cols] together (progressive filling) within ``room`` and ``upper``.

    ``e_*`` are the limit entries touching ``cols`` (rows indexed into ``room``).
    Updates ``x`` and ``room`` in place.
    """
    active = np.zeros(len(x), dtype=bool)
    active[cols] = upper[cols] - x[cols] > EPS
    for _ in range(len(cols) + len(room) + 1):
        if not active[cols].any():
            break
        a = active[e_col]
        rate = np.bincount(e_row[a], weights=e_val[a], minlength=len(room))
        pos = rate > EPS
        step = math.inf
        if pos.any():
            with np.errstate(over="ignore"):  # a limit far above the rates: no bound
                step = float(np.min(room[pos] / rate[pos]))
        ac = cols[active[cols]]
        step = min(step, float(np.min(upper[ac] - x[ac])))
        step = max(step, 0.0)
        x[ac] += step
        room -= rate * step
        active[ac[upper[ac] - x[ac] <= EPS]] = False
        full = np.flatnonzero(pos & (room <= EPS * np.maximum(1.0, np.abs(room))))
        if len(full):
            touch = np.isin(e_row, full)
            active[e_col[touch]] = False


def water_fill(lp: PreparedLP) -> np.ndarray:
    """Equal-share currents, period by period, tracking each session's energy need."""
    x = np.zeros(lp.n_x)
    if lp.n_x == 0:
        return x
    e_row, e_col, e_val = _limit_entries(lp)
    room = lp.row_upper[: lp.n_limit_rows].copy()
    kwh = lp.x_kwh
    need = np.array([s.demand.energy_kwh for s in lp.sessions])
    upper_a = lp.col_upper[: lp.n_x]
    P = lp.n_periods
    by_period = np.argsort(lp.x_period, kind="stable")
    bounds = np.searchsorted(lp.x_period[by_period], np.arange(P + 1))
    entry_period = lp.x_period[e_col]
    e_order = np.argsort(entry_period, kind="stable")
    e_bounds = np.searchsorted(entry_period[e_order], np.arange(P + 1))
    upper = np.zeros(lp.n_x)
    for t in range(P):
        cols = by_period[bounds[t] : bounds[t + 1]]
        if not len(cols):
            continue
        s = lp.x_session[cols]
        upper[cols] = np.minimum(upper_a[cols], np.maximum(need[s], 0.0) / kwh[cols])
        sel = e_order[e_bounds[t] : e_bounds[t + 1]]
        fill(cols, e_row[sel], e_col[sel], e_val[sel], room, x, upper)
        need[s] -= kwh[cols] * x[cols]
    return x


def min_current(lp: PreparedLP) -> np.ndarray:
    """Per session: the least non-zero current it may be given."""
    out = []
    for s in lp.sessions:
        c = s.connector.connector
        lo = max(c.min_current_a, s.demand.ev_min_current_a or 0.0)
        if c.allowed_currents_a is not None:
            above = [a for a in c.allowed_currents_a if a >= max(lo, EPS)]
            lo = min(above) if above else math.inf
        out.append(lo)
    return np.array(out)


def floor_to_steps(lp: PreparedLP, x: np.ndarray, lo: np.ndarray | None = None) -> np.ndarray:
    """Round every current down to something the station can be given (``lo``:
    `min_current` per x column, if already known)."""
    z = np.floor(x / STEP_A + 1e-6) * STEP_A
    if lo is None:
        lo = min_current(lp)[lp.x_session]
    z[z < lo - EPS] = 0.0
    for s in lp.sessions:
        allowed = s.connector.connector.allowed_currents_a
        if allowed is None or not len(s.periods):
            continue
        steps = np.array(sorted({0.0, *allowed}))
        sl = slice(s.first_col, s.first_col + len(s.periods))
        idx = np.searchsorted(steps, z[sl] + EPS, side="right") - 1
        z[sl] = steps[np.maximum(idx, 0)]
    return np.minimum(z, lp.col_upper[: lp.n_x])


def _urgency_keys(lp: PreparedLP, cols: np.ndarray) -> dict[int, tuple[object, ...]]:
    """Per slot-0 column: (laxity in hours, −priority, session id), least laxity first.

    Laxity is the time left before the stated departure less the time the need
    takes at the session's own maximum; a session with the most unmet energy for
    its time left comes first."""
    now = lp.problem.now
    out: dict[int, tuple[object, ...]] = {}
    for c in cols:
        s = lp.sessions[int(lp.x_session[c])]
        hours_left = (s.demand.departure - now).total_seconds() / 3600.0
        need_hours = s.demand.energy_kwh / max(s.kw_per_a * s.upper_a, EPS)
        out[int(c)] = (hours_left - need_hours, -s.demand.priority, s.demand.session_id)
    return out


def _urgency_rank(lp: PreparedLP) -> np.ndarray:
    """Per session: its place in `_urgency_keys`' order (0 most urgent)."""
    now = lp.problem.now
    laxity = np.array(
        [
            (s.demand.departure - now).total_seconds() / 3600.0
            - s.demand.energy_kwh / max(s.kw_per_a * s.upper_a, EPS)
            for s in lp.sessions
        ]
    )
    prio = np.array([-s.demand.priority for s in lp.sessions])
    ids = np.argsort(np.array([s.demand.session_id for s in lp.sessions]), kind="stable")
    id_rank = np.empty(len(ids), dtype=np.int64)
    id_rank[ids] = np.arange(len(ids))
    order = np.lexsort((id_rank, prio, laxity))
    rank = np.empty(len(order), dtype=np.int64)
    rank[order] = np.arange(len(order))
    return rank


def _urgency_order(lp: PreparedLP, cols: np.ndarray, *, rotate: bool = False) -> np.ndarray:
    """Columns of slot 0, most urgent first: least laxity, then priority, then id.

    With ``rotate``, sessions the previous plan paused (offered 0 A now) come
    before the others: when the minimum current leaves room for only some of the
    sessions the LP wants charging, the ones left out last time get their turn
    (rotation instead of starving the same car slot after slot)."""
    if not len(cols):
        return cols
    keys = _urgency_keys(lp, cols)
    prev = lp.problem.previous

    def key(c: int) -> tuple[object, ...]:
        if not rotate:
            return keys[c]
        sid = lp.sessions[int(lp.x_session[c])].demand.session_id
        paused = sid in prev and prev[sid] <= EPS
        return (not paused, *keys[c])

    return np.array(sorted((int(c) for c in cols), key=key), dtype=np.int64)


def _next_step(steps: np.ndarray, value: float) -> float:
    """The smallest step above ``value`` (inf if none)."""
    i = int(np.searchsorted(steps, value + EPS, side="right"))
    return float(steps[i]) if i < len(steps) else math.inf


def make_dispatchable(lp: PreparedLP, x: np.ndarray) -> np.ndarray:
    """Currents a station can be given, in every period, each using the room of
    every limit.

    Every current is first floored to a valid step (never breaks a ≤ limit).
    What the rounding and the minimum current leave of every row's room is then
    given back, period by period, each raise checked against the room of every
    row it loads (each line of every group above, kW limits, weighted limits),
    so no limit the LP has can be exceeded:

    1. sessions the floor paused are raised to their minimum, least laxity
       first (now: the ones paused by the previous plan first, rotation);
    2. connectors with continuous currents share what is left (water-filling,
       up to their maximum and their energy budget);
    3. connectors with discrete pilot steps are raised one step at a time, most
       urgent first, round after round while any step fits: first back up to
       the step at or above the LP's current, then beyond it while the budget
       lasts. Only sessions charging are raised (the LP's zeros stay zeros: it
       may be waiting for cheaper slots);
    4. cars known to take less than their station's minimum (a battery tapering
       off before full: ``ev_max_current_a`` below the minimum) get the minimum
       last, from what every other car left. At the minimum they would hold
       more of a limit than they draw, so they never take room a car drawing
       in full could use (measured on JPL 2019, realistic models: +0.7 / +0.8
       points of energy delivered at 80 / 50 kW).

    The slot dispatched now may use all of a session's need (it is the one
    certain to be delivered); the later periods of a session that now gets more
    than the LP planned are then trimmed, latest first, so that no session is
    planned more than it needs. Later periods then raise, in time order, within
    what each session still needs (its budget) and under its battery tail:

    * a paused car is raised to its minimum where it would draw at least
      `MIN_USE` of it, also where the LP planned nothing (to place energy the
      rule cost in another slot), and where the room is short, by lowering one
      car that loads every short row when that gains energy (an LP vertex often
      gives one car its maximum and the next a sliver below the minimum);
    * other paused cars get their minimum last, from the room left, again
      only where they would draw at least `MIN_USE` of it (a car needing just a
      rounding remainder would hold room it stops drawing at once); a
      remainder is instead rounded up to a step where the car already charges.
    """
    lo = min_current(lp)[lp.x_session]
    z = floor_to_steps(lp, x, lo)
    if lp.n_x == 0:
        return z
    need = np.array([s.demand.energy_kwh for s in lp.sessions])
    g = _Giveback(lp, x, z, lo, need)
    # now: up to the session's whole need, less what now already delivers; not
    # less what later periods hold (the LP may shift energy out of a partial
    # slot now, and those periods are trimmed below instead)
    now = lp.x_period == 0
    g.period(
        0,
        need - np.bincount(lp.x_session[now], g.kwh[now] * z[now], minlength=len(need)),
        rotate=True,
        later=False,
    )
    _trim_later(lp, z, g.kwh, need, g.lo)
    # later periods: what the session still needs
    budget = need - np.bincount(lp.x_session, g.kwh * z, minlength=len(need))
    for p in range(1, lp.n_periods):
        g.period(p, budget, rotate=False, later=True)
    return z


MIN_USE = 0.25
"""In later periods, a paused car is raised to its minimum before others share
the room only if it would draw at least this fraction of what the minimum
offers (else it holds room another car could turn into energy; it may still
get the minimum from what is left). A tuning choice, checked on the sites of
benchmarks/plan_speed.py."""
SWAP_KEEP = 0.5
"""A car with later periods left (where it may get its energy anyway) is
swapped in only if the LP planned it at least half its minimum there and the
swap's net gain is above this fraction of what it gains (the car lowered for
it gives up less than the rest); in its last period, whenever the swap gains
energy. A tuning
choice, checked on the sites of benchmarks/plan_speed.py (swapping freely there
costs energy and time) and on tests/optimizer/test_plan_energy.py."""
BUDGET_TOL_KWH = 1e-6
"""Budgets below this are spent (float noise of the energy sums)."""


def _fits(
    e_row: np.ndarray,
    e_col: np.ndarray,
    e_val: np.ndarray,
    room: np.ndarray,
    cols: np.ndarray,
    amps: np.ndarray,
) -> np.ndarray:
    """Whether each of ``cols`` (sorted) could be raised by ``amps`` within ``room``."""
    if not len(cols):
        return np.zeros(0, dtype=bool)
    mine = np.zeros(int(max(cols.max(), e_col.max(initial=0))) + 1, dtype=bool)
    mine[cols] = True
    idx = np.flatnonzero(mine[e_col])
    k = np.searchsorted(cols, e_col[idx])
    short = room[e_row[idx]] < e_val[idx] * amps[k] - EPS
    return np.bincount(k, weights=short, minlength=len(cols)) == 0


def _period_dtype(n: int) -> type[np.integer]:
    return np.int16 if n < 2**15 else np.int64


class _Giveback:
    """The raises of `make_dispatchable`, one period at a time (``z`` in place)."""

    def __init__(
        self, lp: PreparedLP, x: np.ndarray, z: np.ndarray, lo: np.ndarray, need: np.ndarray
    ) -> None:
        self.lp, self.x, self.z, self.need = lp, x, z, need
        self.taper = np.array([s.demand.taper_kwh or 0.0 for s in lp.sessions])
        self.top_a = np.array([s.connector.max_current_a for s in lp.sessions])
        self.done = np.zeros(len(lp.sessions))
        """Energy of the periods already given back, per session."""
        self.rank = _urgency_rank(lp)
        self.last = np.array([s.first_col + len(s.periods) - 1 for s in lp.sessions], np.int64)
        e_row, e_col, e_val = _limit_entries(lp)
        entry_period = lp.x_period[e_col]
        # by period, then by column (the entries come sorted by column and the
        # sort is stable; small ints sort by radix): a period's entries are one
        # run, sorted by column
        order = np.argsort(entry_period.astype(_period_dtype(lp.n_periods)), kind="stable")
        self.e_row, self.e_col, self.e_val = e_row[order], e_col[order], e_val[order]
        self.e_bounds = np.searchsorted(entry_period[order], np.arange(lp.n_periods + 1))
        by_period = np.argsort(lp.x_period, kind="stable")
        self.by_period = by_period
        self.bounds = np.searchsorted(lp.x_period[by_period], np.arange(lp.n_periods + 1))
        self.lo = lo
        self.kwh = lp.x_kwh
        self.upper = lp.col_upper[: lp.n_x]
        self.discrete = np.array(
            [s.connector.connector.allowed_currents_a is not None for s in lp.sessions], dtype=bool
        )[lp.x_session]

    def period(self, p: int, budget: np.ndarray, *, rotate: bool, later: bool) -> None:
        """Give back period ``p``'s room; ``budget`` (kWh per session) is spent in place."""
        cols = self.by_period[self.bounds[p] : self.bounds[p + 1]]
        if not len(cols):
            return
        self._give_back(p, cols, budget, rotate=rotate, later=later)
        sess = self.lp.x_session
        self.done += np.bincount(
            sess[cols], self.kwh[cols] * self.z[cols], minlength=len(self.done)
        )

    def _give_back(
        self, p: int, cols: np.ndarray, budget: np.ndarray, *, rotate: bool, later: bool
    ) -> None:
        if later and not np.any(budget[self.lp.x_session[cols]] > BUDGET_TOL_KWH):
            return  # nobody needs more
        _PeriodRaises(self, p, cols, budget, rotate=rotate, later=later).run()


class _PeriodRaises:
    """One period's raises: its limit entries, the room left on each limit row,
    and the budget (kWh per session) the raises spend; ``z`` changes in place."""

    def __init__(
        self,
        g: _Giveback,
        p: int,
        cols: np.ndarray,
        budget: np.ndarray,
        *,
        rotate: bool,
        later: bool,
    ) -> None:
        self.g, self.lp, self.cols, self.budget = g, g.lp, cols, budget
        self.rotate, self.later = rotate, later
        self.x, self.z, self.kwh, self.lo = g.x, g.z, g.kwh, g.lo
        self.sess = g.lp.x_session
        self.upper = g.upper
        self.tail_cap = np.full(g.lp.n_x, np.inf)
        if later:
            self._cap_battery_tails()
        a, b = g.e_bounds[p], g.e_bounds[p + 1]
        self.e_row, self.e_col, self.e_val = g.e_row[a:b], g.e_col[a:b], g.e_val[a:b]
        self.room = self._room()
        self._by_row: tuple[np.ndarray, np.ndarray] | None = None

    def _room(self) -> np.ndarray:
        n_l = self.lp.n_limit_rows
        load = np.bincount(self.e_row, weights=self.e_val * self.z[self.e_col], minlength=n_l)
        return self.lp.row_upper[:n_l] - load

    def _cap_battery_tails(self) -> None:
        """The battery tail as the LP has it (`optimizer.rows.tail_rows`), from what the
        periods before this one now deliver."""
        g, z, sess = self.g, self.z, self.sess
        tail = self.cols[g.taper[sess[self.cols]] > 0]
        if not len(tail):
            return
        st = sess[tail]
        left = np.maximum(g.need[st] - g.done[st], 0.0)
        self.tail_cap[tail] = g.top_a[st] * left / g.taper[st]
        self.upper = upper = np.minimum(self.upper, self.tail_cap)
        # earlier periods may now deliver more than the LP planned there
        for c in tail[z[tail] > upper[tail] + EPS]:
            new = _floor_step(self.lp, int(c), float(upper[c]), float(self.lo[c]))
            self.budget[sess[c]] += self.kwh[c] * (z[c] - new)
            z[c] = new

    def run(self) -> None:
        cols, x, z, lo, sess, budget = self.cols, self.x, self.z, self.lo, self.sess, self.budget
        later = self.later
        no_room = not np.any(self.room[self.e_row] > STEP_A * self.e_val - EPS)
        if later and no_room and not np.any((z[cols] == 0) & (x[cols] > EPS)):
            return  # no room for a step anywhere, and no sliver a swap could help
        # (later: also where the LP planned nothing, to place energy the rule
        # cost elsewhere, e.g. a sliver now the minimum had no room for)
        wanted = (x[cols] > EPS) | later
        paused = cols[(z[cols] == 0) & wanted & (budget[sess[cols]] > BUDGET_TOL_KWH)]
        below_minimum = self.upper[paused] < lo[paused] - EPS
        at_minimum = paused[~below_minimum & np.isfinite(lo[paused])]
        self._paused_to_minimum(at_minimum)
        charging = cols[(z[cols] > 0) & (budget[sess[cols]] > BUDGET_TOL_KWH)]
        discrete = self.g.discrete[charging]
        self._share_continuous(charging[~discrete])
        self._step_discrete(charging[discrete])
        if later:
            self._paused_from_what_is_left(at_minimum)
        self._tapering_to_minimum(paused[below_minimum])

    def _urgency(self, cs: np.ndarray) -> np.ndarray:
        if self.rotate:  # now: the previous plan's pauses first
            return _urgency_order(self.lp, cs, rotate=True)
        return cs[np.argsort(self.g.rank[self.sess[cs]], kind="stable")]

    def _has_budget(self, c: int) -> bool:
        return bool(self.budget[self.sess[c]] > BUDGET_TOL_KWH)

    def _try_raise(self, c: int, target: float) -> bool:
        i, j = np.searchsorted(self.e_col, [c, c + 1])
        rows, vals = self.e_row[i:j], self.e_val[i:j]
        delta = target - self.z[c]
        if np.all(self.room[rows] >= vals * delta - EPS):
            self.z[c] = target
            np.subtract.at(self.room, rows, vals * delta)
            self.budget[self.sess[c]] -= self.kwh[c] * delta
            return True
        return False

    def _paused_to_minimum(self, to_raise: np.ndarray) -> None:
        """1. Paused sessions to their minimum."""
        x, lo, kwh, sess = self.x, self.lo, self.kwh, self.sess
        later = self.later
        fits = np.ones(len(to_raise), dtype=bool)
        if later and len(to_raise):
            # worth it (see MIN_USE), and a sliver the LP planned or fitting as things stand
            worth = self.budget[sess[to_raise]] >= MIN_USE * kwh[to_raise] * lo[to_raise]
            fits = _fits(self.e_row, self.e_col, self.e_val, self.room, to_raise, lo[to_raise])
            keep = worth & ((x[to_raise] > EPS) | fits)
            to_raise, fits = to_raise[keep], fits[keep]
        fitting = set(to_raise[fits].tolist())
        for c in self._urgency(to_raise):
            # (room only shrinks here but by swaps, so what did not fit will not)
            if (int(c) not in fitting or not self._try_raise(int(c), float(lo[c]))) and later:
                # a car with later periods left may get its energy there: swap
                # only where the donor gives up little of what it gains
                if c == self.g.last[sess[c]]:
                    self._swap_in(int(c), 0.0)
                elif x[c] >= 0.5 * lo[c]:  # see SWAP_KEEP
                    self._swap_in(int(c), SWAP_KEEP)

    def _swap_in(self, c: int, keep: float) -> None:
        """Make room for paused ``c`` at its minimum by lowering one continuous
        current that loads every row ``c`` lacks room on (an LP vertex often
        gives one car its maximum and the next a sliver), where ``c`` gains
        more energy than that car gives up."""
        e_row, e_col, e_val, room = self.e_row, self.e_col, self.e_val, self.room
        z, lo, kwh, sess, budget = self.z, self.lo, self.kwh, self.sess, self.budget
        if self._by_row is None:
            by_row = np.argsort(e_row, kind="stable")  # by row, then column
            self._by_row = (by_row, e_row[by_row])
        order_r, rows_sorted = self._by_row
        i, j = np.searchsorted(e_col, [c, c + 1])
        rows, vals = e_row[i:j], e_val[i:j]
        short = vals * lo[c] - room[rows]
        blocked = short > EPS
        if not np.any(blocked):  # a swap before made room
            self._try_raise(c, float(lo[c]))
            return
        cand = None
        delta = np.zeros(0)
        for r, sh in zip(rows[blocked], short[blocked], strict=True):
            a, b = np.searchsorted(rows_sorted, [r, r + 1])
            ent = order_r[a:b]
            if cand is None:
                cand = e_col[ent]
                cand = cand[(z[cand] > lo[cand] + EPS) & ~self.g.discrete[cand] & (cand != c)]
                delta = np.zeros(len(cand))
            pos = np.minimum(np.searchsorted(e_col[ent], cand), len(ent) - 1)
            coef = np.where(e_col[ent][pos] == cand, e_val[ent][pos], 0.0)
            loads = coef > EPS
            cand, delta = cand[loads], np.maximum(delta[loads], sh / coef[loads])
        if cand is None or not len(cand):
            return
        delta = np.ceil(delta / STEP_A - 1e-6) * STEP_A
        won = min(lo[c] * kwh[c], budget[sess[c]])
        gain = won - delta * kwh[cand]
        ok = (z[cand] - delta >= lo[cand] - EPS) & (gain > keep * won + EPS)
        if not np.any(ok):
            return
        k = int(np.argmax(np.where(ok, gain, -np.inf)))
        d, dd = int(cand[k]), float(delta[k])
        i, j = np.searchsorted(e_col, [d, d + 1])
        np.add.at(room, e_row[i:j], e_val[i:j] * dd)
        z[d] -= dd
        budget[sess[d]] += kwh[d] * dd
        if not self._try_raise(c, float(lo[c])):  # float noise: undo
            np.subtract.at(room, e_row[i:j], e_val[i:j] * dd)
            z[d] += dd
            budget[sess[d]] -= kwh[d] * dd

    def _share_continuous(self, continuous: np.ndarray) -> None:
        """2. Continuous connectors share what is left."""
        z, kwh, sess, upper, e_row = self.z, self.kwh, self.sess, self.upper, self.e_row
        spare = np.maximum(self.budget[sess[continuous]], 0.0) / np.maximum(kwh[continuous], EPS)
        if self.later:
            # what the session still needs, rounded up to a step: a remainder is
            # placed here, where the car draws anyway, not as a minimum later
            spare = np.ceil(spare / STEP_A - 1e-6) * STEP_A
        top = np.maximum(np.minimum(z[continuous] + spare, upper[continuous]), z[continuous])
        if self.later:  # a raise below one step is floored away: leave its room to others
            big = top >= z[continuous] + STEP_A - EPS
            continuous, top = continuous[big], top[big]
        if not len(continuous):
            return
        # compact indices: only the rows and columns of this fill
        n_l = self.lp.n_limit_rows
        mine = np.zeros(self.lp.n_x, dtype=bool)
        mine[continuous] = True
        touch = mine[self.e_col]
        r_glob = e_row[touch]
        rows_u = np.flatnonzero(np.bincount(r_glob, minlength=n_l))
        local = np.empty(n_l, dtype=np.int64)
        local[rows_u] = np.arange(len(rows_u))
        r_loc = local[r_glob]
        c_loc = np.searchsorted(continuous, self.e_col[touch])
        y = z[continuous].copy()
        room_u = np.maximum(self.room[rows_u], 0.0)
        fill(np.arange(len(continuous)), r_loc, c_loc, self.e_val[touch], room_u, y, top)
        raised = np.maximum(np.floor(y / STEP_A + 1e-6) * STEP_A, z[continuous])
        np.subtract.at(self.budget, sess[continuous], kwh[continuous] * (raised - z[continuous]))
        z[continuous] = raised
        self.room = self._room()

    def _step_discrete(self, stepped: np.ndarray) -> None:
        """3. Discrete pilots: one step at a time, most urgent first."""
        if not len(stepped):
            return
        lp, x, z = self.lp, self.x, self.z
        steps: dict[int, np.ndarray] = {}
        for c in stepped:
            allowed = lp.sessions[int(self.sess[c])].connector.connector.allowed_currents_a
            steps[int(c)] = np.array(sorted({0.0, *(allowed or ())}))
        order = self._urgency(stepped) if self.later else _urgency_order(lp, stepped)
        # back up to the LP's current (what flooring took), then beyond it
        for beyond in (False, True):
            live = [int(c) for c in order]
            while live:
                kept = []
                for c in live:
                    if not self._has_budget(c) or (not beyond and z[c] >= x[c] - EPS):
                        continue
                    target = _next_step(steps[c], float(z[c]))
                    if target > self.upper[c] + EPS:
                        continue
                    if self._try_raise(c, target):
                        kept.append(c)
                live = kept if beyond else []

    def _paused_from_what_is_left(self, paused: np.ndarray) -> None:
        """Later periods: paused cars that did not fit above get the minimum,
        from what is left, only where they would draw `MIN_USE` of it (a car
        that needs a rounding remainder would hold a minimum it stops drawing
        at once)."""
        z, lo, kwh = self.z, self.lo, self.kwh
        enough = self.budget[self.sess[paused]] >= MIN_USE * kwh[paused] * lo[paused]
        rest = paused[(z[paused] == 0) & enough]
        rest = rest[_fits(self.e_row, self.e_col, self.e_val, self.room, rest, lo[rest])]
        for c in self._urgency(rest):
            if self._has_budget(int(c)):
                self._try_raise(int(c), float(lo[c]))

    def _tapering_to_minimum(self, tapering: np.ndarray) -> None:
        """4. Cars taking less than the minimum: the minimum, from what is left."""
        lo = self.lo
        for c in self._urgency(tapering):
            top = min(self.lp.sessions[int(self.sess[c])].connector.max_current_a, self.tail_cap[c])
            if math.isfinite(lo[c]) and lo[c] <= top + EPS and self._has_budget(int(c)):
                self._try_raise(int(c), float(lo[c]))


def _trim_later(
    lp: PreparedLP, z: np.ndarray, kwh: np.ndarray, need: np.ndarray, lo: np.ndarray
) -> None:
    """Lower the periods after now of sessions planned beyond their need, latest
    first, down to what the need leaves (a valid step at or above it, so a
    session never ends short by the trimming). Lowering never breaks a limit."""
    later = lp.x_period > 0
    energy = kwh * z
    surplus = np.bincount(lp.x_session, energy, minlength=len(need)) - need
    over = surplus > BUDGET_TOL_KWH
    if not np.any(over[lp.x_session] & later & (z > 0)):
        return
    # energy of every later column and of those after it in its session
    e_later = np.where(later, energy, 0.0)
    rev = np.cumsum(e_later[::-1])[::-1]  # from this column to the very last one
    first = np.array([s.first_col for s in lp.sessions], dtype=np.int64)
    n = np.array([len(s.periods) for s in lp.sessions], dtype=np.int64)
    end = first + n  # one past each session's last column
    after_session = np.where(end < lp.n_x, rev[np.minimum(end, lp.n_x - 1)], 0.0)
    from_here = rev - after_session[lp.x_session]  # this column to its session's last
    s = lp.x_session
    cut = over[s] & later & (z > 0)
    drop = cut & (from_here <= surplus[s])  # the surplus covers it and all after it
    # the boundary column: the surplus covers all after it and part of it
    part = cut & ~drop & (from_here - e_later < surplus[s])
    z[drop] = 0.0
    for c in np.flatnonzero(part):
        keep_kwh = energy[c] - (surplus[s[c]] - (from_here[c] - e_later[c]))
        z[c] = _ceil_step(lp, int(c), keep_kwh / kwh[c], float(lo[c]), float(z[c]))


def _floor_step(lp: PreparedLP, c: int, amps: float, lo: float) -> float:
    """The greatest valid current ≤ ``amps`` (0 below the minimum)."""
    allowed = lp.sessions[int(lp.x_session[c])].connector.connector.allowed_currents_a
    if allowed is not None:
        return max((a for a in allowed if a <= amps + EPS and a >= lo - EPS), default=0.0)
    v = math.floor(amps / STEP_A + 1e-6) * STEP_A
    return v if v >= lo - EPS else 0.0


def _ceil_step(lp: PreparedLP, c: int, amps: float, lo: float, top: float) -> float:
    """The least valid current ≥ ``amps`` (and ≥ the minimum), at most ``top``."""
    allowed = lp.sessions[int(lp.x_session[c])].connector.connector.allowed_currents_a
    if allowed is not None:
        above = [a for a in allowed if a >= amps - EPS and a >= lo - EPS]
        return min(min(above, default=top), top)
    return min(max(math.ceil(amps / STEP_A - 1e-6) * STEP_A, lo), top)


def row_loads(lp: PreparedLP, x: np.ndarray) -> np.ndarray:
    e_row, e_col, e_val = _limit_entries(lp)
    return np.bincount(e_row, weights=e_val * x[e_col], minlength=lp.n_limit_rows)
