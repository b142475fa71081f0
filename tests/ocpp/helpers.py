"""A minimal station written on plain ``websockets`` and a running central system.

The station answers the central system's CALLs from ``handlers`` (tests
replace them) and records what it received; its own CALLs go through `call`.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from websockets.asyncio.client import ClientConnection, connect

from gridshare.config import GridshareConfig, parse_config
from gridshare.service import ocpp_server_settings
from ocpp_adapter.central_system import AdapterSettings, CentralSystem
from ocpp_adapter.events import DomainEvent, EventRefused
from ocpp_adapter.rpc import OcppVersion, validate_request

NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
TS = "2026-03-02T12:00:00Z"

FAST = AdapterSettings(
    call_timeout_s=2.0,
    call_retries=1,
    boot_wait_s=3.0,
    validate_replies=True,
    first_transaction_id=100,
)


def make_config(stations: tuple[str, ...] = ("CP1", "CP2"), **server: Any) -> GridshareConfig:
    data = {
        "site": {"name": "ocpp-test"},
        "groups": [{"id": "grid", "limit_a": 100}],
        "chargers": [
            {
                "id": sid,
                "group": "grid",
                "connectors": [{"id": 1, "max_current_a": 32}, {"id": 2, "max_current_a": 32}],
            }
            for sid in stations
        ],
        "server": {"host": "127.0.0.1", "ocpp_port": 0, **server},
    }
    return parse_config(data, "test.toml", environ={})


class CallFailed(Exception):
    def __init__(self, code: str, description: str) -> None:
        super().__init__(f"{code}: {description}")
        self.code = code


Handler = Callable[[dict[str, Any]], dict[str, Any] | Awaitable[dict[str, Any]]]


def _default_handlers(version: OcppVersion) -> dict[str, Handler]:
    if version is OcppVersion.V16:
        return {
            "GetConfiguration": lambda p: {
                "configurationKey": [
                    {
                        "key": "ChargingScheduleAllowedChargingRateUnit",
                        "readonly": True,
                        "value": "Current",
                    },
                    {"key": "ChargingScheduleMaxPeriods", "readonly": True, "value": "10"},
                ],
                "unknownKey": ["ConnectorSwitch3to1PhaseSupported"],
            },
            "ChangeConfiguration": lambda p: {"status": "Accepted"},
            "SetChargingProfile": lambda p: {"status": "Accepted"},
            "ClearChargingProfile": lambda p: {"status": "Accepted"},
            "RemoteStartTransaction": lambda p: {"status": "Accepted"},
            "RemoteStopTransaction": lambda p: {"status": "Accepted"},
            "TriggerMessage": lambda p: {"status": "Accepted"},
            "Reset": lambda p: {"status": "Accepted"},
            "ChangeAvailability": lambda p: {"status": "Scheduled"},
            "GetCompositeSchedule": lambda p: {"status": "Accepted", "connectorId": 1},
        }
    return {
        "GetVariables": lambda p: {
            "getVariableResult": [
                {
                    "attributeStatus": "Accepted",
                    "attributeValue": {"RateUnit": "W", "PeriodsPerSchedule": "5"}.get(
                        d["variable"]["name"], "1"
                    ),
                    "component": d["component"],
                    "variable": d["variable"],
                }
                for d in p["getVariableData"]
            ]
        },
        "SetVariables": lambda p: {
            "setVariableResult": [
                {
                    "attributeStatus": "Accepted",
                    "component": d["component"],
                    "variable": d["variable"],
                }
                for d in p["setVariableData"]
            ]
        },
        "SetChargingProfile": lambda p: {"status": "Accepted"},
        "ClearChargingProfile": lambda p: {"status": "Accepted"},
        "RequestStartTransaction": lambda p: {"status": "Accepted"},
        "RequestStopTransaction": lambda p: {"status": "Accepted"},
        "TriggerMessage": lambda p: {"status": "Accepted"},
        "Reset": lambda p: {"status": "Accepted"},
        "ChangeAvailability": lambda p: {"status": "Accepted"},
        "GetCompositeSchedule": lambda p: {"status": "Accepted"},
    }


@dataclass
class Station:
    ws: ClientConnection
    version: OcppVersion
    handlers: dict[str, Handler] = field(default_factory=dict)
    received: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    raw: asyncio.Queue[Any] = field(default_factory=asyncio.Queue)
    """Frames that are neither our results nor the central system's CALLs."""
    _ids: Any = field(default_factory=lambda: itertools.count(1))
    _waiting: dict[str, asyncio.Future[Any]] = field(default_factory=dict)
    _reader: asyncio.Task[None] | None = None
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)

    def __post_init__(self) -> None:
        self.handlers = {**_default_handlers(self.version), **self.handlers}
        self._reader = asyncio.get_running_loop().create_task(self._read())

    async def _read(self) -> None:
        async for text in self.ws:
            frame = json.loads(text)
            if frame[0] == 2:
                # Each CALL in its own task: a handler may wait while we keep reading.
                task = asyncio.get_running_loop().create_task(self._answer(frame))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
            elif frame[1] in self._waiting:
                self._waiting.pop(frame[1]).set_result(frame)
            else:
                self.raw.put_nowait(frame)

    async def _answer(self, frame: list[Any]) -> None:
        _, uid, action, payload = frame
        # What the central system sends must itself be schema-valid.
        from ocpp_adapter.rpc import Call

        validate_request(self.version, Call(uid, action, payload))
        self.received.append((action, payload))
        handler = self.handlers.get(action)
        if handler is None:
            await self.ws.send(json.dumps([4, uid, "NotImplemented", "", {}]))
            return
        result = handler(payload)
        if not isinstance(result, dict):
            result = await result
        await self.ws.send(json.dumps([3, uid, result]))

    async def call(self, action: str, payload: dict[str, Any], timeout: float = 5.0) -> Any:
        uid = f"st-{next(self._ids)}"
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._waiting[uid] = future
        await self.ws.send(json.dumps([2, uid, action, payload]))
        frame = await asyncio.wait_for(future, timeout)
        if frame[0] == 4:
            raise CallFailed(frame[2], frame[3])
        return frame[2]

    async def send_raw(self, text: str) -> None:
        await self.ws.send(text)

    async def boot(self) -> Any:
        if self.version is OcppVersion.V16:
            return await self.call(
                "BootNotification", {"chargePointVendor": "Acme", "chargePointModel": "W1"}
            )
        return await self.call(
            "BootNotification",
            {"chargingStation": {"vendorName": "Acme", "model": "W2"}, "reason": "PowerUp"},
        )

    def sent(self, action: str) -> list[dict[str, Any]]:
        return [p for a, p in self.received if a == action]

    async def close(self) -> None:
        await self.ws.close()
        for task in list(self._tasks):
            task.cancel()
        if self._reader is not None:
            await asyncio.gather(self._reader, *self._tasks, return_exceptions=True)


