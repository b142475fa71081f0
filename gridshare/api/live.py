"""The live stream: server-sent events carrying a `Snapshot` after each change.

One subscription to `OperatorBackend.changes` per client. Change hints only
mark the state dirty; at most one snapshot per ``min_interval_s`` is read and
sent, so a burst of 200 meter values costs one snapshot. A comment line goes
out every ``keepalive_s`` so proxies keep the connection and a gone client
is noticed.

Wire format (one event)::

    event: snapshot
    id: 7
    data: {"seq": 7, "status": {...}, "groups": {...}, "stations": [...]}

"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from gridshare.api.backend import OperatorBackend
from gridshare.api.schemas import Snapshot


async def read_snapshot(backend: OperatorBackend, seq: int) -> Snapshot:
    status, groups, stations = await asyncio.gather(
        backend.status(), backend.groups(), backend.stations()
    )
    return Snapshot(seq=seq, status=status, groups=groups, stations=stations)


def sse_event(snapshot: Snapshot) -> str:
    return f"event: snapshot\nid: {snapshot.seq}\ndata: {snapshot.model_dump_json()}\n\n"


async def snapshot_stream(
    backend: OperatorBackend,
    *,
    min_interval_s: float = 0.25,
    keepalive_s: float = 15.0,
) -> AsyncIterator[str]:
    """SSE text for one client; ends when the backend's change stream ends.

    The response closes it (cancellation) when the client goes away.
    """
    dirty = asyncio.Event()
    ended = asyncio.Event()
    changes = backend.changes()

    async def pump() -> None:
        try:
            async for _ in changes:
                dirty.set()
        finally:
            ended.set()
            dirty.set()

    pump_task = asyncio.get_running_loop().create_task(pump())
    seq = 0
    try:
        yield "retry: 2000\n\n"
        yield sse_event(await read_snapshot(backend, seq))
        while True:
            try:
                await asyncio.wait_for(dirty.wait(), timeout=keepalive_s)
            except TimeoutError:
                yield ": keep-alive\n\n"
                continue
            if ended.is_set():
                break
            await asyncio.sleep(min_interval_s)
            dirty.clear()
            seq += 1
            yield sse_event(await read_snapshot(backend, seq))
    finally:
        pump_task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await pump_task
        aclose = getattr(changes, "aclose", None)
        if aclose is not None:
            await aclose()
