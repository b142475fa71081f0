"""A real NATS server with JetStream for the bus's tests: the one on
127.0.0.1:4222 when it listens, else a private one started here (and stopped
after). Each test gets names of its own (prefix, stream, bucket), removed
after it, so tests on a shared server never meet."""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import nats.errors
import nats.js.errors
import pytest
from nats.aio.client import Client

from gridshare.cluster.connection import connect
from gridshare.cluster.settings import BusSettings

SHARED = ("127.0.0.1", 4222)


def _listening(addr: tuple[str, int]) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(addr) == 0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def nats_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if _listening(SHARED):
        yield "nats://{}:{}".format(*SHARED)
        return
    exe = shutil.which("nats-server") or shutil.which(
        "nats-server", path="/usr/sbin:/usr/local/sbin"
    )
    if exe is None:  # `make test` installs it
        pytest.skip("no NATS on 127.0.0.1:4222 and nats-server is not installed")
    port = free_port()
    store: Path = tmp_path_factory.mktemp("jetstream")
    cmd = [exe, "-js", "-a", "127.0.0.1", "-p", str(port), "-sd", str(store)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while not _listening(("127.0.0.1", port)):
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"nats-server did not come to listen on 127.0.0.1:{port}")
            time.sleep(0.1)
        yield f"nats://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


class Bus:
    """One test's names on the server, and the connections it opened."""

    def __init__(self, settings: BusSettings) -> None:
        self.settings = settings
        self.clients: list[Client] = []

    async def connect(self, name: str) -> Client:
        nc = await connect(self.settings, name)
        self.clients.append(nc)
        return nc

    async def cleanup(self) -> None:
        nc = await connect(self.settings, "cleanup")
        js = nc.jetstream()
        for name in (self.settings.stream, f"KV_{self.settings.bucket}"):
            with contextlib.suppress(nats.js.errors.NotFoundError):
                await js.delete_stream(name)
        for c in [*self.clients, nc]:
            with contextlib.suppress(nats.errors.Error):
                await c.close()


@pytest.fixture
async def bus(nats_url: str) -> AsyncIterator[Bus]:
    tag = uuid.uuid4().hex[:12]
    b = Bus(
        BusSettings(
            url=nats_url,
            prefix=f"gstest.{tag}",
            stream=f"GSTEST_{tag}",
            bucket=f"gstest_{tag}",
            file_storage=False,
            lease_ttl_s=2.0,
            lease_renew_s=0.5,
            lease_poll_s=0.25,
            ack_wait_s=1.0,
            redeliver_delay_s=0.1,
            request_timeout_s=2.0,
            command_timeout_s=3.0,
        )
    )
    try:
        yield b
    finally:
        await b.cleanup()
