"""The controller's loops: coalesced re-plans (`ReplanLoop`), and rollouts one
at a time with their profiles in the store (`Rollouts`, `ProfileLog`), shared
by the full re-plan and the fast re-dispatch of the slot in force."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from typing import Any

import numpy as np

from gridshare.rollout import (
    Hysteresis,
    LimitBook,
    LimitSchedule,
    LoadModel,
    RolloutReport,
    run_rollout,
)
from gridshare.site.profiles import ProfileBuilder
from gridshare.site.settings import ControllerSettings
from gridshare.site.state import SiteState
from gridshare.store import Store
from ocpp_adapter.events import ChargingLimitSpec, CommandOutcome, CommandResult, LimitPurpose
from ocpp_adapter.ports import LimitCommands
from optimizer.problem import TimeGrid

log = logging.getLogger(__name__)


class ReplanLoop:
    """Coalesced re-plans: a burst of requests while a plan is being made gives
    one more plan, not one per request; only one runs at a time. Timers and the
    clock jobs (every slot boundary, periodically) request them too."""

    def __init__(self, replan: Callable[[str], Awaitable[object]], coalesce_s: float) -> None:
        self._replan = replan
        self.coalesce_s = coalesce_s
        """Wait this long after the first request of a burst before planning."""
        self.requested_at: float | None = None
        """``perf_counter`` time of the first request not yet planned for."""
        self.plan_requested_at: float | None = None
        """``perf_counter`` time the request behind the current plan came in."""
        self._reasons: set[str] = set()
        self._task: asyncio.Task[None] | None = None
        self._timers: list[asyncio.TimerHandle] = []
        self._scheduler: Any = None
        self._idle = asyncio.Event()
        self._idle.set()
        self._stopping = False
        self._waiters: list[asyncio.Future[None]] = []
        """`now` callers waiting for the next plan to be rolled out."""

    def request(self, reason: str) -> None:
        if self._stopping:
            return
        if self.requested_at is None:
            self.requested_at = time.perf_counter()
        self._reasons.add(reason)
        self._idle.clear()
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._loop())

    async def now(self, reason: str, timeout_s: float) -> None:
        """Request a re-plan and return once a plan begun after this call is rolled out."""
        if self._stopping:
            raise RuntimeError("the controller is stopping")
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        self.request(reason)
        await asyncio.wait_for(waiter, timeout_s)

    def later(self, delay_s: float, reason: str) -> None:
        if self._stopping:
            return
        loop = asyncio.get_running_loop()
        self._timers = [h for h in self._timers if not h.cancelled() and h.when() > loop.time()]
        self._timers.append(loop.call_later(delay_s, self.request, reason))

    async def _loop(self) -> None:
        try:
            await asyncio.sleep(self.coalesce_s)
            while self._reasons and not self._stopping:
                reasons = sorted(self._reasons)
                self._reasons.clear()
                self.plan_requested_at = self.requested_at
                self.requested_at = None
                waiters, self._waiters = self._waiters, []
                try:
                    await self._replan(", ".join(reasons))
                except asyncio.CancelledError:
                    for w in waiters:
                        w.cancel()
                    raise
                # the service keeps running whatever one plan does; the next
                # event or the periodic clock plans again
                except Exception as e:
                    log.exception("re-plan failed")
                    for w in waiters:
                        if not w.done():
                            w.set_exception(e)
                else:
                    for w in waiters:
                        if not w.done():
                            w.set_result(None)
        finally:
            if not self._reasons:
                self._idle.set()

    def start_clock(self, slot_minutes: int, interval_s: float) -> None:
        """Re-plan just after every slot boundary and every ``interval_s``."""
        from apscheduler.schedulers.asyncio import AsyncIOScheduler

        sched = AsyncIOScheduler(timezone=UTC)
        sched.add_job(
            self._scheduled,
            "cron",
            minute=f"*/{slot_minutes}",
            second=1,
            args=["slot boundary"],
            id="slot",
            coalesce=True,
            max_instances=1,
            misfire_grace_time=30,
        )
        sched.add_job(
            self._scheduled,
            "interval",
            seconds=interval_s,
            args=["periodic"],
            id="periodic",
            coalesce=True,
            max_instances=1,
        )
        sched.start()
        self._scheduler = sched

    async def _scheduled(self, reason: str) -> None:
        """A clock job (a coroutine, so the scheduler runs it on the event loop)."""
        self.request(reason)

    def halt(self) -> list[asyncio.Task[Any]]:
        """Stop planning: waiters, clock and timers cancelled; the running task to cancel."""
        self._stopping = True
        for w in self._waiters:
            w.cancel()
        self._waiters.clear()
        if self._scheduler is not None:
            self._scheduler.shutdown(wait=False)
            self._scheduler = None
        for h in self._timers:
            h.cancel()
        return [self._task] if self._task is not None and not self._task.done() else []

    def busy(self) -> bool:
        """A plan pending or running, or a re-plan timer set."""
        loop = asyncio.get_running_loop()
        timers = any(not h.cancelled() and h.when() > loop.time() for h in self._timers)
        return not self._idle.is_set() or timers

    async def wait_idle(self, timeout: float) -> None:
        await asyncio.wait_for(self._idle.wait(), timeout)


class ProfileLog:
    """A rollout's profiles in the store: each stored as sent before it goes
    out, then with its answer."""

    def __init__(
        self, store: Store, state: SiteState, clock: Callable[[], datetime], now: datetime
    ) -> None:
        self.store, self.state, self.clock, self.now = store, state, clock, now
        self._ids: dict[int, int] = {}

    def sending(self, batch: list[tuple[str, str, ChargingLimitSpec]]) -> None:
        rows = [
            (
                sid,
                cid,
                spec.purpose.value,
                spec.transaction_id,
                spec.start,
                [(p.start_offset_s, p.limit_a) for p in spec.periods],
            )
            for cid, sid, spec in batch
        ]
        ids = self.store.profiles_sent(rows, self.now)
        for (_, _, spec), pid in zip(batch, ids, strict=True):
            self._ids[id(spec)] = pid

    def answered(
        self, batch: list[tuple[str, LimitSchedule, ChargingLimitSpec, CommandResult]]
    ) -> None:
        at = self.clock()
        rows = []
        for cid, _, spec, result in batch:
            pid = self._ids.pop(id(spec), None)
            if pid is not None:
                rows.append((pid, result.outcome.value, result.detail))
            if result.outcome is CommandOutcome.ACCEPTED and spec.purpose is LimitPurpose.TX:
                self.state.offer_accepted(cid, at)
        self.store.profiles_answered(rows, at)


class Rollouts:
    """Runs a rollout with the site's settings, its profiles logged in the store;
    one at a time (the full re-plan's and the fast re-dispatch's share the lock)."""

    def __init__(
        self,
        gateway: LimitCommands,
        book: LimitBook,
        store: Store,
        state: SiteState,
        profiles: ProfileBuilder,
        settings: ControllerSettings,
        *,
        clock: Callable[[], datetime],
        monotonic: Callable[[], float],
    ) -> None:
        self.gateway, self.book, self.store, self.state = gateway, book, store, state
        self.profiles, self.settings = profiles, settings
        self.clock, self.monotonic = clock, monotonic
        self.lock = asyncio.Lock()

    async def run(
        self,
        grid: TimeGrid,
        targets: Mapping[str, np.ndarray],
        model: LoadModel,
        cap: np.ndarray,
        *,
        defaults: Mapping[str, float] | None = None,
        live_cap: Callable[[], np.ndarray] | None = None,
    ) -> RolloutReport:
        """`run_rollout` of ``targets`` (and the connectors' own fallback ``defaults``;
        ``live_cap``: see `run_rollout`)."""
        now = self.clock()
        log_ = ProfileLog(self.store, self.state, self.clock, now)
        return await run_rollout(
            self.gateway,
            self.book,
            grid,
            targets,
            model,
            cap,
            self.profiles.transaction,
            hysteresis=Hysteresis(self.settings.min_change_a),
            pin_s=self.settings.pin_s,
            clock=self.monotonic,
            on_sending=log_.sending,
            on_answers=log_.answered,
            answer_timeout_s=self.settings.answer_timeout_s,
            defaults=defaults,
            build_default=lambda cid, limit: self.profiles.default(cid, limit, now),
            live_cap=live_cap,
        )
