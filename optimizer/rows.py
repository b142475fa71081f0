"""The row blocks of the planning LP that do not depend on its objective:
limit rows, battery-tail rows, and the column-wise assembly of the matrix
(`optimizer.prepare` lays out the columns and calls these)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from optimizer.problem import SessionDemand
from optimizer.site import ConnectorInfo, Line


@dataclass(frozen=True)
class SessionCols:
    """What the LP knows of one session."""

    demand: SessionDemand
    connector: ConnectorInfo
    lines: tuple[Line, ...]
    kw_per_a: float
    upper_a: float
    first_col: int
    periods: np.ndarray
    """Periods the session has a column in (increasing)."""
    kwh_per_a: np.ndarray
    """Energy per ampere in each of those periods (overlap-weighted)."""
    window: tuple[float, float]
    """Where the session can charge, in fractional slot positions of the grid."""
    families: tuple[tuple[int, float], ...]
    """(family index, coefficient) of every limit family the session loads."""


@dataclass(frozen=True)
class Family:
    group_id: str
    quantity: str  # "L1" | "L2" | "L3" | "kW" | "weighted"
    capacity: np.ndarray
    """Per-period upper bound of the family's rows (fixed loads already removed)."""


@dataclass(frozen=True)
class LimitRows:
    row: np.ndarray
    col: np.ndarray
    val: np.ndarray
    """Matrix entries (row, x column, coefficient)."""
    family: np.ndarray
    period: np.ndarray
    """Family and period of every limit row."""
    upper: np.ndarray


