"""The safety fast path: a reading that shows a group over its limit lowers
the chargers under it at once, without waiting for a re-plan.

On every family (group line or power) where the limits in force at the
stations now (running transactions' profiles; idle connectors' fallbacks,
when counted) exceed what is left for the chargers next to the non-EV load,
the running transactions on that family are scaled down by the same factor
so that the sum fits (the idle connectors' fallbacks already leave the
building's worst case free). A share below a connector's
minimum current becomes 0. The lowerings go out through the one rollout
runner (lowerings only: nothing here raises), then the planner re-plans.

`lowered_limits` is the plain computation; `enforce` carries it out on a
running `Controller` through its public parts.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np

from gridshare.controller import Controller
from gridshare.replan_loop import ProfileLog
from gridshare.rollout import Hysteresis, LimitBook, run_rollout
from gridshare.rollout.load import LoadModel
from optimizer.families import FamilyKey
from optimizer.problem import TimeGrid
from optimizer.site import Site

log = logging.getLogger(__name__)

EPS = 1e-6
STEP_A = 0.1
"""The resolution of an OCPP limit: shares are floored to it (never above)."""


@dataclass(frozen=True)
class Lowering:
    """What the fast path found and will send."""

    over: dict[FamilyKey, tuple[float, float]] = field(default_factory=dict)
    """Family → (may be in force now, left for the chargers now), A or kW."""
    profiles: dict[str, float] = field(default_factory=dict)
    """Connector with a running transaction → its new limit now (A)."""
    last_sent: float | None = None
    """The controller's monotonic clock when the last lowering was written."""

    def __bool__(self) -> bool:
        """Whether there is something to lower."""
        return bool(self.profiles)


def _floor(a: float) -> float:
    return math.floor(a / STEP_A + 1e-9) * STEP_A


def in_force_now(
    book: LimitBook, grid: TimeGrid, model: LoadModel
) -> tuple[np.ndarray, np.ndarray]:
    """(active, idle): per connector column, the limit in force at the station
    now — a running transaction's profile, an idle connector's fallback (when
    idle connectors are counted)."""
    active = np.zeros(len(model.column))
    idle = np.zeros(len(model.column))
    for cid, col in model.column.items():
        c = book.connectors.get(cid)
        if c is not None and c.active:
            active[col] = book.worst(cid, grid, fallback=False)[0]
        elif book.count_idle:
            idle[col] = book.default_worst(cid)
    return active, idle


def lowered_limits(
    site: Site,
    book: LimitBook,
    grid: TimeGrid,
    model: LoadModel,
    cap: np.ndarray,
    connected: Collection[str] | None = None,
) -> Lowering:
    """The transaction limits that bring every family back within ``cap`` in
    slot 0 (``cap``: `LoadModel.capacity` of the capacity with the non-EV
    load), idle connectors' fallbacks counted as they are. ``connected``: the
    stations that can be told (None: all)."""
    active, idle = in_force_now(book, grid, model)
    load_active = model.matrix @ active
    load = load_active + model.matrix @ idle
    over = np.flatnonzero(load > cap[:, 0] + EPS)
    if over.size == 0:
        return Lowering()
    factor = np.ones(len(model.keys))
    room = np.maximum(cap[over, 0] - (load[over] - load_active[over]), 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        factor[over] = np.where(
            load_active[over] > EPS, np.clip(room / load_active[over], 0.0, 1.0), 1.0
        )
    result = Lowering(over={model.keys[f]: (float(load[f]), float(cap[f, 0])) for f in over})
    for cid, members in model.members.items():
        now_a = active[model.column[cid]]
        scale = min((factor[f] for f, _ in members), default=1.0)
        if scale >= 1.0 or now_a <= EPS:
            continue
        info = site.connectors[cid]
        if connected is not None and info.station_id not in connected:
            continue
        share = _floor(now_a * scale)
        if share < info.connector.min_current_a - EPS:
            share = 0.0
        result.profiles[cid] = share
    return result


async def enforce(controller: Controller, now: datetime, reason: str) -> Lowering:
    """Lower the chargers of every group the meters show over its limit, then
    ask for a re-plan. Returns what was found (empty: nothing over)."""
    site = controller.site
    grid = TimeGrid.covering(now, site.site.slot_minutes, site.site.horizon_hours)
    model = controller.load_model(controller.plan.lines if controller.plan is not None else None)
    cap = model.capacity(site, controller.capacity(grid, now), grid)
    found = lowered_limits(site, controller.book, grid, model, cap, set(controller.connected))
    if not found.over:
        return found
    if not found.profiles:  # nothing the fast path may touch: the planner's turn
        controller.request_replan(reason)
        return found
    shown = ", ".join(f"{g} {q} {a:.1f} > {b:.1f}" for (g, q), (a, b) in found.over.items())
    # a reading that moved by less than an ampere is routine; a building's jump is not
    big = any(a - b >= 1.0 for a, b in found.over.values())
    log.log(
        logging.WARNING if big else logging.INFO,
        "%s: over the limit (%s): lowering %d chargers now",
        reason,
        shown,
        len(found.profiles),
    )
    book = controller.book
    profile_log = ProfileLog(controller.store, controller.state, controller.clock, now)
    targets = {
        cid: np.minimum(book.worst(cid, grid, fallback=False), a)
        for cid, a in found.profiles.items()
    }
    report = await run_rollout(
        controller.gateway,
        book,
        grid,
        targets,
        model,
        cap,
        controller.profiles.transaction,
        hysteresis=Hysteresis(0.0),
        pin_s=controller.settings.pin_s,
        clock=controller.monotonic,
        on_sending=profile_log.sending,
        on_answers=profile_log.answered,
        answer_timeout_s=controller.settings.answer_timeout_s,
        # every lowering at once: none waits for another's answer
        concurrency=max(256, len(targets)),
    )
    controller.request_replan(reason)
    return dataclasses.replace(found, last_sent=report.last_sent_at)
