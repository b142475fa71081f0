"""From LP currents to currents a station can be given.

* Water-filling (`water_fill`): equal shares per slot, raised together until a
  limit, a car's maximum or its energy need stops them. Always feasible, fast,
  not optimal: the fallback when the solver gives nothing, and the
  ``equal-share`` strategy of the simulator.
* The minimum-current rule (`make_dispatchable`): a connector is offered 0 A or
  at least its minimum (or one of its allowed pilot steps). Rounding *down* can
  never break a ≤ limit, so every current is first floored to a step (0.1 A,
  the resolution of an OCPP limit, or an allowed step). In the slot dispatched
  now the room this leaves on every row is given back: sessions that fell to 0
  are raised to their minimum (those the previous plan paused first, then the
  most urgent), continuous connectors are water-filled, and connectors with
  pilot steps are raised one step at a time, most urgent first, while any step
  fits. Each raise is checked against the remaining room of every row it
  touches, so the result respects every limit by construction (see
  tests/optimizer/test_properties.py).
"""

from __future__ import annotations

import math

import numpy as np

from optimizer.prepare import PreparedLP

STEP_A = 0.1
EPS = 1e-9


def _limit_entries(lp: PreparedLP) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rows, cols, vals = lp.coo()
    m = (rows < lp.n_limit_rows) & (cols < lp.n_x)
    return rows[m], cols[m], vals[m]


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
    kwh = np.concatenate([s.kwh_per_a for s in lp.sessions])
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


def floor_to_steps(lp: PreparedLP, x: np.ndarray) -> np.ndarray:
    """Round every current down to something the station can be given."""
    z = np.floor(x / STEP_A + 1e-6) * STEP_A
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
    """Currents a station can be given, slot 0 using every limit's room.

    Every slot is floored to valid steps (never breaks a ≤ limit). In slot 0,
    what the rounding and the minimum current leave of every row's room is then
    given back, each raise checked against the room of every row it loads (each
    line of every group above, kW limits, weighted limits), so no limit the LP
    has can be exceeded:

    1. sessions the floor paused are raised to their minimum, the ones paused
       by the previous plan first (rotation), then least laxity first;
    2. connectors with continuous currents share what is left (water-filling,
       up to their maximum and what their need can take);
    3. connectors with discrete pilot steps are raised one step at a time, most
       urgent first, round after round while any step fits: first back up to
       the step at or above the LP's current, then beyond it while the session
       still needs energy. Only sessions charging now are raised (the LP's zeros
       stay zeros: it may be waiting for cheaper slots);
    4. cars known to take less than their station's minimum (a battery tapering
       off before full: ``ev_max_current_a`` below the minimum) get the minimum
       last, from what every other car left. At the minimum they would hold
       more of a limit than they draw, so they never take room a car drawing
       in full could use (measured on JPL 2019, realistic models: +0.7 / +0.8
       points of energy delivered at 80 / 50 kW).
    """
    z = floor_to_steps(lp, x)
    if lp.n_x == 0:
        return z
    e_row, e_col, e_val = _limit_entries(lp)
    cols0 = np.flatnonzero(lp.x_period == 0)
    if not len(cols0):
        return z
    in0 = lp.x_period[e_col] == 0
    e_row, e_col, e_val = e_row[in0], e_col[in0], e_val[in0]
    load = np.bincount(e_row, weights=e_val * z[e_col], minlength=lp.n_limit_rows)
    room = lp.row_upper[: lp.n_limit_rows] - load
    lo = min_current(lp)[lp.x_session]
    kwh = np.concatenate([s.kwh_per_a for s in lp.sessions])
    need = np.array([s.demand.energy_kwh for s in lp.sessions])[lp.x_session]
    cap = np.minimum(lp.col_upper[: lp.n_x], need / np.maximum(kwh, EPS))
    order_e = np.argsort(e_col, kind="stable")
    sorted_cols = e_col[order_e]

    def entries(c: int) -> tuple[np.ndarray, np.ndarray]:
        a, b = np.searchsorted(sorted_cols, [c, c + 1])
        sel = order_e[a:b]
        return e_row[sel], e_val[sel]

    def try_raise(c: int, target: float) -> bool:
        rows, vals = entries(c)
        delta = target - z[c]
        if np.all(room[rows] >= vals * delta - EPS):
            z[c] = target
            np.subtract.at(room, rows, vals * delta)
            return True
        return False

    # 1. paused sessions to their minimum
    paused = cols0[(z[cols0] == 0) & (x[cols0] > EPS)]
    below_minimum = lp.col_upper[paused] < lo[paused] - EPS
    for c in _urgency_order(lp, paused[~below_minimum], rotate=True):
        if math.isfinite(lo[c]):
            try_raise(int(c), float(lo[c]))
    charging = cols0[z[cols0] > 0]
    discrete = np.array(
        [
            lp.sessions[int(lp.x_session[c])].connector.connector.allowed_currents_a is not None
            for c in charging
        ],
        dtype=bool,
    )
    # 2. continuous connectors share what is left
    continuous = charging[~discrete] if len(charging) else charging
    if len(continuous):
        y = z.copy()
        upper = np.maximum(np.minimum(cap, lp.col_upper[: lp.n_x]), z)
        touch = np.isin(e_col, continuous)
        fill(continuous, e_row[touch], e_col[touch], e_val[touch], np.maximum(room, 0.0), y, upper)
        z[continuous] = np.floor(y[continuous] / STEP_A + 1e-6) * STEP_A
        load = np.bincount(e_row, weights=e_val * z[e_col], minlength=lp.n_limit_rows)
        room = lp.row_upper[: lp.n_limit_rows] - load
    # 3. discrete pilots: one step at a time, most urgent first
    stepped = charging[discrete] if len(charging) else charging
    if len(stepped):
        steps: dict[int, np.ndarray] = {}
        for c in stepped:
            allowed = lp.sessions[int(lp.x_session[c])].connector.connector.allowed_currents_a
            steps[int(c)] = np.array(sorted({0.0, *(allowed or ())}))
        order = _urgency_order(lp, stepped)
        # back up to the LP's current (what flooring took), then beyond it
        for beyond in (False, True):
            live = [int(c) for c in order]
            while live:
                kept = []
                for c in live:
                    if z[c] >= cap[c] - EPS or (not beyond and z[c] >= x[c] - EPS):
                        continue
                    target = _next_step(steps[c], float(z[c]))
                    if target > lp.col_upper[c] + EPS:
                        continue
                    if try_raise(c, target):
                        kept.append(c)
                live = kept if beyond else []
    # 4. cars taking less than the minimum: the minimum, from what is left
    for c in _urgency_order(lp, paused[below_minimum], rotate=True):
        top = lp.sessions[int(lp.x_session[c])].connector.max_current_a
        if math.isfinite(lo[c]) and lo[c] <= top + EPS:
            try_raise(int(c), float(lo[c]))
    return z


def row_loads(lp: PreparedLP, x: np.ndarray) -> np.ndarray:
    e_row, e_col, e_val = _limit_entries(lp)
    return np.bincount(e_row, weights=e_val * x[e_col], minlength=lp.n_limit_rows)
