"""The fast re-dispatch of the slot in force, within the last plan's envelope.

When a meter value shows that a car takes less (or more) than it is offered,
the full re-plan takes a solve; this hands the freed current to the other cars
at once, and the full re-plan follows behind it.

    cars' profiles in force ──► lowerings: a car offered more than it takes is
                                lowered to what it takes (never under its
                                minimum current), from the slot in force on
                             ──► room left on every limit family in that slot
                             ──► raisings: cars that take what they are offered
                                raised, one at a time, each as far as every
                                family it loads, its own maximum and the
                                hysteresis step allow

It only ever lowers a profile, or raises the slot in force of a car already
charging (at or above its minimum current) to at most its maximum, so the
minimum-current rule holds; and each raising is counted against the worst
case of every connector after the lowerings, so the limits in force stay
within every family's capacity (group limits per line and in kW, the DSO's
and the operator's included). The rollout checks each raising again against
what is in force once the lowerings are answered. Pure: no clock, no I/O.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from gridshare.rollout import EPS, LoadModel

STEP_A = 0.1
"""The resolution of an OCPP limit: values are floored (raisings) or ceiled
(lowerings, to what the car takes) to it."""


@dataclass(frozen=True)
class SteerableCar:
    """A car the fast re-dispatch may move: its profile in force on the grid
    (accepted, nothing in flight) and what it can take."""

    profile: np.ndarray
    top_a: float
    """The most it takes now: the connector's, the cable's, the EV's and the
    learned maximum."""
    floor_a: float
    """Its minimum current (0 A or at least this)."""
    steps: tuple[float, ...] | None = None
    """The pilot steps the station accepts (None: any current)."""
    priority: float = 1.0
    drawing: bool = True
    """It takes about what it is offered (a raise is of use to it)."""


@dataclass(frozen=True)
class Redispatch:
    """Connector → its new profile on the grid: lowerings first, then raisings."""

    lowerings: dict[str, np.ndarray] = field(default_factory=dict)
    raisings: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def targets(self) -> dict[str, np.ndarray]:
        return {**self.lowerings, **self.raisings}


def _floor_step(x: float) -> float:
    return math.floor(x / STEP_A + 1e-6) * STEP_A


def _ceil_step(x: float) -> float:
    return math.ceil(x / STEP_A - 1e-6) * STEP_A


def lowered_to(car: SteerableCar, cur: float) -> float:
    """What a car offered ``cur`` is lowered to (``cur``: no lowering): what it
    takes, never under its minimum current, an allowed step if it has steps."""
    want = max(car.top_a, car.floor_a)
    if car.steps is not None:
        fit = [s for s in car.steps if want - EPS <= s <= cur - EPS and s >= car.floor_a - EPS]
        return min(fit) if fit else cur
    v = _ceil_step(want)
    return v if v < cur - EPS else cur


def raised_to(car: SteerableCar, cur: float, most: float) -> float:
    """The highest current a car offered ``cur`` may be raised to, at most ``most``."""
    most = min(most, car.top_a)
    if car.steps is not None:
        ok = [s for s in car.steps if cur + EPS < s <= most + EPS]
        return max(ok) if ok else cur
    return max(cur, _floor_step(most))


def redispatch_slot(
    slot: int,
    worst: Mapping[str, np.ndarray],
    reserve: Mapping[str, float],
    cars: Mapping[str, SteerableCar],
    model: LoadModel,
    cap: np.ndarray,
    min_change_a: float = 1.0,
) -> Redispatch:
    """Re-dispatch slot ``slot`` of the grid within every limit.

    ``worst``: what every connector counted may draw in each slot (the book's
    worst case); ``reserve``: the part of a steerable car's worst case that does
    not follow its profile (its fallback limit, counted as the transaction may
    end; missing: none), needed for the cars offered more than their ``top_a``;
    ``cap``: (families, slots) capacity of ``model``'s families.
    """
    out = Redispatch()
    if not cars:
        return out
    after = dict(worst)
    for cid, car in cars.items():
        cur = float(car.profile[slot])
        v = lowered_to(car, cur) if cur > car.top_a + EPS else cur
        if v < cur - EPS:
            new = np.array(car.profile, dtype=float)
            new[slot:] = np.minimum(new[slot:], v)
            out.lowerings[cid] = new
            old = worst.get(cid, new)
            after[cid] = np.minimum(np.maximum(new, reserve.get(cid, 0.0)), old)
    room = cap[:, slot] - load_at(model, after, slot)
    _raise(slot, after, cars, out, model, room, min_change_a)
    return out


def load_at(model: LoadModel, schedules: Mapping[str, np.ndarray], slot: int) -> np.ndarray:
    """(families,): the sum of ``schedules`` in slot ``slot`` per family."""
    values = np.zeros(len(model.column))
    column = model.column
    for cid, w in schedules.items():
        values[column[cid]] = w[slot]
    fam, col, coef = model.entries
    return np.bincount(fam, weights=coef * values[col], minlength=len(model.keys))


def _raise(
    slot: int,
    after: Mapping[str, np.ndarray],
    cars: Mapping[str, SteerableCar],
    out: Redispatch,
    model: LoadModel,
    room: np.ndarray,
    min_change_a: float,
) -> None:
    """Raise cars one at a time, the least offered (highest priority) first, each
    as far as it can go; stop when no raise of ``min_change_a`` fits."""
    ids = [
        cid
        for cid, car in cars.items()
        if cid not in out.lowerings
        and car.drawing
        and car.profile[slot] > EPS  # a paused car stays paused (the plan chose so)
        and car.profile[slot] >= car.floor_a - EPS
        and car.top_a - car.profile[slot] >= min_change_a - EPS
    ]
    if not ids:
        return
    cur = np.array([float(cars[c].profile[slot]) for c in ids])
    top = np.array([cars[c].top_a for c in ids])
    # what the worst case already counts above the profile (a fallback reserve) is free
    free = np.array([float(after[c][slot]) for c in ids]) - cur
    rank = np.lexsort((cur, np.array([-cars[c].priority for c in ids])))
    order = np.empty(len(ids), dtype=np.intp)
    order[rank] = np.arange(len(ids))
    fam, col, coef = model.entries
    pos = np.full(len(model.column), -1, dtype=np.intp)
    pos[[model.column[c] for c in ids]] = np.arange(len(ids))
    sel = pos[col] >= 0
    e_f, e_c, e_v = fam[sel], pos[col[sel]], coef[sel]
    done = np.zeros(len(ids), dtype=bool)
    stepped = np.array([cars[c].steps is not None for c in ids])
    for _ in range(len(ids)):
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = np.where(e_v > EPS, room[e_f] / e_v, np.inf)
        most = np.full(len(ids), np.inf)
        np.minimum.at(most, e_c, ratio)
        most = np.minimum(top, cur + free + np.maximum(most, 0.0))
        new = np.maximum(cur, np.floor(most / STEP_A + 1e-6) * STEP_A)
        for j in np.flatnonzero(stepped & ~done):
            new[j] = raised_to(cars[ids[j]], float(cur[j]), float(most[j]))
        gain = np.where(done, 0.0, new - cur)
        ok = np.flatnonzero(gain >= min_change_a - EPS)
        if not len(ok):
            return
        k = int(ok[np.argmin(order[ok])])
        done[k] = True
        used = max(0.0, float(new[k] - cur[k] - free[k]))
        touch = e_c == k
        room[e_f[touch]] -= e_v[touch] * used
        profile = np.array(cars[ids[k]].profile, dtype=float)
        profile[slot] = float(new[k])
        out.raisings[ids[k]] = profile
