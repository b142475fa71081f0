"""The solar charging modes as limit families of the planner.

A session in ``solar`` mode draws only the PV surplus of its connection (the
generation beyond the building's own load, `Capacity.surplus_a`); one in
``min+solar`` mode its connector's minimum always and the surplus above. Each is
a limit family on a pseudo-group (kW per A as coefficients, a capacity per
slot), so that the LP's rows, the minimum-current rule of the dispatch, the
re-check of the dispatched slot and the fallback all hold it like any limit:

* ``(G, "solar")``: the solar sessions under G together ≤ G's surplus;
* ``(G, "min+solar")``: solar and min+solar sessions under G together ≤ the
  surplus + the minimum of every min+solar session plugged in during the slot;
* ``(G, "min+solar SESSION")``: one min+solar session ≤ its minimum + the surplus
  (so that a car that needs nothing more leaves its minimum to no one).

G is the highest group above the connector whose surplus is known (the
connection: what it exports is what is spare); with none known, the surplus is
0 and a solar session pauses (0 A: below its minimum current it cannot charge).
The surplus is in kW at the site's voltage, summed over the lines (what a meter
that nets the lines bills).

The shared ``min+solar`` family would let one car take another's minimum; the
planning term `minimum_term` (in `optimizer.prepare.EXTRA_TERMS`) values each
min+solar car's minimum, so that among plans that deliver as much the LP keeps
every such car at it. It caps nothing: the caps are the families above.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np

from optimizer.families import FamilyKey
from optimizer.modes import ChargeMode
from optimizer.problem import PlanningProblem, SessionDemand
from optimizer.rows import BaseLayout, ExtraBlock
from optimizer.site import ConnectorInfo, Site

SOLAR = "solar"
MIN_SOLAR = "min+solar"


def surplus_kw(problem: PlanningProblem) -> dict[str, np.ndarray]:
    """Group → per-slot PV surplus (kW) of the groups whose surplus is known."""
    volts = problem.site.site.voltage_v
    return {g: np.asarray(a, float) * volts / 1000.0 for g, a in problem.capacity.surplus_a.items()}


def home_group(site: Site, info: ConnectorInfo, known: Mapping[str, object]) -> str:
    """The group whose surplus a connector's solar session draws: the highest
    one above it with a known surplus, else the root."""
    for gid in reversed(info.ancestors):
        if gid in known:
            return gid
    return info.ancestors[-1] if info.ancestors else site.groups[0].id


def minimum_a(demand: SessionDemand, info: ConnectorInfo) -> float:
    """The least non-zero current the session may be given (as the dispatch reads it)."""
    c = info.connector
    lo = max(c.min_current_a, demand.ev_min_current_a or 0.0)
    if c.allowed_currents_a is not None:
        above = [a for a in c.allowed_currents_a if a >= max(lo, 1e-9)]
        lo = min(above) if above else math.inf
    return lo


def _present(problem: PlanningProblem, demand: SessionDemand) -> np.ndarray:
    """Per slot of the grid: whether the session is plugged in during it."""
    grid = problem.grid
    starts = np.array([t.timestamp() for t in grid.starts()])
    step = grid.slot_minutes * 60.0
    arrival = max(demand.arrival, problem.now).timestamp()
    return (starts + step > arrival) & (starts < demand.departure.timestamp())


def mode_families(problem: PlanningProblem) -> list[tuple[FamilyKey, np.ndarray]]:
    """(family, per-slot capacity in kW) of the solar modes' pseudo-groups, for
    the groups that have sessions in those modes (none: no family)."""
    site = problem.site
    known = surplus_kw(problem)
    zero = np.zeros(problem.grid.slots)
    solar: dict[str, bool] = {}
    mins: dict[str, np.ndarray] = {}
    own: list[tuple[FamilyKey, np.ndarray]] = []
    for d in problem.sessions:
        if d.charge_mode is ChargeMode.FAST:
            continue
        info = site.connectors[d.connector_id]
        gid = home_group(site, info, known)
        surplus = known.get(gid, zero)
        solar.setdefault(gid, False)
        if d.charge_mode is ChargeMode.SOLAR:
            solar[gid] = True
            continue
        min_kw = minimum_a(d, info) * info.kw_per_amp(d.lines or info.lines)
        if not math.isfinite(min_kw):
            min_kw = 0.0
        mins[gid] = mins.get(gid, zero) + min_kw * _present(problem, d)
        own.append(((gid, f"{MIN_SOLAR} {d.session_id}"), surplus + min_kw))
    out: list[tuple[FamilyKey, np.ndarray]] = []
    for gid, has_solar in solar.items():
        surplus = known.get(gid, zero)
        if has_solar:
            out.append(((gid, SOLAR), surplus))
        if gid in mins:
            out.append(((gid, MIN_SOLAR), surplus + mins[gid]))
    return out + own


def session_families(
    site: Site,
    demand: SessionDemand,
    info: ConnectorInfo,
    kw_per_a: float,
    fam_index: Mapping[FamilyKey, int],
    known: Mapping[str, object],
) -> tuple[tuple[int, float], ...]:
    """(family index, kW per A) of the solar modes' families the session loads."""
    if demand.charge_mode is ChargeMode.FAST:
        return ()
    gid = home_group(site, info, known)
    keys: list[FamilyKey] = [(gid, MIN_SOLAR)]
    if demand.charge_mode is ChargeMode.SOLAR:
        keys.insert(0, (gid, SOLAR))
    else:
        keys.append((gid, f"{MIN_SOLAR} {demand.session_id}"))
    return tuple((fam_index[k], kw_per_a) for k in keys if k in fam_index)


MINIMUM_REWARD = 0.15
"""Value per kWh of a min+solar session's minimum current, in every period it
has a column: above charging early or at a low price (≤ 0.105 per kWh), below
the fairness step of the unmet energy (0.2): among plans that deliver as much,
the LP keeps a min+solar car at its minimum rather than handing that current to
another car (where the shared ``min+solar`` family would allow it)."""


def minimum_term(problem: PlanningProblem, layout: BaseLayout) -> ExtraBlock | None:
    """Columns m ≤ the minimum under the x columns of min+solar sessions (m − x ≤ 0),
    each kWh of m rewarded `MINIMUM_REWARD`. Only a preference: the limits stay
    in the limit rows (the dispatch's)."""
    cols: list[np.ndarray] = []
    upper: list[np.ndarray] = []
    for sc in layout.sessions:
        if sc.demand.charge_mode is not ChargeMode.MIN_SOLAR or not len(sc.periods):
            continue
        lo = min(minimum_a(sc.demand, sc.connector), sc.upper_a)
        cols.append(sc.first_col + np.arange(len(sc.periods)))
        upper.append(np.full(len(sc.periods), lo if math.isfinite(lo) else 0.0))
    if not cols:
        return None
    x = np.concatenate(cols)
    n = len(x)
    m = layout.n_col + np.arange(n)
    row = layout.n_row + np.arange(n)
    return ExtraBlock(
        name="min+solar minimum",
        col_lower=np.zeros(n),
        col_upper=np.concatenate(upper),
        col_cost=-MINIMUM_REWARD * layout.x_kwh[x],
        row_lower=np.full(n, -np.inf),
        row_upper=np.zeros(n),
        entries=(np.concatenate([row, row]), np.concatenate([m, x]), np.repeat([1.0, -1.0], n)),
    )
