"""What a site pays and emits, as terms of the planning LP (`CostSignal`).

* Energy price and carbon: a cost per kWh of every x column
  (`per_kwh`, read by `optimizer.prepare._x_cost`).
* The peak-demand charge (`peak_term`, one of `optimizer.prepare.EXTRA_TERMS`):
  a column ``rise`` (kW above the billing period's peak so far, ≥ 0) and one row
  per peak interval (or per period, where a period holds whole intervals):

      Σ coef·x − rise ≤ peak so far − the rest of the connection's average kW

  with ``coef`` the column's average kW over the interval (its energy there
  over the interval's hours, at most its full kW: where a period spans several
  intervals, the row holds for the worst of them). The rest of the connection
  is the building's forecast non-EV load on the root group, the stations that
  draw a fixed load whatever we plan, less the generation. Cost: the peak
  price × rise, so a peak is paid once: every row shares the one ``rise``, and
  rows whose rest alone sets a new peak raise its lower bound (that rise is
  paid anyway, and using it is free). Where a new billing period starts inside
  the grid, its rows have a ``rise`` of their own from 0.
* A soft target (OSCP OPTIMUM, `optimum_term`): the chargers' kW pulled
  towards it per period by a small cost per kWh of deviation.

Drivers first: without ``value_of_unmet_kwh``, money is scaled so that the
dearest kWh of the horizon (energy price and carbon) costs `MONEY_WEIGHT`,
below one fairness step of the unmet-energy penalty
(`optimizer.prepare.FAIRNESS_STEP`), and so that a kW of peak costs at most
`PEAK_SHARE` of an unmet kWh per kWh it lets through in one interval: the
terms choose among the plans that deliver the same energy. (A peak charge
can outweigh the evenness of a shortfall between cars: among plans short by
the same energy, the one with the lower peak.) With ``value_of_unmet_kwh``,
money is in the unmet tier's units: one unmet kWh costs that much money (×
priority), so a car may be left short where charging it costs more (a peak).

Drivers leave earlier than they state (JPL 2019: a third of the cars that
stated a departure left before it, a tenth before 61 % of the stay they
stated). The money terms would defer energy towards the stated departure and
lose it online. Hedge (`hedge_per_kwh`): energy planned after a conservative
departure (`CostSignal.hedge_share` of the stated stay before the stated one)
costs more per kWh than any shift of energy can save in money, so the money
terms trade only energy the energy-only plan would also have had by then;
still far below an unmet kWh, so the energy after it is still planned.
"""

from __future__ import annotations

import numpy as np

from optimizer import families as site_families
from optimizer.cost_signal import CostSignal
from optimizer.problem import PlanningProblem
from optimizer.rows import BaseLayout, ExtraBlock

MONEY_WEIGHT = 0.1
"""Objective cost of the dearest kWh of the horizon (energy and carbon),
drivers first: below FAIRNESS_STEP = 0.2, so prices never outweigh a fairer
sharing of unmet energy, and far above the charge-early tie-break."""
PEAK_SHARE = 0.1
"""At most this share of an unmet kWh's cost for the peak a kWh could raise
within one interval (the most a rise can cost per kWh it enables)."""
OPTIMUM_WEIGHT = 0.06
"""Objective cost per kWh of deviation from an OPTIMUM target: above the
charge-early tie-break (at most `optimizer.prepare.EARLY_WEIGHT` = 0.05 a kWh),
below a price difference of more than 60 % of the dearest kWh."""
HEDGE_MIN_MINUTES = 30.0
"""The conservative departure is at least this much before the stated one (or
half the stay, if shorter)."""
HEDGE_CAP = 0.5
"""A kWh after the conservative departure costs at most this share of an unmet
kWh (× priority): it is still worth planning."""
HEDGE_MARGIN = 0.01
"""Above the largest saving per kWh: the charge-early tie-break (≤ 0.005 a kWh
× priority in money mode) included."""
PEAK_BLOCK = "peak"
OPTIMUM_BLOCK = "optimum"


