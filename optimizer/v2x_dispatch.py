"""After the LP: the discharge of `optimizer.v2x` as the dispatch and the plan
see it (its safety rule is stated in `optimizer.v2x`'s docstring)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from optimizer.plan import Plan
from optimizer.prepare import PreparedLP, limit_load
from optimizer.v2x import NAME, discharging

STEP_A = 0.1
"""Resolution of a commanded discharge (that of an OCPP limit)."""


def discharge_columns(lp: PreparedLP, extra: np.ndarray | None) -> dict[int, np.ndarray]:
    """Session index → its discharge per period of its columns, from the
    values of the extra terms' columns (empty: nothing discharged)."""
    if extra is None:
        return {}
    offset = 0
    for e in lp.extras:
        if e.name == NAME:
            y = np.clip(extra[offset : offset + e.n_col], 0.0, e.col_upper)
            out: dict[int, np.ndarray] = {}
            k = 0
            for i in discharging(lp.problem, lp.sessions):
                n = len(lp.sessions[i].periods)
                out[i] = np.floor(y[k : k + n] / STEP_A + 1e-6) * STEP_A
                k += n
            return out
        offset += e.n_col
    return {}


def within_rows(lp: PreparedLP, z: np.ndarray, y: dict[int, np.ndarray]) -> dict[int, np.ndarray]:
    """``y`` lowered where the dispatched currents ``z`` leave one of the term's
    own rows short of its lower bound: a group would feed back more than its
    export limit (the others were given less than the LP planned), or a car
    would go below its driver's minimum. Lowering a discharge only raises what
    those rows sum (its coefficients there are negative), and the limit rows
    keep within their room: where an export row binds, the group's net is at
    minus its export limit, below any upper bound."""
    if not y:
        return y
    col0 = lp.n_x + lp.n_v + lp.n_d + lp.n_w
    row0 = lp.n_limit_rows + len(lp.sessions) + 2 * lp.n_d + len(lp.w_x) + len(lp.tail_x)
    for e in lp.extras:
        if e.name != NAME:
            col0, row0 = col0 + e.n_col, row0 + e.n_row
            continue
        values = np.concatenate([y[i] for i in discharging(lp.problem, lp.sessions)])
        rows, cols, vals = e.entries
        own = rows >= row0
        rows, cols, vals = rows[own] - row0, cols[own], vals[own]
        is_y = cols >= col0
        for r in np.flatnonzero(np.isfinite(e.row_lower)):
            m = rows == r
            ym, xm = m & is_y, m & ~is_y
            given = float(np.sum(-vals[ym] * values[cols[ym] - col0]))
            room = float(np.sum(vals[xm] * z[cols[xm]])) - e.row_lower[r]
            if given > room + 1e-9 and given > 0:
                values[cols[ym] - col0] *= max(room, 0.0) / given
        out, k = {}, 0
        for i in discharging(lp.problem, lp.sessions):
            n = len(lp.sessions[i].periods)
            out[i] = np.floor(values[k : k + n] / STEP_A + 1e-6) * STEP_A
            k += n
        return out
    return y


def for_dispatch(
    lp: PreparedLP, x: np.ndarray, y: dict[int, np.ndarray]
) -> tuple[PreparedLP, np.ndarray]:
    """The LP as the dispatch must see it, and ``x`` scaled into it: each
    period's limit rows widened by the discharge both planned and confirmed
    for all its slots (`Bidirectional.confirmed_a`, ``confirmed_ahead_a``);
    a discharging session's budget raised by what it gives."""
    if not y:
        return lp, x
    extra_room = np.zeros(lp.n_limit_rows)
    sessions = list(lp.sessions)
    P = lp.n_periods
    lim_key = lp.limit_row_family * P + lp.limit_row_period
    for i, ys in y.items():
        s = sessions[i]
        v = s.demand.v2x
        assert v is not None
        given = float(np.sum(ys * s.kwh_per_a))
        sessions[i] = replace(s, demand=replace(s.demand, energy_kwh=s.demand.energy_kwh + given))
        confirmed = np.zeros(lp.problem.grid.slots)
        confirmed[0] = v.confirmed_a
        ahead = np.asarray(v.confirmed_ahead_a[: len(confirmed) - 1], dtype=float)
        confirmed[1 : 1 + len(ahead)] = ahead
        # a period counts what is confirmed for every slot of it
        held = np.minimum.reduceat(confirmed, lp.period_first)[s.periods]
        counted = np.minimum(ys, held)
        for f, coef in s.families:
            keys = f * P + s.periods
            at = np.minimum(np.searchsorted(lim_key, keys), max(len(lim_key) - 1, 0))
            found = (lim_key[at] == keys) if len(lim_key) else np.zeros(len(keys), bool)
            np.add.at(extra_room, at[found], coef * counted[found])
    row_upper = lp.row_upper.copy()
    row_upper[: lp.n_limit_rows] += extra_room
    out = replace(lp, row_upper=row_upper, sessions=tuple(sessions))
    return out, _scale_into(out, x)


def _scale_into(lp: PreparedLP, x: np.ndarray) -> np.ndarray:
    """``x`` with the columns of every over-full limit row scaled down into it."""
    load = limit_load(lp, x)
    upper = lp.row_upper[: lp.n_limit_rows]
    over = load > upper + 1e-9
    if not np.any(over):
        return x
    ratio = np.ones(lp.n_limit_rows)
    ratio[over] = np.maximum(upper[over], 0.0) / load[over]
    rows, cols, _ = lp.limit_entries
    factor = np.ones(lp.n_x)
    np.minimum.at(factor, cols, ratio[rows])
    return x * factor


def with_discharge(plan: Plan, lp: PreparedLP, y: dict[int, np.ndarray]) -> Plan:
    """``plan`` with each discharging connector's discharge per slot (A per line)."""
    if not y:
        return plan
    T = plan.grid.slots
    out: dict[str, np.ndarray] = {}
    energy, unmet = dict(plan.energy_kwh), dict(plan.unmet_kwh)
    requested = dict(plan.requested_kwh)
    for i, ys in y.items():
        s = lp.sessions[i]
        # the dispatch saw the need raised by what is given: the net is reported
        sid, given = s.demand.session_id, float(np.sum(ys * s.kwh_per_a))
        requested[sid] = need = max(requested[sid] - given, 0.0)
        energy[sid] = max(energy[sid] - given, 0.0)
        unmet[sid] = max(need - energy[sid], 0.0)
        per_slot = np.zeros(T)
        w0, w1 = s.window
        for k, p in enumerate(s.periods.tolist()):
            first = int(lp.period_first[p])
            for t in range(first, first + int(lp.period_len[p])):
                if min(t + 1, w1) - max(t, w0) > 1e-9:
                    per_slot[t] = ys[k]
        if np.any(per_slot > 0):
            out[s.demand.connector_id] = per_slot
    return replace(
        plan, discharge_a=out, energy_kwh=energy, requested_kwh=requested, unmet_kwh=unmet
    )
