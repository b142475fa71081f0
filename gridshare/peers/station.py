"""A simulated station's connection: a real OCPP-J websocket client.

The thin I/O shell around `station_protocol.StationProtocol`. One asyncio task
per station waits for the next frame with a deadline set by the protocol's next
timer (heartbeat, meter sample, physics tick, call timeout), and is woken early
by rescheduling that deadline when a CALL is queued, so thousands of stations
share one loop without extra tasks or threads. It reconnects with backoff.

`SimStation.cut_off` takes the station off the network for a while, with a
close handshake or silently: the central system's socket then stays open, as
after a NAT timeout, and only the station's next connection replaces it.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import math
import ssl
from collections.abc import Callable
from datetime import datetime
from typing import Any, Protocol
from urllib.parse import quote

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI

from gridshare.peers.specs import SUBPROTOCOL, SimStationSpec
from gridshare.peers.station_protocol import CLOSE, StationProtocol
from gridshare.peers.wire import FleetStats

FrameTap = Callable[[str, str, str | bytes], None]
"""(station id, "in" or "out", frame): sees a simulated station's frames."""


class Fleet(Protocol):
    """What a station shares with the others of its fleet: clock, settings, counters."""

    @property
    def url(self) -> str: ...
    @property
    def clock(self) -> Callable[[], datetime]: ...
    @property
    def speed(self) -> float: ...
    @property
    def call_timeout_s(self) -> float: ...
    @property
    def ping_interval_s(self) -> float | None: ...
    @property
    def open_timeout_s(self) -> float: ...
    @property
    def max_backoff_s(self) -> float: ...
    @property
    def stats(self) -> FleetStats: ...
    @property
    def frame_taps(self) -> list[FrameTap]: ...
    @property
    def connect_slots(self) -> asyncio.Semaphore: ...

    def tls_for(self, spec: SimStationSpec) -> ssl.SSLContext | None: ...
    def jitter(self) -> float: ...


class _LinkCut(Exception):
    """The station's network is gone (`SimStation.cut_off`)."""


