"""A service process for the restart tests: ``python -m tests.service.crash_helper``.

    crash_helper DB first    stations boot, two sessions, meter values; prints
                             "READY <json>" once all of it is accepted, then
                             waits to be killed (or stopped with SIGTERM)
    crash_helper DB resume   starts on the same database, the stations come
                             back with their transactions and send more meter
                             values; prints "STATE <json>" and stops cleanly

Stations are the in-memory fake gateway (no sockets needed for what is tested
here: what the store keeps across a kill).
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from gridshare.config import GridshareConfig, parse_config
from gridshare.service import EventSink, Service, StationInfo
from ocpp_adapter.events import (
    ChargingLimitSpec,
    CommandResult,
    MeterReading,
    SessionStarted,
    StationBooted,
    StationConnected,
)
from tests.service.fakes import FakeGateway

T0 = datetime(2026, 3, 2, 17, 7, tzinfo=UTC)


def config() -> GridshareConfig:
    data = {
        "site": {"name": "crash", "horizon_hours": 2},
        "groups": [{"id": "grid", "limit_a": 64}],
        "chargers": [
            {"id": f"CP{i}", "group": "grid", "connectors": [{"id": 1, "max_current_a": 32}]}
            for i in (1, 2, 3)
        ],
        "server": {"host": "127.0.0.1", "ocpp_port": 0, "http_port": 0},
        "controller": {"coalesce_s": 0.005},
    }
    return parse_config(data, "crash.toml", environ={})


@dataclass
class Central:
    gw: FakeGateway
    sink: EventSink

    @property
    def port(self) -> int:
        return 0

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None

    async def set_limit(self, station_id: str, spec: ChargingLimitSpec) -> CommandResult:
        return await self.gw.set_limit(station_id, spec)

    async def clear_limit(self, station_id: str, connector: int) -> CommandResult:
        return await self.gw.clear_limit(station_id, connector)

    # station listing and operator commands: the recording gateway's
    def stations(self) -> Sequence[StationInfo]:
        return self.gw.stations()

    async def remote_start(
        self,
        station_id: str,
        connector: int,
        id_tag: str,
        spec: ChargingLimitSpec | None = None,
    ) -> CommandResult:
        return await self.gw.remote_start(station_id, connector, id_tag, spec)

    async def remote_stop(self, station_id: str, transaction_id: str) -> CommandResult:
        return await self.gw.remote_stop(station_id, transaction_id)

    async def trigger_message(
        self, station_id: str, message: str, connector: int | None = None
    ) -> CommandResult:
        return await self.gw.trigger_message(station_id, message, connector)

    async def reset(self, station_id: str, hard: bool = False) -> CommandResult:
        return await self.gw.reset(station_id, hard)

    async def change_availability(
        self, station_id: str, connector: int, operative: bool
    ) -> CommandResult:
        return await self.gw.change_availability(station_id, connector, operative)


async def settle(svc: Service) -> None:
    assert svc.controller is not None
    for _ in range(300):
        await svc.controller.wait_idle(10)
        if not svc.controller.busy():
            return
        await asyncio.sleep(0.02)


async def main(db: str, phase: str) -> None:
    made: list[Central] = []

    def factory(cfg: GridshareConfig, port: int, host: str, sink: EventSink) -> Central:
        made.append(Central(FakeGateway(cfg.site), sink))
        return made[-1]

    t = T0 if phase == "first" else T0 + timedelta(minutes=5)
    svc = Service(config(), db=db, gateway_factory=factory, scheduler=False, clock=lambda: t)
    stop = asyncio.Event()
    runner = asyncio.create_task(svc.run_until_signalled(stop))
    while not made or svc.controller is None or svc.http_port == 0:
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.05)
    central = made[0]
    sink = central.sink
    for sid in ("CP1", "CP2", "CP3"):
        await sink(StationConnected(sid, "ocpp1.6", t))
        await sink(StationBooted(sid, "acme", "x", t))
    if phase == "first":
        for n, cid in ((1, "CP1/1"), (2, "CP2/1")):
            central.gw.start(cid)
            await sink(SessionStarted(cid, f"tx-{n}", f"tag-{n}", 1000.0 * n, t))
        for k in range(1, 6):
            for n, cid in ((1, "CP1/1"), (2, "CP2/1")):
                await sink(
                    MeterReading(
                        cid,
                        t + timedelta(seconds=10 * k),
                        transaction_id=f"tx-{n}",
                        current_a={"L1": 20.0, "L2": 20.0, "L3": 20.0},
                        energy_wh=1000.0 * n + 250.0 * k,
                    )
                )
        await settle(svc)
        assert svc.controller is not None and svc.store is not None
        ready = {
            "plans": svc.store.plan_count(),
            "sent": len(central.gw.log),
            "limits": {k: v.at(t) for k, v in central.gw.tx.items()},
        }
        print("READY " + json.dumps(ready), flush=True)
        await runner  # until killed, or SIGTERM
        return
    # resume: the stations are back with their transactions running
    for cid in ("CP1/1", "CP2/1"):
        central.gw.start(cid)
    await settle(svc)
    assert svc.controller is not None and svc.store is not None
    status: dict[str, Any] = svc.status()
    state = {
        "sessions": {s["transaction_id"]: s["energy_kwh"] for s in status["sessions"]},
        "plans": svc.store.plan_count(),
        "limits": {k: v.at(t) for k, v in central.gw.tx.items()},
        "sent_tx": sorted({s.transaction_id for *_, s, _ in central.gw.log if s.transaction_id}),
    }
    print("STATE " + json.dumps(state), flush=True)
    stop.set()
    await runner


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))
