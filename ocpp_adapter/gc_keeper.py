"""Garbage collection tuned for thousands of connections (``AdapterSettings.gc_*``).

Everything alive is frozen every second so collections never rescan thousands
of connections; a full collection runs hourly and after many connections
closed. The collector's settings are process-wide: they hold while any central
system runs.
"""

from __future__ import annotations

import asyncio
import gc
import time

from ocpp_adapter.settings import AdapterSettings


class _GcTuning:
    """Process-wide collector settings, held while any central system runs."""

    def __init__(self) -> None:
        self.users = 0
        self.saved: tuple[int, int, int] | None = None

    def acquire(self, threshold0: int | None) -> None:
        self.users += 1
        if self.users == 1 and threshold0 is not None:
            self.saved = gc.get_threshold()
            gc.set_threshold(threshold0, *self.saved[1:])

    def release(self) -> None:
        self.users -= 1
        if self.users == 0:
            if self.saved is not None:
                gc.set_threshold(*self.saved)
                self.saved = None
            gc.unfreeze()


_GC = _GcTuning()


class GcKeeper:
    """One central system's share of the collector: counts connections coming and
    going, and while started freezes everything now and then so collections only
    scan what is new."""

    def __init__(self, settings: AdapterSettings) -> None:
        self.settings = settings
        self.churn = 0
        """Connections opened or closed so far (a full collection waits for it to settle)."""
        self.closed = 0
        self._task: asyncio.Task[None] | None = None
        self._tuned = False

    def opened(self) -> None:
        self.churn += 1

    def connection_closed(self) -> None:
        self.churn += 1
        self.closed += 1

    def start(self) -> None:
        s = self.settings
        if s.gc_freeze_interval_s is not None:
            _GC.acquire(s.gc_threshold0)
            self._tuned = True
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        if self._tuned:
            self._tuned = False
            _GC.release()

    async def _run(self) -> None:
        s = self.settings
        interval = s.gc_freeze_interval_s
        assert interval is not None
        now = time.monotonic()
        last_full = last_change = now
        seen, closed_at_full = self.churn, self.closed
        while True:
            await asyncio.sleep(interval)
            now = time.monotonic()
            if self.churn != seen:
                seen, last_change = self.churn, now
            closed = self.closed - closed_at_full
            if now - last_full >= s.gc_full_collect_s or (
                closed >= s.gc_full_collect_closed and now - last_change >= s.gc_freeze_settle_s
            ):
                gc.unfreeze()
                gc.collect()
                last_full, closed_at_full = now, self.closed
            else:
                # Cycles that died young; scans only what came since the last freeze.
                gc.collect(0)
            gc.freeze()
