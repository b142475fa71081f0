"""Kill `gridshare serve` (SIGKILL, no clean shutdown) in the middle of two
sessions and start it again on the same database while the stations keep
charging: the stations reconnect, their transactions are re-adopted, the
energy counted before the kill is still there and keeps growing, and the
re-adopted sessions get new profiles.

The service runs as a separate process started through its command line; the
stations are real OCPP clients in this process.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from gridshare.peers.ev import EvSpec
from gridshare.peers.fleet import StationFleet
from gridshare.peers.specs import SimStationSpec

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
CARS = ("CP1/1", "CP2/1")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def write_site(path: Path, ocpp_port: int, http_port: int) -> None:
    chargers = "\n".join(
        f"""
[[chargers]]
id = "CP{i}"
group = "grid"
[[chargers.connectors]]
id = 1
max_current_a = 32
"""
        for i in (1, 2, 3)
    )
    path.write_text(
        f"""
[site]
name = "restart"
horizon_hours = 2

[server]
host = "127.0.0.1"
ocpp_port = {ocpp_port}
http_port = {http_port}
meter_interval_s = 1

[controller]
coalesce_s = 0.02

[api]
open_reads_on_loopback = true

[[groups]]
id = "grid"
limit_a = 48
fallback_limit_a = 48
{chargers}
"""
    )


def serve(config: Path, db: Path, log: Path) -> subprocess.Popen[bytes]:
    """`gridshare serve` in its own process; its log goes to ``log``."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "gridshare.cli", "serve", "--config", str(config), "--db"]
    with log.open("wb") as out:
        return subprocess.Popen(
            [*cmd, str(db)],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


async def until(cond: Any, timeout_s: float, what: str) -> Any:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while True:
        value = await cond()
        if value:
            return value
        if loop.time() > deadline:
            raise AssertionError(f"not reached in {timeout_s} s: {what}")
        await asyncio.sleep(0.1)


async def sessions(client: httpx.AsyncClient) -> dict[str, dict[str, Any]] | None:
    try:
        r = await client.get("/api/sessions", params={"active": "true"})
    except httpx.TransportError:
        return None
    return {s["connector_id"]: s for s in r.json()} if r.status_code == 200 else None


async def test_a_killed_service_resumes_sessions_and_energy(tmp_path: Path):
    ocpp_port, http_port = free_port(), free_port()
    config, db = tmp_path / "site.toml", tmp_path / "site.db"
    write_site(config, ocpp_port, http_port)
    first = serve(config, db, tmp_path / "first.log")
    specs = [SimStationSpec(f"CP{i}", meter_interval_s=1) for i in (1, 2, 3)]
    fleet = StationFleet(f"ws://127.0.0.1:{ocpp_port}/ocpp", specs, max_backoff_s=0.5)
    second: subprocess.Popen[bytes] | None = None
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{http_port}", timeout=5) as client:
        try:

            async def answers() -> bool:
                return await sessions(client) is not None

            await until(answers, 20, "the service answers")
            await fleet.start()
            assert await fleet.wait_booted(10) == 3
            for cid in CARS:
                fleet.plug_in(cid, EvSpec(battery_kwh=80, soc_start=0.1, lag_s=0.3))

            async def charging() -> dict[str, dict[str, Any]] | None:
                got = await sessions(client)
                ok = got and all(got.get(c, {}).get("energy_kwh", 0) > 0.005 for c in CARS)
                return got if ok else None

            before = await until(charging, 20, "both sessions stored with energy")
            tx = {c: fleet.transaction_id(c) for c in CARS}

            first.send_signal(signal.SIGKILL)  # no clean shutdown, no flush
            first.wait(10)
            await asyncio.sleep(1.0)  # the stations notice and keep charging offline

            second = serve(config, db, tmp_path / "second.log")

            async def resumed() -> dict[str, dict[str, Any]] | None:
                got = await sessions(client)
                ok = got and all(
                    got.get(c, {}).get("energy_kwh", 0) > before[c]["energy_kwh"] + 0.002
                    for c in CARS
                )
                return got if ok else None

            after = await until(resumed, 30, "sessions re-adopted and counting on")
            # the same transactions, not new ones, and nothing counted before is lost
            assert {c: after[c]["session_id"] for c in CARS} == {
                c: before[c]["session_id"] for c in CARS
            }
            assert {c: fleet.transaction_id(c) for c in CARS} == tx
            # the re-adopted sessions are planned again and get limits within the grid
            r = await client.get("/api/plan")
            assert r.status_code == 200
            assert sum(fleet.limit_in_force(f"CP{i}/1") for i in (1, 2, 3)) <= 48 + 1e-6
            # the station's own register agrees with what the service counted
            # (the API rounds to Wh)
            for c in CARS:
                assert after[c]["energy_kwh"] <= fleet.energy_wh(c) / 1000 + 0.0006
        finally:
            await fleet.stop()
            for proc in (first, second):
                if proc is not None and proc.poll() is None:
                    proc.send_signal(signal.SIGTERM)
                    try:
                        proc.wait(10)
                    except subprocess.TimeoutExpired:
                        proc.kill()
                        proc.wait(5)
