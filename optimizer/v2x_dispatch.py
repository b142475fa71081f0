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


def for_dispatch(
    lp: PreparedLP, x: np.ndarray, y: dict[int, np.ndarray]
) -> tuple[PreparedLP, np.ndarray]:
    """The LP as the dispatch must see it, and ``x`` scaled into it: the slot
    now's limit rows widened by the discharge confirmed and commanded, nothing
    counted later; a discharging session's budget raised by what it gives."""
    if not y:
        return lp, x
    extra_room = np.zeros(lp.n_limit_rows)
    sessions = list(lp.sessions)
    P = lp.n_periods
    lim_key = lp.limit_row_family * P + lp.limit_row_period
    for i, ys in y.items():
        s = sessions[i]
        assert s.demand.v2x is not None
        given = float(np.sum(ys * s.kwh_per_a))
        sessions[i] = replace(s, demand=replace(s.demand, energy_kwh=s.demand.energy_kwh + given))
        if s.periods[0] != 0:
            continue
        counted = min(float(ys[0]), s.demand.v2x.confirmed_a)
        for f, coef in s.families:
            at = np.searchsorted(lim_key, f * P)
            if at < len(lim_key) and lim_key[at] == f * P:
                extra_room[at] += coef * counted
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
