"""The fast re-dispatch under a peak charge: its raisings only hand on what
its lowerings freed and what the plan left in the slot, so the chargers'
offered power in the slot in force stays within the plan's, which the planner
kept under the billing period's peak (`optimizer.peak_dispatch`)."""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np

from gridshare.site.fast_dispatch import Redispatch, SteerableCar
from optimizer import Plan, TimeGrid
from optimizer.site import Site

EPS_KW = 1e-6


def within_planned_kw(
    site: Site,
    plan_of: Callable[[], Plan | None],
    decided: Redispatch,
    cars: Mapping[str, SteerableCar],
    grid: TimeGrid,
) -> Redispatch:
    """``decided`` with the raisings, in their order, that keep the steerable
    cars' offered kW in slot 0 within the plan's (none if the plan is of
    another grid: the full re-plan follows)."""
    plan = plan_of()
    if not decided.raisings:
        return decided
    if plan is None or plan.grid != grid:
        return Redispatch(dict(decided.lowerings), {})
    kw = {cid: site.connectors[cid].kw_per_amp() for cid in cars}
    now = {cid: float(decided.lowerings.get(cid, car.profile)[0]) for cid, car in cars.items()}
    total = sum(now[cid] * kw[cid] for cid in cars)
    cap = sum(plan.now_a(cid) * kw[cid] for cid in cars)
    kept: dict[str, np.ndarray] = {}
    for cid, profile in decided.raisings.items():
        add = (float(profile[0]) - now.get(cid, 0.0)) * kw.get(cid, 0.0)
        if total + add <= cap + EPS_KW:
            kept[cid] = profile
            total += add
    return Redispatch(dict(decided.lowerings), kept)
