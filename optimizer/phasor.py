"""Exact limits on phasor sums: |Σ cᵢ·xᵢ| ≤ U for the phasor families of a site.

The LP keeps one row per (phasor family, period), the projection of the sum on
a fixed direction d (Re(d̄·Σ cᵢxᵢ) ≤ U): a first outer plane of the disc. The
backend then adds cutting planes, the tangent at each row's sum where the sum
is outside the disc, and re-solves warm until the largest violation is below
`CUT_TOLERANCE` of the limit (`violated`, `cut_rows`); a kept planner starts
the next re-plan with each row's latest cuts (`planes`). What is left over is
removed by scaling each period's currents (`scale_inside`). The dispatch then
fills each row up to its tangent at that point (`tangent`), which may leave
the disc a little, so the plan as dispatched is checked on the exact
magnitudes and the currents pushing a sum out are lowered a step at a time
(`enforce`; lowering one member of a sum whose members are more than 90° apart
may push another sum out, hence a loop). If that does not settle, the caller
falls back on the linear model (Σ|cᵢ|·xᵢ ≤ U, never looser than the exact
one). Every plan leaving `optimizer.solve` is thus within every exact limit,
whatever the cuts did.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import numpy as np

from optimizer.families import (
    WEIGHTED,
    PhasorRows,
    SiteFamilies,
    current_phasor,
    line_voltage,
)
from optimizer.prepare import PreparedLP
from optimizer.site import Line

CUT_TOLERANCE = 1e-3
"""Largest violation left to the final scaling, as a fraction of the limit."""
MAX_CUT_ROUNDS = 12
"""Re-solves with new cuts at most (each adds the tangents of the rows still out)."""
KEPT_CUTS = 3
"""Cuts per row a kept planner carries to the next re-plan (its latest)."""
ENFORCE_MOVES = 400
"""Currents lowered at most before the linear model is used instead (a plan
needs a few; the bound keeps a pathological one from costing seconds)."""
TOLERANCE_A = 1e-6


def exact(lp: PreparedLP) -> PreparedLP:
    """``lp`` with its phasor families' rows as first outer planes, and what
    the cuts need; ``lp`` itself where no row bounds a phasor sum (a site
    without phasor sums keeps its LP, array for array)."""
    site = lp.problem.site
    if lp.n_limit_rows == 0 or not any(g.phasor for g in site.groups):
        return lp
    families = SiteFamilies.of(site)
    if not families.phasor_keys:
        return lp
    fam_phasor = np.array(
        [(f.group_id, f.quantity) in families.phasor_keys for f in lp.families], dtype=bool
    )
    is_row = fam_phasor[lp.limit_row_family]
    if not is_row.any():
        return lp
    direction_of = _directions(lp, families)
    col_of = np.repeat(np.arange(lp.n_col), np.diff(lp.a_start))
    entry = np.flatnonzero((lp.a_index < lp.n_limit_rows) & (col_of < lp.n_x))
    entry = entry[is_row[lp.a_index[entry]]]
    rows = np.flatnonzero(is_row)
    position = np.cumsum(is_row) - 1
    entry_row = position[lp.a_index[entry]]
    entry_col = col_of[entry]
    index = {(f.group_id, f.quantity): i for i, f in enumerate(lp.families)}
    by_session: list[dict[int, complex]] = [
        {index[k]: c for k, c in families.phasors(s.connector, s.lines) if k in index}
        for s in lp.sessions
    ]
    row_family = lp.limit_row_family[rows]
    coef = np.array(
        [
            by_session[s][f]
            for s, f in zip(
                lp.x_session[entry_col].tolist(), row_family[entry_row].tolist(), strict=True
            )
        ],
        dtype=complex,
    )
    direction = np.array([direction_of[int(f)] for f in row_family], dtype=complex)
    values = lp.a_value.copy()
    values[entry] = (np.conj(direction[entry_row]) * coef).real
    rows_ = PhasorRows(
        rows, lp.row_upper[rows].copy(), direction, entry, entry_row, entry_col, coef
    )
    return dataclasses.replace(lp, a_value=values, phasor=rows_)


def _directions(lp: PreparedLP, families: SiteFamilies) -> dict[int, complex]:
    """First outer plane of each phasor family: the line's own angle, or the
    direction of a weighted group's coefficients summed (fixed per site, so a
    re-plan keeps its rows' coefficients)."""
    out: dict[int, complex] = {}
    weighted = dict(families.phasor_weighted)
    site = lp.problem.site
    for i, f in enumerate(lp.families):
        if f.quantity != WEIGHTED and f.quantity not in Line.__members__:
            continue  # kW, and the pseudo-groups of the solar modes: no direction
        if f.quantity != WEIGHTED:
            out[i] = line_voltage(Line(f.quantity))
            continue
        members = weighted.get(f.group_id, {})
        total = complex(
            sum(w * current_phasor(site.connectors[k].lines) for k, w in members.items())
        )
        out[i] = total / abs(total) if abs(total) > 1e-9 else 1.0 + 0.0j
    return out


def sums(ph: PhasorRows, x: np.ndarray) -> np.ndarray:
    """Σ cᵢ·xᵢ of every phasor row under x-column values ``x``."""
    n = len(ph.rows)
    v = ph.coef * x[ph.entry_col]
    return np.bincount(ph.entry_row, v.real, minlength=n) + 1j * np.bincount(
        ph.entry_row, v.imag, minlength=n
    )


