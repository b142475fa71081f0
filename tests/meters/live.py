"""A live site with a building behind its connection: the service, simulated
OCPP stations and a simulated Modbus TCP meter, all on loopback.

The meter shows what a real connection meter would: the building's current
plus what the cars draw, per line, as the cars' own simulation has it.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gridshare.config import GridshareConfig, parse_config
from gridshare.peers.fleet import StationFleet
from gridshare.peers.modbus_meter import SimulatedMeter
from gridshare.peers.specs import specs_from_site
from gridshare.service import Service, controller_settings

LIMIT_A = 64.0
CARS = ["CP1/1", "CP2/1", "CP3/1"]


def building_config(
    tmp_path: Path, meter: dict[str, Any], *, stations: int = 3, **extra: Any
) -> GridshareConfig:
    data: dict[str, Any] = {
        "site": {"name": "building", "slot_minutes": 15, "horizon_hours": 2},
        "groups": [{"id": "grid", "limit_a": LIMIT_A, "fallback_limit_a": LIMIT_A}],
        "chargers": [
            {"id": f"CP{i}", "group": "grid", "connectors": [{"id": 1, "max_current_a": 32}]}
            for i in range(1, stations + 1)
        ],
        "meters": [{"id": "main", "group": "grid", **meter}],
        "server": {"host": "127.0.0.1", "ocpp_port": 0, "http_port": 0, "meter_interval_s": 1},
        "controller": {"coalesce_s": 0.02, "pin_s": 5},
        "api": {"open_reads_on_loopback": True},
        **extra,
    }
    return parse_config(data, "building.toml", tmp_path / "building.toml", environ={})


@dataclass
class Building:
    """The building's own current per line; `connection` adds the cars' draw."""

    fleet: StationFleet
    cars: list[str]
    load: dict[str, float] = field(default_factory=lambda: {"L1": 0.0, "L2": 0.0, "L3": 0.0})

    def connection(self) -> dict[str, float]:
        out = dict(self.load)
        for cid in self.cars:
            for line, a in self.fleet.draw(cid).items():
                out[line] = out.get(line, 0.0) + a
        return out

    def limits_sum(self) -> float:
        return sum(self.fleet.limit_in_force(cid) for cid in self.cars)

    def excess(self) -> float:
        """Per line, limits in force + building − the limit, the worst line."""
        return self.limits_sum() + max(self.load.values()) - LIMIT_A


async def feed_meter(meter: SimulatedMeter, building: Building, period_s: float = 0.05) -> None:
    while True:
        meter.set_currents(building.connection())
        await asyncio.sleep(period_s)


@contextlib.asynccontextmanager
async def live_building(
    cfg: GridshareConfig, *, cars: list[str] | None = None
) -> AsyncIterator[tuple[Service, StationFleet]]:
    """The service and one simulated station per charger, booted, with their
    fallback limits accepted."""
    settings = dataclasses.replace(controller_settings(cfg), learn_settle_s=2.0)
    svc = Service(
        cfg,
        db=str(cfg.path.with_suffix(".db")) if cfg.path else None,
        scheduler=False,
        settings=settings,
    )
    await svc.start()
    try:
        specs = specs_from_site(cfg.site, meter_interval_s=1)
        fleet = StationFleet(f"ws://127.0.0.1:{svc.ocpp_port}/ocpp", specs)
        await fleet.start()
        try:
            assert await fleet.wait_booted(10) == len(specs)
            assert svc.controller is not None
            fallback = svc.controller.fallback
            await eventually(lambda: set(fallback.in_force) == {s.id for s in specs}, 10)
            yield svc, fleet
        finally:
            await fleet.stop()
    finally:
        await svc.stop()


async def eventually(cond: Any, timeout_s: float = 5.0) -> float:
    """Wait for ``cond()``; the seconds it took."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    while not cond():
        if loop.time() - start > timeout_s:
            raise AssertionError(f"condition not reached in {timeout_s} s")
        await asyncio.sleep(0.02)
    return loop.time() - start
