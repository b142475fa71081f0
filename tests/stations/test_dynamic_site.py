"""The whole service with simulated 2.1 stations on Dynamic profiles: re-plans go
out as UpdateDynamicSchedule, and the limits in force, as the 2.1 stations
evaluate them (updates included), never exceed the group's limit: not while
it is lowered and raised, and a cut the plan knows ahead is in force before it
starts (a Dynamic profile has one period, so it carries the lowest ahead)."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from gridshare.config import parse_config
from gridshare.peers.ev import EvSpec
from gridshare.peers.fleet import StationFleet
from gridshare.peers.specs import specs_from_site
from gridshare.service import Service, controller_settings

pytestmark = pytest.mark.slow

GROUP_A = 48.0
CARS = ["CP1/1", "CP2/1", "CP3/1"]
SLOT_MIN = 5


async def test_dynamic_limits_in_force_stay_within_the_group_across_replans(
    tmp_path: Path,
) -> None:
    data = {
        "site": {"name": "dynamic", "slot_minutes": SLOT_MIN, "horizon_hours": 2},
        "groups": [{"id": "grid", "limit_a": GROUP_A, "fallback_limit_a": GROUP_A}],
        "chargers": [
            {"id": f"CP{i}", "group": "grid", "connectors": [{"id": 1, "max_current_a": 32}]}
            for i in (1, 2, 3)
        ],
        "server": {"host": "127.0.0.1", "ocpp_port": 0, "http_port": 0, "meter_interval_s": 1},
        "controller": {"coalesce_s": 0.02, "pin_s": 5},
    }
    cfg = parse_config(data, "site.toml", tmp_path / "site.toml", environ={})
    settings = dataclasses.replace(controller_settings(cfg), learn_settle_s=2.0)
    svc = Service(cfg, db=str(tmp_path / "site.db"), scheduler=False, settings=settings)
    await svc.start()
    assert svc.controller is not None
    ctl = svc.controller
    specs = specs_from_site(cfg.site, version="2.1", meter_interval_s=1)
    fleet = StationFleet(f"ws://127.0.0.1:{svc.ocpp_port}/ocpp", specs)
    frames: list[list[Any]] = []
    fleet.frame_taps.append(lambda sid, way, raw: frames.append([way, *json.loads(raw)]))
    allowed = GROUP_A
    worst = -float("inf")
    samples = 0

    def total() -> float:
        return sum(fleet.limit_in_force(c) for c in CARS)

    def sample() -> None:
        nonlocal worst, samples
        worst = max(worst, total() - allowed)
        samples += 1

    async def settle(until_total: float, timeout_s: float = 15.0) -> None:
        async with asyncio.timeout(timeout_s):
            while total() > until_total + 1e-6:
                sample()
                await asyncio.sleep(0.05)
        for _ in range(10):
            sample()
            await asyncio.sleep(0.05)

    def received(action: str) -> list[dict[str, Any]]:
        return [f[4] for f in frames if f[0] == "in" and f[1] == 2 and f[3] == action]

    await fleet.start()
    try:
        assert await fleet.wait_booted(10) == 3
        # a fresh station knows no limit until its fallback is installed
        async with asyncio.timeout(10):
            while total() > GROUP_A + 1e-6:
                await asyncio.sleep(0.05)
        for car in CARS:
            fleet.plug_in(car, EvSpec(battery_kwh=60, soc_start=0.2, lag_s=0.3))
        async with asyncio.timeout(20):
            while len(received("UpdateDynamicSchedule")) + len(received("SetChargingProfile")) < 6:
                sample()
                await asyncio.sleep(0.05)
        await settle(GROUP_A)

        # lowered: the rollout's lowerings go out as updates; in force within the new limit
        ctl.set_group_limit("grid", limit_a=30.0)
        await settle(30.0)
        allowed = 30.0
        await settle(30.0)
        # raised again
        allowed = GROUP_A
        ctl.set_group_limit("grid", limit_a=GROUP_A)
        async with asyncio.timeout(15):
            while total() < 30.0 + 6.0:
                sample()
                await asyncio.sleep(0.05)
        await settle(GROUP_A)

        # a cut from the next slot on: in force now, before it starts
        now = datetime.now(UTC)
        boundary = now.replace(second=0, microsecond=0)
        boundary += timedelta(minutes=SLOT_MIN - boundary.minute % SLOT_MIN)
        if (boundary - now).total_seconds() < 30:  # time to show it is in force before
            boundary += timedelta(minutes=SLOT_MIN)
        assert (boundary - now).total_seconds() < 360  # inside the window a value covers
        ctl.set_group_limit("grid", limit_a=12.0, start=boundary, end=boundary + timedelta(hours=1))
        await settle(12.0)
        assert datetime.now(UTC) < boundary
        allowed = 12.0  # and it stays there
        await settle(12.0)
    finally:
        await fleet.stop()
        await svc.stop()

    assert samples > 40
    assert worst <= 1e-6, f"limits in force exceeded the group's limit by {worst} A"
    tx_profiles = [
        p["chargingProfile"]
        for p in received("SetChargingProfile")
        if p["chargingProfile"]["chargingProfilePurpose"] == "TxProfile"
    ]
    # one Dynamic profile per transaction; every re-plan after it an update
    assert [p["chargingProfileKind"] for p in tx_profiles] == ["Dynamic"] * 3
    assert len(received("UpdateDynamicSchedule")) >= 6