class SimStation:
    """One simulated station: its OCPP state (``protocol``) and its connection loop."""

    def __init__(self, spec: SimStationSpec, fleet: Fleet) -> None:
        self.spec = spec
        self.fleet = fleet
        self.protocol = StationProtocol(
            spec,
            clock=fleet.clock,
            speed=fleet.speed,
            call_timeout_s=fleet.call_timeout_s,
            stats=fleet.stats,
        )
        self.booted_event = asyncio.Event()
        self.protocol.calls.wake = self._wake
        self.protocol.on_booted = self.booted_event.set
        self.ws: ClientConnection | None = None
        self.task: asyncio.Task[None] | None = None
        self.stopping = False
        self.last_error: str | None = None
        self._timeout: asyncio.Timeout | None = None
        self._cut: tuple[float, bool] | None = None
        """(seconds away, silently) of a cut asked for and not yet made."""
        self._dead: list[ClientConnection] = []
        """Connections left open by a silent cut (aborted when the station stops)."""

    @property
    def booted(self) -> bool:
        return self.protocol.booted

    def cut_off(self, for_s: float, *, silent: bool = False) -> None:
        """Lose the network now and connect again after ``for_s`` (wall) seconds.

        ``silent``: the connection is left open and no longer read or written
        (its pings unanswered), so the central system sees no close; else it
        is closed with a handshake."""
        if for_s < 0:
            raise ValueError("for_s must be >= 0")
        self._cut = (for_s, silent)
        self._wake()

    def _wake(self) -> None:
        if self._timeout is not None:
            # already expiring: the loop wakes anyway
            with contextlib.suppress(RuntimeError):
                self._timeout.reschedule(asyncio.get_running_loop().time())

    async def _send_frame(self, ws: ClientConnection, frame: list[Any]) -> None:
        text = json.dumps(frame, separators=(",", ":"))
        await ws.send(text)
        for tap in self.fleet.frame_taps:
            tap(self.spec.id, "out", text)
        self.fleet.stats.frames_sent += 1
        self.protocol.frame_sent()

    async def _flush(self, ws: ClientConnection) -> None:
        frame = self.protocol.next_frame()
        if frame is CLOSE:
            await ws.close()
        elif isinstance(frame, list):
            await self._send_frame(ws, frame)

    async def _on_frame(self, ws: ClientConnection, raw: str | bytes) -> None:
        for tap in self.fleet.frame_taps:
            tap(self.spec.id, "in", raw)
        self.fleet.stats.frames_received += 1
        reply = self.protocol.receive(raw)
        if reply is not None:
            await self._send_frame(ws, reply)

    async def _session(self, ws: ClientConnection) -> None:
        self.protocol.connected()
        while True:
            await self._flush(ws)
            deadline = self.protocol.next_deadline()
            try:
                async with asyncio.timeout_at(None if math.isinf(deadline) else deadline) as cm:
                    self._timeout = cm
                    raw: str | bytes | None = await ws.recv()
            except TimeoutError:
                raw = None
            finally:
                self._timeout = None
            if raw is not None:
                await self._on_frame(ws, raw)
            if self._cut is not None:
                raise _LinkCut
            self.protocol.run_timers()

    async def _connect(
        self, url: str, headers: dict[str, str], tls: ssl.SSLContext | None
    ) -> ClientConnection:
        fleet = self.fleet
        async with fleet.connect_slots:
            return await connect(
                url,
                ssl=tls,
                subprotocols=[SUBPROTOCOL[self.spec.version]],  # type: ignore[list-item]
                additional_headers=headers,
                compression=None,
                ping_interval=fleet.ping_interval_s,
                proxy=None,
                open_timeout=fleet.open_timeout_s,
                max_queue=4,
            )

    async def run(self) -> None:
        """Connect, boot and serve until stopped; reconnect with backoff on loss."""
        try:
            await self._run()
        finally:
            for ws in self._dead:
                ws.transport.abort()
            self._dead.clear()

    async def _run(self) -> None:
        fleet = self.fleet
        url = f"{fleet.url.rstrip('/')}/{quote(self.spec.id, safe='')}"
        headers = {}
        if self.spec.password is not None:
            token = base64.b64encode(f"{self.spec.id}:{self.spec.password}".encode()).decode()
            headers["Authorization"] = f"Basic {token}"
        tls = fleet.tls_for(self.spec)
        backoff = 1.0
        while not self.stopping:
            try:
                ws = await self._connect(url, headers, tls)
            except (OSError, InvalidHandshake, InvalidURI, TimeoutError) as e:
                fleet.stats.connect_failures += 1
                self.last_error = f"{type(e).__name__}: {e}"
                await asyncio.sleep(backoff * (0.5 + fleet.jitter()))
                backoff = min(backoff * 2, fleet.max_backoff_s)
                continue
            if ws.subprotocol != SUBPROTOCOL[self.spec.version]:
                fleet.stats.connect_failures += 1
                self.last_error = f"server chose sub-protocol {ws.subprotocol!r}"
                await ws.close()
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, fleet.max_backoff_s)
                continue
            fleet.stats.connects += 1
            backoff = 1.0
            self.ws = ws
            away: float | None = None
            try:
                await self._session(ws)
            except ConnectionClosed:
                pass
            except _LinkCut:
                assert self._cut is not None
                (away, silent), self._cut = self._cut, None
                if silent:
                    ws.transport.pause_reading()  # no pongs, no close: a dead link
                    self._dead.append(ws)
                else:
                    await ws.close()
            finally:
                self.ws = None
                self.protocol.disconnected()
                self._timeout = None
                fleet.stats.disconnects += 1
                if self.stopping:
                    ws.transport.abort()  # cancelled mid-session: drop the socket now
            if not self.stopping:
                await asyncio.sleep(backoff * (0.5 + fleet.jitter()) if away is None else away)
