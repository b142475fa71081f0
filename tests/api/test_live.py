"""The live stream, over a real socket: snapshots after changes, cleaned up after."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx

from gridshare.api import LiveSettings, create_api
from gridshare.api.live import snapshot_stream
from tests.api.conftest import WRITE, Clock, api_config
from tests.api.fake_backend import FakeSite
from tests.api.live_server import LiveServer


class SnapshotReader:
    """Reads snapshot events off one SSE response, a few at a time, bounded in time."""

    def __init__(self, response: httpx.Response) -> None:
        self.lines = response.aiter_lines()

    async def next(self, count: int, timeout_s: float = 10.0) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []

        async def collect() -> None:
            event, data = "", []
            async for line in self.lines:
                if line.startswith("event:"):
                    event = line.removeprefix("event:").strip()
                elif line.startswith("data:"):
                    data.append(line.removeprefix("data:").strip())
                elif line == "" and data:
                    if event == "snapshot":
                        out.append(json.loads("\n".join(data)))
                        if len(out) == count:
                            return
                    event, data = "", []

        await asyncio.wait_for(collect(), timeout=timeout_s)
        return out

    async def aclose(self) -> None:
        aclose = getattr(self.lines, "aclose", None)
        if aclose is not None:
            await aclose()


def draws(snapshot: dict[str, Any]) -> dict[str, dict[str, float]]:
    return {
        c["connector_id"]: c["draw_a"]
        for s in snapshot["stations"]
        for c in s["connectors"]
        if c["session_id"]
    }


async def test_live_stream_sends_snapshots_as_measurements_change() -> None:
    fake = FakeSite()
    app = create_api(fake, api_config(), live=LiveSettings(min_interval_s=0.05))
    with LiveServer(app, fake, tick_s=0.1, max_ticks=300) as server:
        async with (
            httpx.AsyncClient(base_url=server.url, timeout=10) as client,
            client.stream("GET", "/api/live") as response,
        ):
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("text/event-stream")
            reader = SnapshotReader(response)
            snaps = await reader.next(4)
            await reader.aclose()
        assert [s["seq"] for s in snaps] == [0, 1, 2, 3]
        assert snaps[0]["status"]["site"] == "Test depot"
        assert {g["id"] for g in snaps[0]["groups"]["groups"]} == {"grid", "panel-a", "panel-b"}
        assert draws(snaps[1]) != draws(snaps[3])
        # the subscription ends with the client (bounded wait for the server to notice)
        deadline = time.monotonic() + 5
        while fake.subscribers and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        assert fake.subscribers == 0


async def test_live_stream_shows_a_new_limit() -> None:
    fake = FakeSite()
    app = create_api(fake, api_config(), live=LiveSettings(min_interval_s=0.05))
    with LiveServer(app, fake, tick_s=5.0, max_ticks=5) as server:
        async with (
            httpx.AsyncClient(base_url=server.url, timeout=10) as client,
            client.stream("GET", "/api/live") as response,
        ):
            reader = SnapshotReader(response)
            first = (await reader.next(1))[0]
            panel = next(g for g in first["groups"]["groups"] if g["id"] == "panel-b")
            assert panel["override"] is None
            r = await client.put("/api/groups/panel-b/limit", json={"limit_a": 12}, headers=WRITE)
            assert r.status_code == 200
            for _ in range(5):
                snap = (await reader.next(1))[0]
                panel = next(g for g in snap["groups"]["groups"] if g["id"] == "panel-b")
                if panel["override"] is not None:
                    break
            assert panel["override"]["limit_a"] == 12
            assert panel["planned_a"]["L1"] <= 12 + 1e-6
            assert snap["status"]["plan"]["reason"] == "operator limit"
            await reader.aclose()


async def test_stream_coalesces_a_burst_and_ends_with_the_backend() -> None:
    clock = Clock()
    fake = FakeSite(clock=clock)
    stream = snapshot_stream(fake, min_interval_s=0.05, keepalive_s=0.2)
    texts: list[str] = []

    async def consume(it: AsyncIterator[str]) -> None:
        async for text in it:
            texts.append(text)

    task = asyncio.create_task(consume(stream))
    for _ in range(100):  # the subscription is open once the first snapshot is out
        if any("event: snapshot" in t for t in texts):
            break
        await asyncio.sleep(0.01)
    for _ in range(200):
        fake.tick(1)
    await asyncio.sleep(0.3)
    fake.close()
    await asyncio.wait_for(task, timeout=5)
    snapshots = [t for t in texts if t.startswith("event: snapshot")]
    assert 2 <= len(snapshots) <= 4
    assert any(t.startswith(": keep-alive") for t in texts)
    assert fake.subscribers == 0