def money_scale(problem: PlanningProblem, unmet_weight: float) -> float:
    """Objective units per unit of money (see the module docstring)."""
    c = problem.costs
    if c is None or not c.priced():
        return 0.0
    if c.value_of_unmet_kwh is not None:
        return unmet_weight / c.value_of_unmet_kwh
    scale = np.inf
    per_kwh = 0.0
    if c.energy_price is not None:
        per_kwh += float(np.max(np.abs(c.energy_price)))
    if c.carbon_kg_per_kwh is not None:
        per_kwh += c.carbon_price_per_kg * max(float(np.max(c.carbon_kg_per_kwh)), 0.0)
    if per_kwh > 0:
        scale = MONEY_WEIGHT / per_kwh
    if c.peak is not None and c.peak.price_per_kw > 0:
        # a kW of rise buys at least an interval's kWh: never near an unmet kWh
        per_kwh_of_rise = c.peak.price_per_kw / (c.peak.interval_minutes / 60.0)
        scale = min(scale, PEAK_SHARE * unmet_weight / per_kwh_of_rise)
    return float(scale) if np.isfinite(scale) else 0.0


def per_kwh(problem: PlanningProblem, first: np.ndarray, length: np.ndarray) -> np.ndarray:
    """Money per kWh of every period (energy price + carbon), unscaled."""
    c = problem.costs
    slots = problem.grid.slots
    total = np.zeros(slots)
    if c is not None and c.energy_price is not None:
        total += c.energy_price
    if c is not None and c.carbon_kg_per_kwh is not None:
        total += c.carbon_price_per_kg * c.carbon_kg_per_kwh
    return np.add.reduceat(total, first) / length


def _largest_saving(problem: PlanningProblem, money: np.ndarray, scale: float) -> float:
    """Objective units that moving one kWh between periods can save at most in
    money terms: the spread of price and carbon, the peak it lets through one
    interval, twice the OPTIMUM deviation."""
    c = problem.costs
    out = float(np.ptp(money)) if len(money) else 0.0
    if c is not None and c.peak is not None and c.peak.price_per_kw > 0:
        out += c.peak.price_per_kw * scale / (c.peak.interval_minutes / 60.0)
    if c is not None and c.optimum_kw is not None:
        out += 2 * OPTIMUM_WEIGHT
    return out


def conservative_departure(problem: PlanningProblem, p0: np.ndarray, p1: np.ndarray) -> np.ndarray:
    """Per session, in fractional slot positions of the grid: the stated
    departure less `CostSignal.hedge_share` of the stated stay (at least
    `HEDGE_MIN_MINUTES` or half a shorter stay). A car still here past it is
    hedged over what is left of its stay by the same share. ``p0``, ``p1``:
    the sessions' windows on the grid (from now, up to the grid's end)."""
    c = problem.costs
    share = c.hedge_share if c is not None else 0.0
    if share <= 0 or not len(p1):
        return p1
    grid = problem.grid
    step_s = grid.slot_minutes * 60.0
    arr = np.array([(d.arrival - grid.start).total_seconds() for d in problem.sessions]) / step_s
    dep = np.array([(d.departure - grid.start).total_seconds() for d in problem.sessions])
    dep = dep / step_s
    stay = dep - arr
    least = np.minimum(HEDGE_MIN_MINUTES / grid.slot_minutes, stay / 2)
    margin = np.maximum(share * stay, least)
    # p1 ends at the grid's end: a car staying past it is hedged on its departure
    return np.maximum(dep - margin, p0 + (1 - share) * (dep - p0))


def hedge_per_kwh(
    problem: PlanningProblem,
    money: np.ndarray,
    scale: float,
    unmet_weight: float,
    windows: tuple[np.ndarray, np.ndarray],
    columns: tuple[np.ndarray, np.ndarray, np.ndarray],
) -> np.ndarray:
    """Extra objective cost per kWh of every x column for the share of it
    planned after its session's conservative departure (module docstring).
    ``money``: scaled money per kWh of every period; ``windows``: (p0, p1) per
    session; ``columns``: (session, first slot, slots) of every x column's period."""
    owner, pf, pl = columns
    p0, p1 = windows
    c = problem.costs
    if c is None or c.hedge_share <= 0 or not len(owner):
        return np.zeros(len(owner))
    cdep = conservative_departure(problem, p0, p1)
    a = np.maximum(pf, p0[owner])
    b = np.minimum(pf + pl, p1[owner])
    after = np.clip(b - np.maximum(a, cdep[owner]), 0.0, None) / np.maximum(b - a, 1e-12)
    prio = np.array([d.priority for d in problem.sessions])[owner]
    weight = 2 * _largest_saving(problem, money, scale) + HEDGE_MARGIN * prio
    return after * np.minimum(weight, HEDGE_CAP * unmet_weight * prio)


