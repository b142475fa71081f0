"""V2X: discharging cars that announced bidirectional power transfer.

A planning term (`optimizer.prepare.EXTRA_TERMS`). For every session with a
`Bidirectional` whose car may be discharged now, one column per x column:

* ``y[s,p] ≥ 0``, the discharge current (A per line), at most the car's
  discharge maximum and the connector's maximum. It enters the session's limit
  rows with the negative of x's coefficient (a discharging car frees room for
  the others on the lines and the kW it loads) and its energy row with −kWh
  per A: the energy by departure is unchanged, so every kWh discharged is
  charged back before the car leaves;
* in the session's battery-tail rows, −kWh per A of the discharge before
  each period (the energy still to go is the need less the net delivered);
* state-of-energy rows, where they can bind: the net energy from now at the
  end of each period, Σ_{τ≤j} kWh·(x − y), stays within [min_kwh, max_kwh]:
  never below the driver's minimum, never above what the battery may hold;
* export rows, one per (line or kW family, period) a discharge column loads:
  Σ coef·x − Σ coef·y ≥ −export. A group's net may go negative only down to its
  export limit: `Capacity.export_a` (the DSO's GENERATION forecast), else the
  site file's ``export_limit_a``, else 0 at the root (nothing fed back beyond
  the connection) and the group's own limit below it (a cable is rated both
  ways). The rows count planned charging currents; a fixed or building load
  is not counted as absorbing a discharge (it may draw less).

Cost: `discharge_weight` per kWh discharged, the tier below unmet energy and
above every tier beneath it (early, prices, evenness, previous plan): a car
is discharged only to lower the unmet energy of others (or, later, for a term
of the same tier such as a peak), never cycled for nothing.

Not discharged (conservative): a car below its driver's minimum
(``min_kwh > 0``: its updated needs re-plan it once above), and a car in a
weighted or phasor group (those rows sum magnitudes or phasors of x only).

Dispatch (`optimizer.v2x_dispatch`): a slot counts a discharge as room for
the others only as far as the station confirmed it for that slot (accepted
in a profile: `Bidirectional.confirmed_a` now, ``confirmed_ahead_a`` later);
a discharge the LP plans beyond that is commanded, and counts once confirmed. So the limits in force
less the discharge confirmed stay within every limit, and a car that fails to
discharge puts its group over by at most what was confirmed, for as long as
the confirmation takes to be withdrawn. Other currents are scaled down into
that room before the minimum-current rule gives back what is left; then the
discharge itself is lowered wherever the currents as dispatched would leave
a group feeding back more than its export limit, or the car below its
driver's minimum (`optimizer.v2x_dispatch.within_rows`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

from optimizer.families import KW, WEIGHTED, SiteFamilies, group_limit_kw
from optimizer.problem import PlanningProblem, SessionDemand
from optimizer.rows import BaseLayout, ExtraBlock, Family, SessionCols, tail_rows

NAME = "v2x"
CYCLE_WEIGHT = 1.0
"""Cost per kWh discharged, before the battery's degradation cost: far below
unmet energy (1000 per kWh), far above charging early or at low prices (≤ 0.1)."""
_EPS = 1e-9


def discharge_weight(demand: SessionDemand) -> float:
    """Objective cost per kWh discharged from ``demand``'s car (what a term
    that discharges for its own gain, a peak or a price, must beat)."""
    cost = demand.v2x.cycle_cost_per_kwh if demand.v2x is not None else 0.0
    return CYCLE_WEIGHT + cost


def export_limit_a(problem: PlanningProblem, group_id: str) -> np.ndarray:
    """Per-slot current a group may feed back per line (see the module doc)."""
    given = problem.capacity.export_a.get(group_id)
    if given is not None:
        return np.asarray(given, dtype=float)
    g = problem.site.group_by_id[group_id]
    if g.export_limit_a is not None:
        value = g.export_limit_a
    elif g.parent is None:
        value = 0.0
    else:
        value = g.limit_a if g.limit_a is not None else np.inf
    return np.full(problem.grid.slots, value)


def _export_kw(problem: PlanningProblem, group_id: str) -> np.ndarray:
    """The kW a group may feed back: its export current on every line, within
    its power limit (rated both ways) below the root."""
    lines_kw = export_limit_a(problem, group_id) * problem.site.site.voltage_v * 3 / 1000.0
    g = problem.site.group_by_id[group_id]
    if g.parent is None or g.export_limit_a is not None:
        return lines_kw
    slots = problem.grid.slots
    return np.minimum(lines_kw, group_limit_kw(problem.site, problem.capacity, group_id, slots))


def discharging(problem: PlanningProblem, sessions: tuple[SessionCols, ...]) -> list[int]:
    """Indices of the sessions that get discharge columns."""
    candidates = [
        i
        for i, s in enumerate(sessions)
        if (v := s.demand.v2x) is not None
        and v.max_discharge_a > 0
        and v.min_kwh <= 0
        and len(s.periods)
    ]
    if not candidates:  # the usual case: nothing more to look at
        return []
    fams = SiteFamilies.of(problem.site)
    out = []
    for i in candidates:
        s = sessions[i]
        if any(s.connector.key in members for _, members in fams.weighted):
            continue  # a weighted limit sums magnitudes: a discharge frees nothing there
        groups = set(s.connector.ancestors)
        if any(key[0] in groups for key in fams.phasor_keys):
            continue  # phasor rows know x only
        out.append(i)
    return out


def _y_upper(s: SessionCols) -> float:
    assert s.demand.v2x is not None
    return min(s.demand.v2x.max_discharge_a, s.connector.max_current_a)


@dataclass
class _Entries:
    rows: list[np.ndarray]
    cols: list[np.ndarray]
    vals: list[np.ndarray]

    def add(self, rows: ArrayLike, cols: ArrayLike, vals: ArrayLike) -> None:
        self.rows.append(np.asarray(rows, np.int64))
        self.cols.append(np.asarray(cols, np.int64))
        self.vals.append(np.asarray(vals, float))

    def arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return np.concatenate(self.rows), np.concatenate(self.cols), np.concatenate(self.vals)


def term(problem: PlanningProblem, layout: BaseLayout) -> ExtraBlock | None:
    """The discharge columns and their rows (see the module doc)."""
    chosen = discharging(problem, layout.sessions)
    if not chosen:
        return None
    P = len(layout.period_first)
    lim_key = layout.limit_row_family * P + layout.limit_row_period
    ent = _Entries([], [], [])
    y_first: dict[int, int] = {}
    uppers, costs = [], []
    col = layout.n_col
    for i in chosen:
        s = layout.sessions[i]
        n = len(s.periods)
        ycols = col + np.arange(n)
        y_first[i] = col
        col += n
        uppers.append(np.full(n, _y_upper(s)))
        costs.append(s.kwh_per_a * discharge_weight(s.demand))
        ent.add(np.full(n, layout.energy_row0 + i), ycols, -s.kwh_per_a)
        for f, coef in s.families:
            keys = f * P + s.periods
            at = np.minimum(np.searchsorted(lim_key, keys), max(len(lim_key) - 1, 0))
            found = lim_key[at] == keys if len(lim_key) else np.zeros(n, bool)
            ent.add(at[found], ycols[found], np.full(int(found.sum()), -coef))
    lower: list[float] = []
    upper: list[float] = []
    _tail_entries(layout, chosen, y_first, ent)
    _energy_rows(layout, chosen, y_first, ent, lower, upper)
    _export_rows(problem, layout, chosen, y_first, ent, lower, upper)
    return ExtraBlock(
        name=NAME,
        col_lower=np.zeros(col - layout.n_col),
        col_upper=np.concatenate(uppers),
        col_cost=np.concatenate(costs),
        row_lower=np.array(lower, dtype=float),
        row_upper=np.array(upper, dtype=float),
        entries=ent.arrays(),
    )


def _tail_entries(
    layout: BaseLayout, chosen: list[int], y_first: dict[int, int], ent: _Entries
) -> None:
    """A discharge before a period counts in its battery-tail row (the energy
    still to go is the need less the net delivered): −kWh·y before the period."""
    sessions = layout.sessions
    need = np.array([s.demand.energy_kwh for s in sessions])
    first = np.array([s.first_col for s in sessions], dtype=np.int64)
    x_upper = np.array([s.upper_a for s in sessions])[layout.x_session]
    tail_x = tail_rows(list(sessions), need, first, layout.x_session, layout.x_kwh, x_upper, 0)[0]
    first_row = layout.n_row - len(tail_x)  # the tail rows end the base rows
    owner = layout.x_session[tail_x]
    for i in chosen:
        s = sessions[i]
        for row in np.flatnonzero(owner == i):
            before = int(tail_x[row]) - s.first_col  # periods of its own before this one
            if before > 0:
                k = np.arange(before)
                ent.add(np.full(before, first_row + row), y_first[i] + k, -s.kwh_per_a[k])


def _energy_rows(
    layout: BaseLayout,
    chosen: list[int],
    y_first: dict[int, int],
    ent: _Entries,
    lower: list[float],
    upper: list[float],
) -> None:
    """min_kwh ≤ Σ_{τ≤j} kWh·(x − y) ≤ max_kwh at the end of every period j but
    the last (there the energy row holds it), where either side can bind."""
    for i in chosen:
        s = layout.sessions[i]
        v = s.demand.v2x
        assert v is not None
        need = s.demand.energy_kwh
        ceiling = max(v.max_kwh if v.max_kwh is not None else need, need)
        most_out = np.cumsum(s.kwh_per_a * _y_upper(s))
        most_in = np.cumsum(s.kwh_per_a * s.upper_a)
        for j in range(len(s.periods) - 1):
            low_binds = most_out[j] > -v.min_kwh + _EPS
            high_binds = most_in[j] > ceiling + _EPS
            if not (low_binds or high_binds):
                continue
            row = layout.n_row + len(lower)
            k = np.arange(j + 1)
            ent.add(np.full(j + 1, row), s.first_col + k, s.kwh_per_a[k])
            ent.add(np.full(j + 1, row), y_first[i] + k, -s.kwh_per_a[k])
            lower.append(v.min_kwh if low_binds else -np.inf)
            upper.append(ceiling if high_binds else np.inf)


def _export_rows(
    problem: PlanningProblem,
    layout: BaseLayout,
    chosen: list[int],
    y_first: dict[int, int],
    ent: _Entries,
    lower: list[float],
    upper: list[float],
) -> None:
    """Σ coef·x − Σ coef·y ≥ −export, per family and period a discharge loads."""
    fams: tuple[Family, ...] = layout.families
    # (family, period) → discharge entries
    y_at: dict[tuple[int, int], list[tuple[int, float]]] = {}
    for i in chosen:
        s = layout.sessions[i]
        for f, coef in s.families:
            if fams[f].quantity == WEIGHTED:
                continue
            for k, p in enumerate(s.periods.tolist()):
                y_at.setdefault((f, p), []).append((y_first[i] + k, coef))
    if not y_at:
        return
    wanted = {f for f, _ in y_at}
    # every session's coefficient in each wanted family, then its x columns at once
    # (a site of thousands of connectors: no loop over every column)
    by_family = {f: np.zeros(len(layout.sessions)) for f in wanted}
    for i, s in enumerate(layout.sessions):
        for f, c in s.families:
            if f in wanted:
                by_family[f][i] = c
    x_at: dict[tuple[int, int], tuple[np.ndarray, np.ndarray]] = {}
    for f in wanted:
        on = by_family[f][layout.x_session]
        cols = np.flatnonzero(on != 0)
        for p in {p for g, p in y_at if g == f}:
            at = cols[layout.x_period[cols] == p]
            x_at[(f, p)] = (at, on[at])
    bound: dict[int, np.ndarray] = {}
    for f in wanted:
        fam = fams[f]
        series = (
            _export_kw(problem, fam.group_id)
            if fam.quantity == KW
            else export_limit_a(problem, fam.group_id)
        )
        bound[f] = np.minimum.reduceat(series, layout.period_first)
    for (f, p), ys in sorted(y_at.items()):
        limit = float(bound[f][p])
        if not np.isfinite(limit):
            continue
        row = layout.n_row + len(lower)
        xs, xv = x_at[(f, p)]
        ent.add(np.full(len(xs), row), xs, xv)
        ent.add(np.full(len(ys), row), [c for c, _ in ys], [-v for _, v in ys])
        lower.append(-limit)
        upper.append(np.inf)
