"""A real uvicorn on 127.0.0.1 (port 0) in a thread of its own, with the fake ticking.

The server thread owns the event loop the fake and the app run in, so a
blocking client (a browser driver) can work from the test's thread. Every
wait is bounded; `stop` ends the ticker and the server and joins the thread.
"""

from __future__ import annotations

import asyncio
import contextlib

import uvicorn
from fastapi import FastAPI

from tests.api.fake_backend import FakeSite
from tests.api.loop_thread import LoopThread


class LiveServer(LoopThread):
    def __init__(
        self, app: FastAPI, fake: FakeSite, *, tick_s: float = 0.5, max_ticks: int = 600
    ) -> None:
        self.app = app
        self.fake = fake
        self.tick_s = tick_s
        self.max_ticks = max_ticks
        self.port = 0
        super().__init__("live-server")
        self._server: uvicorn.Server | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def _serve(self) -> None:
        config = uvicorn.Config(
            self.app,
            host="127.0.0.1",
            port=0,
            log_level="warning",
            lifespan="off",
            timeout_graceful_shutdown=2,
        )
        server = uvicorn.Server(config)
        self._server = server
        serve = asyncio.create_task(server.serve())
        for _ in range(200):
            if server.started or serve.done():
                break
            await asyncio.sleep(0.025)
        if not server.started:
            serve.cancel()
            raise RuntimeError("uvicorn did not start")
        self.port = server.servers[0].sockets[0].getsockname()[1]
        self._started.set()
        ticker = asyncio.create_task(
            self.fake.run(period_s=self.tick_s, max_ticks=self.max_ticks, stop=self._stop)
        )
        await self._stop.wait()
        ticker.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await ticker
        self.fake.close()
        server.should_exit = True
        await asyncio.wait_for(serve, timeout=10)

    def call(self, fn: object) -> None:
        """Run a plain callable in the server's loop (e.g. to change the fake)."""
        assert self._loop is not None and callable(fn)
        self._loop.call_soon_threadsafe(fn)
