"""A real `Service` with in-process stations, in a thread of its own, on loopback.

The thread owns the event loop the service runs in, so a blocking client (a
browser driver) can work from the test's thread. Simulated time runs
``speed`` times faster than real time: every ``tick_s`` the clock moves on and
the stations (the demo's `LocalStations`: cars arrive, draw what they are
offered, send meter values) follow. Every wait is bounded; `stop` ends the
ticker and the service and joins the thread.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

from gridshare.config import GridshareConfig, parse_config
from gridshare.controller import ControllerSettings
from gridshare.service import EventSink, Service, controller_settings
from tests.api.conftest import READ_TOKEN, WRITE_TOKEN
from tests.api.fake_backend import SITE
from tests.api.loop_thread import LoopThread
from tests.service.local_stations import Car, LocalStations

T = TypeVar("T")


def depot_config(tmp_path: Path) -> GridshareConfig:
    """The API tests' depot (a grid connection, two panels, six connectors) on loopback."""
    data = {
        **SITE,
        "server": {"host": "127.0.0.1", "ocpp_port": 0, "http_port": 0},
        "api": {
            "tokens": [
                {"name": "viewer", "token": READ_TOKEN, "role": "read"},
                {"name": "alice", "token": WRITE_TOKEN, "role": "write"},
            ],
            "open_reads_on_loopback": True,  # as the demo: the page reads without a token
        },
    }
    return parse_config(data, "depot.toml", tmp_path / "depot.toml", environ={})


WARMUP_S = 300.0
"""Simulated seconds the depot runs before a test looks (its measured history)."""


def depot_cars(start: datetime) -> list[tuple[str, Car]]:
    """Cars on every connector; CP03's comes once the page is up, so the shares move."""

    def car(cid: str, max_a: float, phases: int, after_s: float) -> tuple[str, Car]:
        at = start + timedelta(seconds=after_s)
        return cid, Car(60.0, 0.3, max_a, phases, at, at + timedelta(hours=6), f"tag-{cid}")

    return [
        car("CP01/1", 32, 3, 0),
        car("CP02/1", 32, 3, 0),
        car("CP04/1", 16, 3, 0),
        car("CP05/1", 20, 1, 0),
        car("CP05/2", 20, 1, 60),
        car("CP03/1", 32, 3, WARMUP_S + 240),  # four seconds after the page loads
    ]


class LiveService(LoopThread):
    start_timeout_s = 30.0

    def __init__(
        self,
        config: GridshareConfig,
        cars: Callable[[datetime], list[tuple[str, Car]]],
        *,
        db: str,
        speed: float = 60.0,
        tick_s: float = 0.2,
        warmup_s: float = WARMUP_S,
        start: datetime | None = None,
    ) -> None:
        self.config = config
        self.cars = cars
        self.db = db
        self.speed = speed
        self.tick_s = tick_s
        self.warmup_s = warmup_s
        """Simulated seconds run before `start` returns (a measured history to show)."""
        self.sim = [start or datetime.now(UTC).replace(microsecond=0)]
        self.service: Service | None = None
        self.stations: LocalStations | None = None
        super().__init__("live-service")

    @property
    def url(self) -> str:
        assert self.service is not None
        return self.service.http_url

    def now(self) -> datetime:
        return self.sim[0]

    async def _serve(self) -> None:
        first = self.sim[0]

        def factory(c: GridshareConfig, port: int, host: str, sink: EventSink) -> LocalStations:
            self.stations = LocalStations(c.site, sink, self.now, self.cars(first))
            return self.stations

        base = controller_settings(self.config)
        settings = ControllerSettings(
            **{**base.__dict__, "coalesce_s": 0.01, "answer_timeout_s": 2}
        )
        svc = Service(
            self.config,
            db=self.db,
            gateway_factory=factory,
            clock=self.now,
            scheduler=False,
            settings=settings,
        )
        self.service = svc
        await svc.start()
        try:
            step = self.tick_s * self.speed
            for _ in range(int(self.warmup_s / step)):
                await self._tick(step)
            self._started.set()
            while not self._stop.is_set():
                await self._tick(step)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stop.wait(), self.tick_s)
        finally:
            await svc.stop()

    async def _tick(self, seconds: float) -> None:
        assert self.stations is not None and self.service is not None
        self.sim[0] += timedelta(seconds=seconds)
        await self.stations.tick(self.sim[0], seconds)
        ctl = self.service.controller
        assert ctl is not None
        await ctl.wait_idle(10)

    def call(self, fn: Callable[[], Coroutine[Any, Any, T]], timeout_s: float = 10.0) -> T:
        """Run a coroutine in the service's loop and wait for its result."""
        assert self._loop is not None
        return asyncio.run_coroutine_threadsafe(fn(), self._loop).result(timeout_s)
