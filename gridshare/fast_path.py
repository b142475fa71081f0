"""The fast speed of the two-speed controller: on a meter value that changes
what a car takes, re-dispatch the slot in force at once, within the last
plan's envelope, while the full re-plan follows behind it (coalesced).

    meter value ──► SiteState (the car's learned rate) ──► FastPath.request
                                                               │ coalesced
          cars' profiles in force, capacity now ──► redispatch_slot (pure)
                                                               ▼
                     run_rollout: lowerings answered, then raisings that fit

The re-dispatch touches only cars the last plan steers whose profile in force
is known (accepted, nothing in flight, not pinned); everything else counts at
its worst case. It shares the rollout lock with the full re-plan, so two
rollouts never interleave.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from datetime import datetime

import numpy as np

from gridshare.replan_loop import Rollouts
from gridshare.rollout import LimitBook, LoadModel, RolloutReport
from gridshare.site.fast_dispatch import Redispatch, SteerableCar, redispatch_slot
from gridshare.site.lookups import LoadModels
from gridshare.site.state import SiteState
from optimizer import Plan
from optimizer.modes import ChargeMode
from optimizer.problem import Capacity, TimeGrid
from optimizer.site import Line

log = logging.getLogger(__name__)

FAST_REASONS = frozenset({"meter values", "car takes more"})
"""Re-plans asked for by a meter value that changed only what one car takes now."""

FastObserver = Callable[[float | None, RolloutReport], None]
"""(``perf_counter`` time of the request behind it, the re-dispatch's rollout)."""


class FastPath:
    def __init__(
        self,
        state: SiteState,
        book: LimitBook,
        load_models: LoadModels,
        capacity: Callable[[TimeGrid, datetime], Capacity],
        rollouts: Rollouts,
    ) -> None:
        self.state, self.book, self.load_models = state, book, load_models
        self.capacity, self.rollouts = capacity, rollouts
        self.settings = rollouts.settings
        self.plan: Plan | None = None
        self.fixed: frozenset[str] = frozenset()
        self.requested_at: float | None = None
        """``perf_counter`` time of the first request not yet re-dispatched for."""
        self._task: asyncio.Task[None] | None = None
        self.runs = 0
        self.on_done: list[FastObserver] = []
        """Observers (benchmarks, metrics): called after each re-dispatch's rollout."""

    def planned(self, plan: Plan, fixed: Mapping[str, float]) -> None:
        """The envelope: the latest plan and the connectors it counted as fixed load."""
        self.plan, self.fixed = plan, frozenset(fixed)

    def request(self) -> None:
        if self.plan is None:
            return
        if self.requested_at is None:
            self.requested_at = time.perf_counter()
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._loop())

    def halt(self) -> list[asyncio.Task[None]]:
        return [self._task] if self._task is not None and not self._task.done() else []

    def busy(self) -> bool:
        return self._task is not None and not self._task.done()

    async def finished(self) -> None:
        """Until the re-dispatch running (if any) has rolled out."""
        if self._task is not None and not self._task.done():
            await asyncio.wait({self._task})

    async def _loop(self) -> None:
        while self.requested_at is not None:
            asked, self.requested_at = self.requested_at, None
            try:
                async with self.rollouts.lock:
                    report = await self.redispatch()
            except asyncio.CancelledError:
                raise
            # the full re-plan behind it sorts out whatever this one could not
            except Exception:
                log.exception("fast re-dispatch failed")
                continue
            self.runs += 1
            for observer in self.on_done:
                observer(asked, report)

    def cars(self, grid: TimeGrid, mono: float) -> dict[str, SteerableCar]:
        """The cars the last plan steers whose profile in force is known."""
        plan, book = self.plan, self.book
        if plan is None:
            return {}
        pinned, fixed, connected = book.pinned(mono), self.fixed, self.state.connected
        sessions, limits, static = self.state.sessions, book.connectors, self._static
        slack = 2 * self.settings.min_change_a
        out: dict[str, SteerableCar] = {}
        for cid in plan.connector_ids:
            s = sessions.get(cid)
            c = limits.get(cid)
            if (
                s is None
                or c is None
                or not c.active
                or c.accepted is None
                or c.uncertain
                or c.force_send
                or cid in pinned
                or cid in fixed
                or s.station_id not in connected
            ):
                continue
            top, floor, steps = static[cid]
            for most in (s.ev_max_current_a, s.rate.max_current_a):
                if most is not None and most < top:
                    top = most
            if s.ev_min_current_a is not None and s.ev_min_current_a > floor:
                floor = s.ev_min_current_a
            profile = book.worst(cid, grid, fallback=False)
            drawn = s.drawn_a
            # a car well under its offer would not use a raise; one on the PV surplus
            # is raised by the re-plan only (the surplus is not a family here)
            drawing = (drawn is None or drawn >= float(profile[0]) - slack) and (
                s.charge_mode is ChargeMode.FAST
            )
            out[cid] = SteerableCar(profile, top, floor, steps, s.priority, drawing)
        return out

    @property
    def _static(self) -> dict[str, tuple[float, float, tuple[float, ...] | None]]:
        """Connector → (its and its cable's maximum, its minimum, its pilot steps)."""
        cached = self.__dict__.get("_static_cache")
        if cached is None:
            cached = {
                cid: (
                    info.max_current_a,
                    info.connector.min_current_a,
                    info.connector.allowed_currents_a,
                )
                for cid, info in self.state.site.connectors.items()
            }
            self.__dict__["_static_cache"] = cached
        return cached

    def decide(self, now: datetime) -> tuple[TimeGrid, LoadModel, np.ndarray, Redispatch]:
        """The grid, its limit families and their capacity now, and the
        re-dispatch of its first slot."""
        site = self.state.site
        grid = TimeGrid.covering(now, site.site.slot_minutes, site.site.horizon_hours)
        if self.plan is not None and self.plan.grid == grid:
            grid = self.plan.grid  # the one the book's worst cases are kept for
        cars = self.cars(grid, self.rollouts.monotonic())
        model = self.load_models(self.lines())
        cap = model.capacity(site, self.capacity(grid, now), grid)
        book = self.book
        static = self._static
        # the fallback a car's worst case counts besides its profile matters
        # only where it is lowered (see `redispatch_slot`)
        lowered = (cid for cid, car in cars.items() if car.profile[0] > car.top_a)
        reserve = (
            {cid: min(book.default_worst(cid), static[cid][0]) for cid in lowered}
            if book.count_idle
            else {}
        )
        worst = book.worst_all(grid)
        hyst = self.settings.min_change_a
        return grid, model, cap, redispatch_slot(0, worst, reserve, cars, model, cap, hyst)

    def lines(self) -> dict[str, tuple[Line, ...]]:
        """The lines each car loads, fewer than its connector's only where the
        plan and what its meter values show now agree (a car that switched to
        more lines since the plan is counted on every line)."""
        plan, sessions, wired = self.plan, self.state.sessions, self.state.site.connectors
        if plan is None:
            return {}
        out: dict[str, tuple[Line, ...]] = {}
        for cid, ls in plan.lines.items():
            if ls == wired[cid].lines:
                continue
            s = sessions.get(cid)
            if s is not None and s.lines == ls:
                out[cid] = ls
        return out

    async def redispatch(self) -> RolloutReport:
        mono = self.rollouts.monotonic
        grid, model, cap, decided = self.decide(self.rollouts.clock())
        if not decided.targets:
            return RolloutReport(started=mono(), finished=mono())
        report = await self.rollouts.run(grid, decided.targets, model, cap)
        log.debug(
            "fast re-dispatch: %d lowered, %d raised, %d withheld",
            report.lowered,
            report.raised,
            len(report.withheld),
        )
        return report


__all__ = ["FAST_REASONS", "FastPath"]
