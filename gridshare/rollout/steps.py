"""The plan of a rollout: which changes go out first (lowerings), which once
those are answered (raisings), which are too small to send; and whether a
raising fits next to the worst case of everything else. Pure."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from gridshare.rollout.load import LoadModel
from gridshare.rollout.schedule import EPS
from optimizer.problem import TimeGrid


@dataclass(frozen=True)
class Hysteresis:
    min_change_a: float = 1.0
    """A change smaller than this (in every slot) is not sent, if keeping the
    old limit is within capacity."""
    near_slots: int | None = 2
    """Only changes in the first slots count as meaningful; later slots follow
    when they come near (each slot boundary re-plans). A change further out
    that keeping the old limit would not fit is sent all the same. None: every
    slot counts."""


@dataclass(frozen=True)
class RolloutSteps:
    lowerings: dict[str, np.ndarray]
    """Connector → schedule on the grid to send first (never above the worst case)."""
    raisings: dict[str, np.ndarray]
    """Connector → the plan's schedule, to send once the lowerings are answered."""
    unchanged: tuple[str, ...]


def plan_rollout(
    grid: TimeGrid,
    worst: Mapping[str, np.ndarray],
    targets: Mapping[str, np.ndarray],
    model: LoadModel,
    cap: np.ndarray,
    hysteresis: Hysteresis = Hysteresis(),
    force: frozenset[str] = frozenset(),
    current: Mapping[str, np.ndarray] | None = None,
) -> RolloutSteps:
    """Split the changes from ``worst`` (what may be in force) to ``targets``.

    ``worst`` covers every active connector; ``targets`` the ones the plan
    controls (per-slot A on ``grid``). ``cap`` is ``model.capacity(...)``.
    ``current``: what the targets' profiles allow now, where that differs from
    ``worst`` (a fallback limit counted on top does not change with them).
    """
    current = worst if current is None else current
    if not targets:
        return RolloutSteps({}, {}, ())
    ids = list(targets)
    zeros = np.zeros(grid.slots)
    new_m = np.round(np.stack([np.asarray(targets[c], dtype=float) for c in ids]), 1)
    old_m = np.stack([np.asarray(current.get(c, zeros), dtype=float) for c in ids])
    diff = new_m - old_m
    near = slice(0, hysteresis.near_slots)
    zero_cross = np.any((old_m[:, near] > EPS) != (new_m[:, near] > EPS), axis=1)
    big = np.max(np.abs(diff[:, near]), axis=1, initial=0.0) >= hysteresis.min_change_a - EPS
    forced = np.array([c in force for c in ids])
    send = zero_cross | big | forced
    low_m = np.minimum(old_m, new_m)
    goes_down = np.any(low_m < old_m - EPS, axis=1)
    goes_up = np.any(new_m > low_m + EPS, axis=1)
    down = np.any(diff < -EPS, axis=1)
    unchanged = [ids[i] for i in np.flatnonzero(~send)]
    small_lowerings = [ids[i] for i in np.flatnonzero(~send & down)]
    lowerings = {ids[i]: low_m[i] for i in np.flatnonzero(send & goes_down)}
    up = send & (goes_up | (forced & ~goes_down))
    raisings = {ids[i]: new_m[i] for i in np.flatnonzero(up)}
    if small_lowerings:
        # keeping a small lowering unsent must still fit once the plan is in force
        final = dict(worst)
        kept = set(unchanged)
        final.update({cid: v for cid, v in targets.items() if cid not in kept})
        load = model.load(final, grid.slots)
        over = np.flatnonzero(np.any(load > cap + 1e-6, axis=1))
        if len(over):
            cols = np.array([model.column[cid] for cid in small_lowerings], dtype=np.intp)
            loads_over = np.any(model.matrix[np.ix_(over, cols)] != 0.0, axis=0)
            for k in np.flatnonzero(loads_over):
                cid = small_lowerings[k]
                new = np.round(np.asarray(targets[cid], dtype=float), 1)
                lowerings[cid] = np.minimum(current.get(cid, zeros), new)
                unchanged.remove(cid)
    return RolloutSteps(lowerings, raisings, tuple(unchanged))


def raise_fits(
    cid: str,
    new: np.ndarray,
    worst: Mapping[str, np.ndarray],
    model: LoadModel,
    cap: np.ndarray,
    load: np.ndarray,
) -> bool:
    """Would raising ``cid`` to ``new`` (on top of ``load``, the worst case of all)
    keep every family it loads within capacity in every slot where it rises?"""
    old = worst.get(cid)
    delta = new - old if old is not None else new
    delta = np.maximum(delta, 0.0)
    for f, coef in model.members.get(cid, ()):
        after = load[f] + coef * delta
        rising = delta > EPS
        if np.any(after[rising] > cap[f][rising] + 1e-6 * max(1.0, float(np.max(cap[f])))):
            return False
    return True
