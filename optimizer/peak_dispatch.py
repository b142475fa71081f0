"""The peak-demand rows kept by the dispatch (`optimizer.dispatch` knows only
limit rows): with the LP's ``rise`` fixed, a peak row is a kW limit of the
connection, ``Σ coef·x ≤ peak so far + rise − rest``. It becomes limit rows
of the LP the dispatch sees, one per (peak row, period): an interval made of
several periods (5-minute slots, 15-minute peak) is split, each period
keeping what the LP planned there and an equal share of the row's room, so
the dispatch can never raise an interval's average above the LP's peak (the
give-back of leftover room and the minimum-current rule included)."""

from __future__ import annotations

import dataclasses

import numpy as np

from optimizer.costs import PEAK_BLOCK
from optimizer.families import KW
from optimizer.prepare import PreparedLP
from optimizer.rows import Family


def keep(lp: PreparedLP, x: np.ndarray, extra: np.ndarray | None) -> PreparedLP:
    """``lp`` with its peak rows as limit rows at the LP's rise (``extra``: the
    extra terms' column values); ``lp`` itself without a peak term."""
    block = next((e for e in lp.extras if e.name == PEAK_BLOCK), None)
    if block is None or extra is None or lp.n_x == 0:
        return lp
    rows, cols, vals = block.entries
    own = cols >= lp.n_x  # the rise entries: one per row
    row0 = int(rows[own].min())
    rise = extra[cols[own] - (lp.n_col - sum(e.n_col for e in lp.extras))]
    upper = block.row_upper.copy()
    upper[rows[own] - row0] += rise
    xr, xc, xv = rows[~own] - row0, cols[~own], vals[~own]
    # one limit row per (peak row, period)
    key = xr * lp.n_periods + lp.x_period[xc]
    keys, new_row = np.unique(key, return_inverse=True)
    load = np.bincount(new_row, weights=xv * x[xc], minlength=len(keys))
    peak_row = keys // lp.n_periods
    total = np.bincount(peak_row, weights=load, minlength=len(upper))
    parts = np.bincount(peak_row, minlength=len(upper))
    share = np.maximum(upper - total, 0.0) / np.maximum(parts, 1)
    cap = load + share[peak_row]
    return _with_limit_rows(lp, new_row, xc, xv, cap, keys % lp.n_periods)


def _with_limit_rows(
    lp: PreparedLP,
    new_row: np.ndarray,
    col: np.ndarray,
    val: np.ndarray,
    upper: np.ndarray,
    period: np.ndarray,
) -> PreparedLP:
    """``lp`` with ``len(upper)`` more limit rows (entries on x columns), placed
    after its limit rows; every later row moves down by as many."""
    n_l, k = lp.n_limit_rows, len(upper)
    rows, cols, vals = lp.coo()
    rows = np.where(rows >= n_l, rows + k, rows)
    all_rows = np.concatenate([rows, n_l + new_row])
    all_cols = np.concatenate([cols, col])
    order = np.argsort(all_cols, kind="stable")
    a_start = np.zeros(lp.n_col + 1, dtype=np.int64)
    np.cumsum(np.bincount(all_cols, minlength=lp.n_col), out=a_start[1:])
    phasor = lp.phasor
    if phasor is not None:  # its entries' places in the matrix move with the sort
        place = np.empty(len(order), dtype=np.int64)
        place[order] = np.arange(len(order))
        phasor = dataclasses.replace(phasor, entry=place[phasor.entry])
    family = Family(lp.problem.site.root.id, KW, np.zeros(lp.n_periods))
    return dataclasses.replace(
        lp,
        families=(*lp.families, family),
        row_lower=np.concatenate([lp.row_lower[:n_l], np.full(k, -np.inf), lp.row_lower[n_l:]]),
        row_upper=np.concatenate([lp.row_upper[:n_l], upper, lp.row_upper[n_l:]]),
        n_limit_rows=n_l + k,
        limit_row_family=np.concatenate(
            [lp.limit_row_family, np.full(k, len(lp.families), dtype=np.int64)]
        ),
        limit_row_period=np.concatenate([lp.limit_row_period, period.astype(np.int64)]),
        a_start=a_start,
        a_index=all_rows[order].astype(np.int32),
        a_value=np.concatenate([vals, val])[order],
        phasor=phasor,
    )
