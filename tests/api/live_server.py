"""A real uvicorn on 127.0.0.1 (port 0) in a thread of its own, with the fake ticking.

The server thread owns the event loop the fake and the app run in, so a
blocking client (a browser driver) can work from the test's thread. Every
wait is bounded; `stop` ends the ticker and the server and joins the thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from types import TracebackType

import uvicorn
from fastapi import FastAPI

from tests.api.fake_backend import FakeSite


class LiveServer:
    def __init__(
        self, app: FastAPI, fake: FakeSite, *, tick_s: float = 0.5, max_ticks: int = 600
    ) -> None:
        self.app = app
        self.fake = fake
        self.tick_s = tick_s
        self.max_ticks = max_ticks
        self.port = 0
        self.error: BaseException | None = None
        self._started = threading.Event()
        self._thread = threading.Thread(target=self._run, name="live-server", daemon=True)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._server: uvicorn.Server | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _run(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as e:  # handed to the test thread in stop()
            self.error = e
        finally:
            self._started.set()

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
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

    def start(self) -> LiveServer:
        self._thread.start()
        if not self._started.wait(timeout=15) or self.error is not None:
            raise RuntimeError(f"server did not start: {self.error!r}")
        return self

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(timeout=20)
        if self._thread.is_alive():
            raise RuntimeError("server thread did not stop")
        if self.error is not None:
            raise self.error

    def __enter__(self) -> LiveServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
