"""The whole service with simulated 2.1 stations: one-phase cars on stations wired
to different lines each get what their own line has, and the per-phase limits
in force, as the 2.1 stations compute them, never exceed a line's capacity."""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path

import pytest

from gridshare.config import parse_config
from gridshare.peers.ev import EvSpec
from gridshare.peers.fleet import StationFleet
from gridshare.peers.specs import specs_from_site
from gridshare.service import Service, controller_settings

pytestmark = pytest.mark.slow

LINE_A = 32.0
# phase rotation: each station's first phase is another line of the site
WIRING = [["L1", "L2", "L3"], ["L2", "L3", "L1"], ["L3", "L1", "L2"]]
CARS = ["CP1/1", "CP2/1", "CP3/1"]


async def test_one_phase_cars_on_different_lines_each_use_their_line(tmp_path: Path) -> None:
    data = {
        "site": {"name": "per-phase", "slot_minutes": 15, "horizon_hours": 2},
        "groups": [{"id": "grid", "limit_a": LINE_A, "fallback_limit_a": LINE_A}],
        "chargers": [
            {
                "id": f"CP{i}",
                "group": "grid",
                "connectors": [{"id": 1, "max_current_a": 32, "phases": phases}],
            }
            for i, phases in enumerate(WIRING, start=1)
        ],
        "server": {"host": "127.0.0.1", "ocpp_port": 0, "http_port": 0, "meter_interval_s": 1},
        "controller": {"coalesce_s": 0.02, "pin_s": 5},
    }
    cfg = parse_config(data, "site.toml", tmp_path / "site.toml", environ={})
    settings = dataclasses.replace(controller_settings(cfg), learn_settle_s=2.0)
    svc = Service(cfg, db=str(tmp_path / "site.db"), scheduler=False, settings=settings)
    await svc.start()
    specs = specs_from_site(cfg.site, version="2.1", meter_interval_s=1)
    fleet = StationFleet(f"ws://127.0.0.1:{svc.ocpp_port}/ocpp", specs)
    await fleet.start()
    worst = -float("inf")
    samples = 0

    def sample() -> None:
        nonlocal worst, samples
        limits = [fleet.line_limits_in_force(c) for c in CARS]
        for line in ("L1", "L2", "L3"):
            worst = max(worst, sum(lim[line] for lim in limits) - LINE_A)
        samples += 1

    try:
        assert await fleet.wait_booted(10) == 3
        # a fresh station knows no limit until its fallback is installed
        async with asyncio.timeout(10):
            while any(fleet.limit_in_force(c) > LINE_A / 3 + 1e-6 for c in CARS):
                await asyncio.sleep(0.05)
        for car in CARS:
            fleet.plug_in(car, EvSpec(battery_kwh=60, soc_start=0.2, lag_s=0.3, phases=1))
        async with asyncio.timeout(20):
            while not all(fleet.draw(c)[WIRING[i][0]] > LINE_A - 1 for i, c in enumerate(CARS)):
                sample()
                await asyncio.sleep(0.05)
        for _ in range(20):
            sample()
            await asyncio.sleep(0.05)
        # each car has its whole line, and only that line
        for i, car in enumerate(CARS):
            own, *others = WIRING[i]
            assert fleet.line_limits_in_force(car) == {own: LINE_A, **dict.fromkeys(others, 0.0)}
    finally:
        await fleet.stop()
        await svc.stop()
    assert samples > 40
    assert worst <= 1e-6, f"per-phase limits in force exceeded a line by {worst} A"
