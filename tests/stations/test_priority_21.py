"""OCPP 2.1 priority charging through the whole service: a simulated 2.1 station's
NotifyPriorityCharging makes its session a priority session in the plan (served
first, within the group's limit), visible in /api/sessions, and stored; stopped,
the plan shares again."""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path
from typing import Any

import httpx
import pytest

from gridshare.config import parse_config
from gridshare.peers.ev import EvSpec
from gridshare.peers.fleet import StationFleet
from gridshare.peers.specs import specs_from_site
from gridshare.service import Service, controller_settings

pytestmark = pytest.mark.slow

GROUP_A = 32.0
TOKEN = "read-token-for-priority-tests"


async def test_a_boost_from_the_station_serves_its_session_first(tmp_path: Path) -> None:
    data = {
        "site": {"name": "priority", "slot_minutes": 15, "horizon_hours": 2},
        "groups": [{"id": "grid", "limit_a": GROUP_A, "fallback_limit_a": GROUP_A}],
        "chargers": [
            {"id": f"CP{i}", "group": "grid", "connectors": [{"id": 1, "max_current_a": 32}]}
            for i in (1, 2)
        ],
        "server": {"host": "127.0.0.1", "ocpp_port": 0, "http_port": 0, "meter_interval_s": 1},
        "controller": {"coalesce_s": 0.02, "pin_s": 5},
        "api": {"tokens": [{"name": "viewer", "token": TOKEN, "role": "read"}]},
    }
    cfg = parse_config(data, "site.toml", tmp_path / "site.toml", environ={})
    settings = dataclasses.replace(controller_settings(cfg), learn_settle_s=2.0)
    svc = Service(cfg, db=str(tmp_path / "site.db"), scheduler=False, settings=settings)
    await svc.start()
    specs = specs_from_site(cfg.site, version="2.1", meter_interval_s=1)
    fleet = StationFleet(f"ws://127.0.0.1:{svc.ocpp_port}/ocpp", specs)
    await fleet.start()
    worst = -float("inf")

    def limits() -> tuple[float, float]:
        nonlocal worst
        a, b = fleet.limit_in_force("CP1/1"), fleet.limit_in_force("CP2/1")
        worst = max(worst, a + b - GROUP_A)
        return a, b

    async def until(cond: Any, timeout_s: float = 15.0) -> None:
        async with asyncio.timeout(timeout_s):
            while not cond():
                await asyncio.sleep(0.05)

    def boost(activated: bool) -> None:
        tx = fleet.transaction_id("CP2/1")
        payload = {"transactionId": tx, "activated": activated}
        fleet.stations["CP2"].protocol.send_later("NotifyPriorityCharging", payload)

    try:
        assert await fleet.wait_booted(10) == 2
        await until(lambda: sum(limits()) <= GROUP_A + 1e-6)
        worst = -float("inf")  # from here on: both have their fallback
        for car in ("CP1/1", "CP2/1"):
            fleet.plug_in(car, EvSpec(battery_kwh=80, soc_start=0.1, lag_s=0.3))
        await until(lambda: fleet.transaction_id("CP2/1") is not None)
        # far more wanted than the group gives: all of it planned
        await until(lambda: sum(limits()) >= GROUP_A - 1e-6)
        assert min(limits()) >= 6.0  # shared while no one is first
        boost(True)
        await until(lambda: limits()[1] >= GROUP_A - 1e-6)
        assert limits()[0] == 0.0  # within the group: the other waits
        async with httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{svc.http_port}",
            headers={"Authorization": f"Bearer {TOKEN}"},
            timeout=10,
        ) as client:
            reply = await client.get("/api/sessions")
        assert reply.status_code == 200, reply.text
        rows = reply.json()
        rows = rows["sessions"] if isinstance(rows, dict) else rows
        by_connector = {r["connector_id"]: r for r in rows}
        assert by_connector["CP2/1"]["priority"] == 10.0
        assert by_connector["CP1/1"]["priority"] == 1.0
        boost(False)
        await until(lambda: min(limits()) >= 6.0)
    finally:
        await fleet.stop()
        await svc.stop()
    assert worst <= 1e-6, f"limits in force exceeded the group's limit by {worst} A"
