"""A small central system for testing the station simulator over real sockets.

It answers the station's CALLs with fixed replies, validates every frame the
station sends against the `ocpp` package's JSON schemas, records everything,
and can send CALLs to a station.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from functools import cache
from importlib.resources import files
from typing import Any

import jsonschema
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from gridshare.peers.wire import SCHEMA_DIRS


@cache
def _schema(version: str, name: str) -> dict[str, Any]:
    folder = files("ocpp") / SCHEMA_DIRS[version] / "schemas"
    return json.loads((folder / f"{name}.json").read_text(), parse_float=Decimal)


def validate(version: str, action: str, raw_payload: str, response: bool) -> None:
    """Raise if the payload (as JSON text) is not valid for the action."""
    if version == "1.6":
        name = f"{action}Response" if response else action
    else:
        name = f"{action}Response" if response else f"{action}Request"
    schema = _schema(version, name)
    instance = json.loads(raw_payload, parse_float=Decimal)
    cls = jsonschema.validators.validator_for(schema)
    cls(schema).validate(instance)


def _now() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


@dataclass
class Received:
    station_id: str
    action: str
    payload: dict[str, Any]


@dataclass
class FakeCsms:
    passwords: dict[str, str] = field(default_factory=dict)
    heartbeat_s: int = 60
    received: list[Received] = field(default_factory=list)
    overrides: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Action → the reply to give instead of the normal one."""
    schema_errors: list[str] = field(default_factory=list)
    connections: dict[str, ServerConnection] = field(default_factory=dict)
    versions: dict[str, str] = field(default_factory=dict)
    _pending: dict[str, asyncio.Future[list[Any]]] = field(default_factory=dict)
    _tx_ids: itertools.count[int] = field(default_factory=lambda: itertools.count(100))
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    _server: Server | None = None
    _changed: asyncio.Event = field(default_factory=asyncio.Event)

    async def start(self) -> None:
        self._server = await serve(
            self._handler,
            "127.0.0.1",
            0,
            subprotocols=["ocpp1.6", "ocpp2.0.1", "ocpp2.1"],  # type: ignore[list-item]
            process_request=self._check,
            compression=None,
        )

    @property
    def url(self) -> str:
        assert self._server is not None
        port = next(iter(self._server.sockets)).getsockname()[1]
        return f"ws://127.0.0.1:{port}/ocpp"

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    def _check(self, conn: ServerConnection, request: Request) -> Response | None:
        station = request.path.rsplit("/", 1)[-1]
        want = self.passwords.get(station)
        if want is None:
            return None
        token = base64.b64encode(f"{station}:{want}".encode()).decode()
        if request.headers.get("Authorization") != f"Basic {token}":
            return conn.respond(401, "unauthorized\n")
        return None

    async def _handler(self, ws: ServerConnection) -> None:
        station = ws.request.path.rsplit("/", 1)[-1] if ws.request else "?"
        version = str(ws.subprotocol).removeprefix("ocpp")
        self.connections[station] = ws
        self.versions[station] = version
        try:
            async for raw in ws:
                frame = json.loads(raw)
                if frame[0] == 2:
                    _, msg_id, action, payload = frame
                    self._validate(version, action, json.dumps(payload), response=False)
                    self.received.append(Received(station, action, payload))
                    self._changed.set()
                    await ws.send(json.dumps([3, msg_id, self.reply(version, action, payload)]))
                else:
                    fut = self._pending.pop(frame[1], None)
                    if fut is not None and not fut.done():
                        fut.set_result(frame)
        except ConnectionClosed:
            pass
        finally:
            if self.connections.get(station) is ws:
                del self.connections[station]

    def _validate(self, version: str, action: str, payload: str, response: bool) -> None:
        try:
            validate(version, action, payload, response)
        except jsonschema.ValidationError as e:
            self.schema_errors.append(f"{action}: {e.message}")

    def reply(self, version: str, action: str, payload: dict[str, Any]) -> dict[str, Any]:
        if action in self.overrides:
            return self.overrides[action]
        if action == "BootNotification":
            return {"status": "Accepted", "currentTime": _now(), "interval": self.heartbeat_s}
        if action == "Heartbeat":
            return {"currentTime": _now()}
        if action == "Authorize":
            key = "idTagInfo" if version == "1.6" else "idTokenInfo"
            return {key: {"status": "Accepted"}}
        if action == "StartTransaction":
            return {"transactionId": next(self._tx_ids), "idTagInfo": {"status": "Accepted"}}
        if action == "NotifyEVChargingNeeds":
            return {"status": "Accepted"}
        return {}

    async def call(
        self, station: str, action: str, payload: dict[str, Any], timeout_s: float = 3.0
    ) -> list[Any]:
        """Send a CALL; return the station's answer frame (schema-checked if a result)."""
        ws = self.connections[station]
        msg_id = f"c{next(self._ids)}"
        fut: asyncio.Future[list[Any]] = asyncio.get_running_loop().create_future()
        self._pending[msg_id] = fut
        await ws.send(json.dumps([2, msg_id, action, payload]))
        frame = await asyncio.wait_for(fut, timeout_s)
        if frame[0] == 3:
            self._validate(self.versions[station], action, json.dumps(frame[2]), response=True)
        return frame

    async def send_raw(self, station: str, text: str) -> None:
        await self.connections[station].send(text)

    def of(self, action: str, station: str | None = None) -> list[dict[str, Any]]:
        return [
            r.payload
            for r in self.received
            if r.action == action and (station is None or r.station_id == station)
        ]

    async def wait_for(self, action: str, count: int = 1, timeout_s: float = 5.0) -> None:
        async with asyncio.timeout(timeout_s):
            while len(self.of(action)) < count:
                self._changed.clear()
                await self._changed.wait()


__all__ = ["FakeCsms", "validate"]