def basic(user: str, password: str) -> dict[str, str]:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


@asynccontextmanager
async def station(
    cs: CentralSystem,
    sid: str,
    version: OcppVersion = OcppVersion.V16,
    *,
    headers: dict[str, str] | None = None,
    handlers: dict[str, Handler] | None = None,
    scheme: str = "ws",
    ssl: Any = None,
) -> AsyncIterator[Station]:
    ws = await connect(
        f"{scheme}://127.0.0.1:{cs.port}/ocpp/{sid}",
        subprotocols=[version.value],  # type: ignore[list-item]
        additional_headers=headers,
        ssl=ssl,
        compression=None,
    )
    st = Station(ws, version, handlers or {})
    try:
        yield st
    finally:
        await st.close()


@dataclass
class Recorder:
    """The application's event sink: keeps events, can be made to fail."""

    events: list[DomainEvent] = field(default_factory=list)
    fail: bool = False
    refuse: EventRefused | None = None
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    async def __call__(self, event: DomainEvent) -> None:
        if self.fail:
            raise RuntimeError("store is down")
        if self.refuse is not None:
            raise self.refuse
        self.events.append(event)
        self.changed.set()

    def of(self, kind: type) -> list[Any]:
        return [e for e in self.events if isinstance(e, kind)]

    async def wait_for(self, kind: type, count: int = 1, timeout: float = 3.0) -> list[Any]:
        async def until() -> list[Any]:
            while len(self.of(kind)) < count:
                self.changed.clear()
                await self.changed.wait()
            return self.of(kind)

        return await asyncio.wait_for(until(), timeout)


@asynccontextmanager
async def running(
    config: GridshareConfig | None = None,
    settings: AdapterSettings = FAST,
    sink: Recorder | None = None,
) -> AsyncIterator[tuple[CentralSystem, Recorder]]:
    rec = sink or Recorder()
    cs = CentralSystem(ocpp_server_settings(config or make_config()), rec, settings=settings)
    await cs.start()
    try:
        yield cs, rec
    finally:
        await cs.stop()