def violated(ph: PhasorRows, x: np.ndarray, tolerance: float = CUT_TOLERANCE) -> np.ndarray:
    """Phasor rows whose sum is out of the disc by more than ``tolerance`` of the limit."""
    return np.flatnonzero(np.abs(sums(ph, x)) > ph.bound * (1.0 + tolerance) + TOLERANCE_A)


def cut_rows(
    ph: PhasorRows, x: np.ndarray, which: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Tangent planes at the sums of rows ``which``: Re(ū·Σ cᵢxᵢ) ≤ U with u the
    sum's direction (see `planes`)."""
    z = sums(ph, x)[which]
    return planes(ph, which, z / np.abs(z))


def planes(
    ph: PhasorRows, rows: np.ndarray, directions: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Re(ū·Σ cᵢxᵢ) ≤ U for each phasor row in ``rows`` and unit phasor u in
    ``directions``. Returns (upper bounds, row starts, x columns, values), rows
    in compressed form."""
    by_row = np.argsort(ph.entry_row, kind="stable")
    first = np.searchsorted(ph.entry_row[by_row], np.arange(len(ph.rows) + 1))
    count = first[rows + 1] - first[rows]
    starts = np.cumsum(count) - count
    offset = np.arange(int(count.sum())) - np.repeat(starts, count)
    sel = by_row[np.repeat(first[rows], count) + offset]
    values = (np.conj(np.repeat(directions, count)) * ph.coef[sel]).real
    return ph.bound[rows], starts, ph.entry_col[sel], values


def with_cuts(lp: PreparedLP, x: np.ndarray, which: np.ndarray) -> PreparedLP:
    """``lp`` with the tangent planes of `cut_rows` as rows after its own (for a
    backend that re-solves from scratch, such as PuLP's)."""
    upper, starts, cols, values = cut_rows(lp.phasor, x, which) if lp.phasor else (None,) * 4
    assert upper is not None and starts is not None and cols is not None and values is not None
    counts = np.diff(np.append(starts, len(cols)))
    new_rows = lp.n_row + np.repeat(np.arange(len(upper)), counts)
    rows, old_cols, old_values = lp.coo()
    all_rows = np.concatenate([rows, new_rows])
    all_cols = np.concatenate([old_cols, cols])
    order = np.argsort(all_cols, kind="stable")
    a_start = np.zeros(lp.n_col + 1, dtype=np.int64)
    np.cumsum(np.bincount(all_cols, minlength=lp.n_col), out=a_start[1:])
    return dataclasses.replace(
        lp,
        row_lower=np.concatenate([lp.row_lower, np.full(len(upper), -np.inf)]),
        row_upper=np.concatenate([lp.row_upper, upper]),
        a_start=a_start,
        a_index=all_rows[order].astype(np.int32),
        a_value=np.concatenate([old_values, values])[order],
    )


def scale_inside(lp: PreparedLP, x: np.ndarray) -> np.ndarray:
    """``x`` with each period's currents scaled so that every phasor sum is in
    its disc (every limit is homogeneous in the currents, so scaling a period
    down keeps all its other limits too)."""
    ph = lp.phasor
    if ph is None or lp.n_x == 0:
        return x
    mag = np.abs(sums(ph, x))
    ratio = np.where(mag > ph.bound, ph.bound / np.maximum(mag, 1e-12), 1.0)
    period = lp.limit_row_period[ph.rows]
    factor = np.ones(lp.n_periods)
    np.minimum.at(factor, period, ratio)
    return x * factor[lp.x_period]


def tangent(lp: PreparedLP, x: np.ndarray) -> PreparedLP:
    """``lp`` with each phasor row turned to the tangent of its disc at the sum
    under ``x``: the one linear limit the dispatch then fills."""
    ph = lp.phasor
    if ph is None:
        return lp
    z = sums(ph, x)
    mag = np.abs(z)
    u = np.where(mag > 1e-9, z / np.maximum(mag, 1e-12), ph.direction)
    values = lp.a_value.copy()
    values[ph.entry] = (np.conj(u[ph.entry_row]) * ph.coef).real
    return dataclasses.replace(lp, a_value=values)


def enforce(
    lp: PreparedLP, z: np.ndarray, floor: Callable[[PreparedLP, np.ndarray], np.ndarray]
) -> np.ndarray | None:
    """``z`` within every exact limit: while a sum is out of its disc, the
    current pushing it out most is lowered by what brings it back (then
    ``floor``-ed to a step: the next step down, or 0 below the minimum). None
    if that does not settle in a bounded number of moves (the caller then
    plans with the linear model)."""
    ph = lp.phasor
    if ph is None or lp.n_x == 0:
        return z
    z = z.copy()
    for _ in range(ENFORCE_MOVES):
        total = sums(ph, z)
        excess = np.abs(total) - ph.bound
        r = int(np.argmax(excess))
        if excess[r] <= TOLERANCE_A:
            return z
        mine = np.flatnonzero(ph.entry_row == r)
        push = (np.conj(total[r] / abs(total[r])) * ph.coef[mine]).real
        push[z[ph.entry_col[mine]] <= 0] = 0.0
        k = int(np.argmax(push))
        if push[k] <= 0:
            return None
        c = ph.entry_col[mine[k]]
        lowered = z.copy()
        lowered[c] = max(z[c] - excess[r] / push[k] - TOLERANCE_A, 0.0)
        z[c] = floor(lp, lowered)[c]
    return None


def linear_rows(lp: PreparedLP) -> np.ndarray:
    """Whether each limit row is linear (not a phasor row)."""
    out = np.ones(lp.n_limit_rows, dtype=bool)
    if lp.phasor is not None:
        out[lp.phasor.rows] = False
    return out