def limit_rows(
    sessions: list[SessionCols],
    fams: list[Family],
    x_session: np.ndarray,
    x_period: np.ndarray,
    n_periods: int,
) -> LimitRows:
    """Limit rows: one per (family, period) that has members and a finite bound."""
    P = n_periods
    rows_f: list[np.ndarray] = []
    cols_f: list[np.ndarray] = []
    vals_f: list[np.ndarray] = []
    # sessions that load the same families, in order of their first session
    group_of: dict[tuple[tuple[int, float], ...], int] = {}
    session_group = np.full(len(sessions), -1, dtype=np.int64)
    for i, sc in enumerate(sessions):
        if len(sc.periods) and sc.families:
            session_group[i] = group_of.setdefault(sc.families, len(group_of))
    x_group = session_group[x_session]
    for fam_tuple, g in group_of.items():
        cols = np.flatnonzero(x_group == g)
        fam = np.array([f for f, _ in fam_tuple], dtype=np.int64)
        coef = np.array([c for _, c in fam_tuple])
        rows_f.append((fam[:, None] * P + x_period[cols][None, :]).ravel())
        cols_f.append(np.broadcast_to(cols, (len(fam), len(cols))).ravel())
        vals_f.append(np.repeat(coef, len(cols)))
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
    # rows in (family, period) order: a mark per possible row rather than a sort
    used = np.zeros(len(cap_all), dtype=bool)
    used[lim_key] = True
    used_keys = np.flatnonzero(used)
    lim_row = (np.cumsum(used) - 1)[lim_key]
    lim_upper = cap_all[used_keys]
    return LimitRows(lim_row, lim_col, lim_val, used_keys // P, used_keys % P, lim_upper)


def csc(
    blocks: list[tuple[np.ndarray, np.ndarray, np.ndarray]], n_col: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(column starts, row indices, values) of the matrix made of ``blocks`` of
    (rows, columns, values), in column-wise order."""
    rows = np.concatenate([b[0] for b in blocks])
    cols = np.concatenate([b[1] for b in blocks])
    vals = np.concatenate([b[2] for b in blocks])
    order = np.argsort(cols, kind="stable")  # column-wise; rows need no order within
    rows, cols, vals = rows[order], cols[order], vals[order]
    a_start = np.zeros(n_col + 1, dtype=np.int64)
    np.cumsum(np.bincount(cols, minlength=n_col), out=a_start[1:])
    return a_start, rows, vals


def tail_rows(
    sessions: list[SessionCols],
    need: np.ndarray,
    first: np.ndarray,
    x_session: np.ndarray,
    x_kwh: np.ndarray,
    x_upper: np.ndarray,
    first_row: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Battery-tail rows of the sessions with a ``taper_kwh``:

        (taper / a) · x[s,j] + Σ_{τ<j} kWh[s,τ] · x[s,τ] ≤ need[s]

    i.e. x[s,j] ≤ a · (need − delivered before period j) / taper, with ``a`` the
    connector's maximum. A row is written only where it can bind: where the
    bound is below the column's maximum even if every earlier period ran at its
    maximum. Checked at the start of each period (a relaxation within a coarse
    period, which is re-planned on the fine grid before it is dispatched).

    Each row sums every earlier period of its session (a triangle). A running
    sum column per period (D[j] = D[j−1] + kWh·x[j−1], two sparse rows each)
    solved slower with HiGHS on the JPL sessions. ``need`` and ``first`` (first x
    column) are per session.
    Returns (x column each row bounds, rows, cols, values, row upper bounds)."""
    n_x = len(x_session)
    taper = np.array([s.demand.taper_kwh or 0.0 for s in sessions])
    empty = np.zeros(0, np.int64)
    if n_x == 0 or not np.any(taper > 0):
        return empty, empty, empty, np.zeros(0), np.zeros(0)
    a = np.array([s.connector.max_current_a for s in sessions])
    s = x_session
    at_max = x_kwh * x_upper
    before = np.cumsum(at_max) - at_max  # exclusive running sum over all columns...
    before -= before[first[s]]  # ...restarted at each session's first column
    binds = (taper[s] > 0) & (a[s] * (need[s] - before) < x_upper * taper[s])
    tail_x = np.flatnonzero(binds)
    terms = tail_x - first[s[tail_x]] + 1  # the row's own column and every earlier one
    rows = np.repeat(first_row + np.arange(len(tail_x)), terms)
    offset = np.arange(int(terms.sum())) - np.repeat(np.cumsum(terms) - terms, terms)
    cols = np.repeat(first[s[tail_x]], terms) + offset
    vals = x_kwh[cols].copy()
    own = np.cumsum(terms) - 1
    vals[own] = taper[s[tail_x]] / a[s[tail_x]]
    return tail_x, rows, cols, vals, need[s[tail_x]]


@dataclass(frozen=True)
class BaseLayout:
    """What a planning term sees of the LP before its own columns: the sessions,
    the x columns (session, period, kWh per A), the limit rows (family and
    period of each), where the energy rows start, and the columns and rows so far."""

    sessions: tuple[SessionCols, ...]
    families: tuple[Family, ...]
    x_session: np.ndarray
    x_period: np.ndarray
    x_kwh: np.ndarray
    period_first: np.ndarray
    period_len: np.ndarray
    n_limit_rows: int
    limit_row_family: np.ndarray
    limit_row_period: np.ndarray
    energy_row0: int
    n_col: int
    n_row: int


@dataclass(frozen=True)
class ExtraBlock:
    """Columns, and rows, that one planning term adds after the base LP's (a
    discharge current, a peak above the period's peak so far, …). Its entries
    are (row, column, value) with absolute indices: they may sit in base rows
    (a discharge column in the limit and energy rows) and in its own rows,
    numbered from the layout's ``n_row``; its own columns from ``n_col``."""

    name: str
    col_lower: np.ndarray
    col_upper: np.ndarray
    col_cost: np.ndarray
    row_lower: np.ndarray
    row_upper: np.ndarray
    entries: tuple[np.ndarray, np.ndarray, np.ndarray]

    @property
    def n_col(self) -> int:
        return len(self.col_cost)

    @property
    def n_row(self) -> int:
        return len(self.row_lower)
