"""An asyncio loop in a thread of its own, for tests whose client blocks (a
browser driver, a synchronous HTTP client) while a server runs.

Subclasses implement `_serve`, call `self._started.set()` once ready and
return when `self._stop` is set. Every wait is bounded; an error in the
thread is raised in the test's thread by `start` or `stop`.
"""

from __future__ import annotations

import asyncio
import threading
from types import TracebackType
from typing import Self


class LoopThread:
    start_timeout_s = 15.0

    def __init__(self, name: str) -> None:
        self.error: BaseException | None = None
        self._started = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop = asyncio.Event()

    async def _serve(self) -> None:
        raise NotImplementedError

    def _run(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as e:  # handed to the test thread in stop()
            self.error = e
        finally:
            self._started.set()

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        await self._serve()

    def start(self) -> Self:
        self._thread.start()
        if not self._started.wait(timeout=self.start_timeout_s) or self.error is not None:
            raise RuntimeError(f"{self._thread.name} did not start: {self.error!r}")
        return self

    def stop(self) -> None:
        if self._loop is not None and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(timeout=20)
        if self._thread.is_alive():
            raise RuntimeError(f"{self._thread.name} did not stop")
        if self.error is not None:
            raise self.error

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