def rest_kw(problem: PlanningProblem) -> np.ndarray:
    """Per slot: the connection's import that is not planned here (the
    building's forecast, stations with a fixed load, less generation)."""
    site, slots = problem.site, problem.grid.slots
    root = site.root.id
    out = site_families.non_ev_kw(site, problem.capacity, root, slots).copy()
    for key, amps in problem.fixed_load_a.items():
        if amps > 0:
            out += amps * site.connectors[key].kw_per_amp()
    c = problem.costs
    if c is not None and c.generation_kw is not None:
        out -= c.generation_kw
    return out


def _rows_of_periods(
    problem: PlanningProblem, layout: BaseLayout, n: int
) -> tuple[np.ndarray, list[tuple[int, int, bool]]]:
    """Row of every period, and per row (first slot, slots, whether it is one
    interval made of several periods)."""
    grid = problem.grid
    m = grid.slot_minutes
    epoch_min = grid.epoch_slot() * m
    row_of = np.zeros(len(layout.period_first), dtype=np.int64)
    rows: list[tuple[int, int, bool]] = []
    key_prev: tuple[str, int] | None = None
    for p, (f, ln) in enumerate(
        zip(layout.period_first.tolist(), layout.period_len.tolist(), strict=True)
    ):
        key = ("p", p) if ln * m >= n else ("i", (epoch_min + f * m) // n)
        if key != key_prev:
            rows.append((f, ln, key[0] == "i"))
            key_prev = key
        else:
            f0, l0, iv = rows[-1]
            rows[-1] = (f0, l0 + ln, iv)
        row_of[p] = len(rows) - 1
    return row_of, rows


def _row_rest(
    problem: PlanningProblem, rows: list[tuple[int, int, bool]], rest: np.ndarray, n: int
) -> tuple[np.ndarray, np.ndarray]:
    """Per row: the rest's average kW (the worst interval of a period) and the
    row's hours. The interval in force counts what was metered in it before
    now (``elapsed_kwh``) and the rest from now on."""
    grid = problem.grid
    m = grid.slot_minutes
    peak = problem.costs.peak if problem.costs is not None else None
    elapsed = peak.elapsed_kwh if peak is not None else 0.0
    base = np.zeros(len(rows))
    hours = np.zeros(len(rows))
    lead = (grid.epoch_slot() * m) % n  # minutes of the first interval before the grid
    since = min(max((problem.now - grid.start).total_seconds() / 60.0, 0.0), m)
    for r, (f, ln, interval) in enumerate(rows):
        part = rest[f : f + ln]
        if interval:
            h = (ln * m + (lead if f == 0 else 0)) / 60.0
            kwh = float(part.sum()) * m / 60.0
            if f == 0:  # before now: metered
                kwh += elapsed - float(part[0]) * since / 60.0
            base[r], hours[r] = kwh / h, h
            continue
        per = max(n // m, 1)
        if per > 1 and ln % per == 0:
            part = part.reshape(-1, per).mean(axis=1)
        base[r] = float(part.max())
        if f == 0:  # the first interval: metered until now, the rest after
            left = max(n - since, 0.0)
            base[r] = max(base[r], (elapsed + float(rest[0]) * left / 60.0) / (n / 60.0))
        hours[r] = n / 60.0
    return base, hours


def peak_term(
    problem: PlanningProblem, layout: BaseLayout, unmet_weight: float
) -> ExtraBlock | None:
    """The peak-demand charge (module docstring); ``unmet_weight``: the
    objective's cost of an unmet kWh."""
    c = problem.costs
    if c is None or c.peak is None or c.peak.price_per_kw <= 0 or not len(layout.x_session):
        return None
    pk = c.peak
    n = pk.interval_minutes
    row_of, rows = _rows_of_periods(problem, layout, n)
    base, hours = _row_rest(problem, rows, rest_kw(problem), n)
    kw = np.array([s.kw_per_a for s in layout.sessions])[layout.x_session]
    x_row = row_of[layout.x_period]
    coef = np.minimum(kw, layout.x_kwh / hours[x_row])
    first = np.array([f for f, _, _ in rows])
    new_period = first >= pk.reset_slot if pk.reset_slot is not None else np.zeros(len(rows), bool)
    so_far = np.where(new_period, 0.0, pk.so_far_kw)
    used = np.zeros(len(rows), dtype=bool)
    used[x_row] = True
    # rows without a planned column: the rest alone; a rise they force is paid anyway
    forced = np.maximum(base - so_far, 0.0)
    n_rise = 2 if new_period.any() else 1
    lower = np.zeros(n_rise)
    for k in range(n_rise):
        mine = (new_period == bool(k)) & ~used
        if mine.any():
            lower[k] = float(forced[mine].max())
    keep = np.flatnonzero(used)
    local = np.full(len(rows), -1, dtype=np.int64)
    local[keep] = np.arange(len(keep))
    row0 = layout.n_row
    col0 = layout.n_col
    rise_of_row = col0 + new_period[keep].astype(np.int64)
    entries = (
        np.concatenate([row0 + local[x_row], row0 + np.arange(len(keep))]),
        np.concatenate([np.arange(len(coef)), rise_of_row]),
        np.concatenate([coef, -np.ones(len(keep))]),
    )
    scale = money_scale(problem, unmet_weight)
    return ExtraBlock(
        name=PEAK_BLOCK,
        col_lower=lower,
        col_upper=np.full(n_rise, np.inf),
        col_cost=np.full(n_rise, pk.price_per_kw * scale),
        row_lower=np.full(len(keep), -np.inf),
        row_upper=(so_far - base)[keep],
        entries=entries,
    )


def optimum_term(problem: PlanningProblem, layout: BaseLayout) -> ExtraBlock | None:
    """A soft target for the chargers' kW per period: Σ kW·x − over + under =
    target, over and under ≥ 0 at `OPTIMUM_WEIGHT` per kWh."""
    c = problem.costs
    if c is None or c.optimum_kw is None or not len(layout.x_session):
        return None
    first, length = layout.period_first, layout.period_len
    target = np.fmax.reduceat(c.optimum_kw, first)  # NaN where no slot has a target
    hours = length * problem.grid.slot_minutes / 60.0
    periods = np.flatnonzero(np.isfinite(target) & np.isin(np.arange(len(first)), layout.x_period))
    if not len(periods):
        return None
    local = np.full(len(first), -1, dtype=np.int64)
    local[periods] = np.arange(len(periods))
    x_row = local[layout.x_period]
    on = np.flatnonzero(x_row >= 0)
    kw = (layout.x_kwh / hours[layout.x_period])[on]
    k = len(periods)
    row0, col0 = layout.n_row, layout.n_col
    rows = np.concatenate([row0 + x_row[on], row0 + np.arange(k), row0 + np.arange(k)])
    cols = np.concatenate([on, col0 + np.arange(k), col0 + k + np.arange(k)])
    vals = np.concatenate([kw, -np.ones(k), np.ones(k)])
    cost = OPTIMUM_WEIGHT * np.tile(hours[periods], 2)
    return ExtraBlock(
        name=OPTIMUM_BLOCK,
        col_lower=np.zeros(2 * k),
        col_upper=np.full(2 * k, np.inf),
        col_cost=cost,
        row_lower=target[periods],
        row_upper=target[periods],
        entries=(rows, cols, vals),
    )


__all__ = [
    "CostSignal",
    "conservative_departure",
    "hedge_per_kwh",
    "money_scale",
    "optimum_term",
    "peak_term",
    "per_kwh",
    "rest_kw",
]
