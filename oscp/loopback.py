"""Serve an ASGI app with uvicorn inside the running event loop on an
OS-assigned port (tests, simulators, demos).

    async with LoopbackServer(app) as server:
        url = server.url          # http://127.0.0.1:PORT
"""

from __future__ import annotations

import asyncio
import socket
from types import TracebackType
from typing import Any

import uvicorn


class ListenError(OSError):
    """A server cannot listen where it was told: a port in use, an address that is
    not this machine's. Its message names the address; the command line prints
    it as one line."""


def listen_socket(host: str, port: int, what: str) -> socket.socket:
    """A socket bound to ``host:port`` for uvicorn to serve on (``what`` names
    the server in the error)."""
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as e:
        sock.close()
        where = f"{host}:{port}"
        raise ListenError(e.errno, f"cannot listen for {what} on {where}: {e.strerror}") from e
    return sock


class LoopbackServer:
    def __init__(self, app: Any, host: str = "127.0.0.1", port: int = 0) -> None:
        config = uvicorn.Config(
            app,
            host=host,
            port=port,
            log_level="warning",
            lifespan="off",
            ws="none",
            http="h11",
            access_log=False,
            log_config=None,  # its records go to the app's root handler (credentials redacted)
        )
        self._server = uvicorn.Server(config)
        self._task: asyncio.Task[None] | None = None
        self.host = host
        self._port = port
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    async def start(self, timeout_s: float = 5.0) -> None:
        # bound here, not by uvicorn: a busy port is an error naming the port,
        # where uvicorn would log and exit the process
        sock = listen_socket(self.host, self._port, "HTTP")
        self._task = asyncio.ensure_future(self._server.serve([sock]))
        loop = asyncio.get_running_loop()
        end = loop.time() + timeout_s
        while not self._server.started:
            if self._task.done() or loop.time() > end:
                await self.stop()
                raise RuntimeError("loopback server did not start")
            await asyncio.sleep(0.01)
        sockets = self._server.servers[0].sockets
        self.port = int(sockets[0].getsockname()[1])

    async def stop(self) -> None:
        if self._task is None:
            return
        self._server.should_exit = True
        try:
            await asyncio.wait_for(self._task, 10.0)
        finally:
            self._task = None

    async def __aenter__(self) -> LoopbackServer:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()
