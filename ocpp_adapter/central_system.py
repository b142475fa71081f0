"""The OCPP-J central system over ``websockets``: the I/O shell around `StationSession`.

It satisfies `ocpp_adapter.ports.OcppGateway`; what it is told comes in
`ServerSettings` and `AdapterSettings`. Its parts:

- `ocpp_adapter.admission`: the handshake's checks (path, credentials, sub-protocol);
- `ocpp_adapter.connection`: one station's connection. One task reads it; a second
  one handles the station's CALLs in order, so a handler that awaits a reply from
  the station (``set_limit`` from inside ``on_event``) never blocks reading that reply;
- `ocpp_adapter.commands`: each command's payload and what its answer means;
- `ocpp_adapter.gc_keeper` and `ocpp_adapter.tls_connection`, below.

- ``ws[s]://HOST:PORT/ocpp/{station_id}``. The station authenticates first,
  then its id is looked up, so an unauthenticated client learns nothing about
  which ids exist:
  - security profile 1/2: once any ``station_passwords`` are configured, every
    station must send HTTP Basic ``station_id:password``; anything else, for a
    known id or not, gets the same 401 after the same work. TLS (profile 2)
    when ``tls_cert``/``tls_key`` are set (`ocpp_adapter.tls`).
  - profile 3 (``tls_client_ca``): every station must present a certificate
    signed by that CA whose CN is its id (403 when the CN is another id); the
    certificate is its credential, ``station_passwords`` are not asked for and
    a Basic header is not looked at.
  - then unknown ids get HTTP 404 unless ``allow_unknown_stations``.
  An id is 1 to 48 printable ASCII characters without ``/`` or ``:``; any
  other path gets the same 404 at once (it depends on the path alone, so it
  tells nothing about which ids exist).
- TLS handshakes are made per connection by `TlsConnection` (``loop.start_tls``)
  rather than by asyncio's server, which drops a failed one silently: a failed
  handshake (no, expired or untrusted client certificate, no common cipher,
  plain HTTP) is logged at WARNING with the peer's address.
- Station-supplied strings (ids, frames) are logged with ``%r``.
- Sub-protocols ``ocpp2.1``, ``ocpp2.0.1`` and ``ocpp1.6``, the newest both sides
  offer chosen. A station without a common sub-protocol: the handshake completes
  without the header and the connection is closed at once (1002).
- Every event of an inbound CALL goes through ``await on_event(event)`` before
  the CALLRESULT is sent; if ``on_event`` raises `EventRefused` the station
  gets that error code (one warning line), if it raises anything else it gets
  InternalError (logged with its traceback) and may resend.
- Outbound: at most one CALL in flight per station, ``call_timeout_s`` and
  ``call_retries`` (idempotent commands only); commands wait (bounded) until
  the station's BootNotification has been accepted and its capabilities read.
  A command awaited inside ``on_event`` for the BootNotification sends the
  boot answer first, so installing the fallback TxDefault there cannot
  deadlock; commands still go before the sampling configuration.
- A station that reconnects without a BootNotification (network loss, or our
  restart) is taken as booted: stations send nothing else before acceptance.
- Garbage collection (process-wide, ``AdapterSettings.gc_*``): everything alive
  is frozen every second so collections never rescan thousands of connections;
  a full collection runs hourly and after many connections closed.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import os
from collections.abc import Awaitable, Callable
from datetime import datetime

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.frames import Close
from websockets.typing import Subprotocol

from ocpp_adapter import commands, dynamic_sender, v2x
from ocpp_adapter.admission import SUBPROTOCOLS, Admission, select_subprotocol, station_id_of
from ocpp_adapter.connection import (
    FrameTap,
    LinkContext,
    StationLink,
    emit,
    log_fields,
    utc_now,
)
from ocpp_adapter.events import (
    ChargingLimitSpec,
    CommandOutcome,
    CommandResult,
    DomainEvent,
    LimitPurpose,
    StationConnected,
    StationDisconnected,
)
from ocpp_adapter.gc_keeper import GcKeeper
from ocpp_adapter.ports import StationInfo, capability_names
from ocpp_adapter.rpc import AdapterError
from ocpp_adapter.settings import AdapterSettings, ServerSettings
from ocpp_adapter.station import SessionSettings, StationSession, TransactionIds
from ocpp_adapter.tls import server_tls_context
from ocpp_adapter.tls_connection import tls_connection_class
from ocpp_adapter.versions import OcppVersion

__all__ = [
    "AdapterSettings",
    "CentralSystem",
    "FrameTap",
    "ListenError",
    "ServerSettings",
    "StationInfo",
]

log = logging.getLogger(__name__)
frames_log = logging.getLogger("ocpp_adapter.frames")
"""Every frame read or written, at DEBUG (``gridshare serve --log-level DEBUG``)."""


class ListenError(AdapterError, OSError):
    """The OCPP port cannot be listened on where it was told (in use, or an
    address that is not this machine's); the message names the address."""


class CentralSystem:
    def __init__(
        self,
        server: ServerSettings,
        on_event: Callable[[DomainEvent], Awaitable[None]],
        *,
        settings: AdapterSettings | None = None,
        clock: Callable[[], datetime] = utc_now,
        transaction_ids: Callable[[], int] | None = None,
    ) -> None:
        """``transaction_ids``: where 1.6 transaction ids come from (the store's
        sequence, so they stay unique across restarts)."""
        self.server = server
        self.on_event = on_event
        self.settings = s = settings or AdapterSettings()
        self.clock = clock
        self._admission = Admission(server)
        self._session_settings = SessionSettings(
            heartbeat_interval_s=s.heartbeat_interval_s,
            meter_interval_s=s.meter_interval_s,
            authorize_id_tags=server.authorize_id_tags,
            validate_replies=s.validate_replies,
            backdate_s=s.backdate_s,
        )
        first = s.first_transaction_id
        self._tx_ids = TransactionIds(first if first is not None else int(clock().timestamp()))
        self._tx_source = transaction_ids
        self._sessions: dict[str, StationSession] = {}
        self._links: dict[str, StationLink] = {}
        self._profiles: dict[str, dict[tuple[int, LimitPurpose], ChargingLimitSpec]] = {}
        self._last_seen: dict[str, datetime] = {}
        self._link_context = LinkContext(
            s, on_event, self._tap, self._last_seen, self._reserve_transaction_id
        )
        self._server: Server | None = None
        self._gc = GcKeeper(s)
        self._dynamic = dynamic_sender.DynamicKeeper(self._command, self._sessions, clock, s)
        self._handshakes: set[asyncio.Task[None]] = set()
        """TLS handshakes in progress."""
        self.port: int = server.port
        self._taps: list[FrameTap] = []

    def add_frame_tap(self, tap: FrameTap) -> None:
        """Call ``tap`` on every frame of every station (a trace, a timing probe)."""
        self._taps.append(tap)

    def _tap(self, station_id: str, direction: str, frame: str | bytes) -> None:
        if frames_log.isEnabledFor(logging.DEBUG):
            frames_log.debug("%r %s %r", station_id, direction, frame)
        for tap in self._taps:
            try:
                tap(station_id, direction, frame)
            except Exception:  # a trace must never break the station's connection
                log.exception("frame tap failed")

    # --- lifecycle ------------------------------------------------------------------------

    async def start(self) -> None:
        """Listen; raises `ListenError` when the address cannot be bound."""
        try:
            await self._listen()
        except OSError as e:
            # asyncio's bind error carries the errno only: named here, where it enters
            if e.errno not in (errno.EADDRINUSE, errno.EADDRNOTAVAIL) or e.filename is not None:
                raise
            where = f"{self.server.host}:{self.server.port}"
            raise ListenError(
                e.errno, f"cannot listen for OCPP on {where}: {os.strerror(e.errno)}"
            ) from e

    async def _listen(self) -> None:
        server, s = self.server, self.settings
        connection: type[ServerConnection] = ServerConnection
        if server.tls_cert is not None and server.tls_key is not None:
            tls = server_tls_context(
                server.tls_cert,
                server.tls_key,
                ca=server.tls_client_ca,
                require_client_cert=server.tls_client_ca is not None,  # security profile 3
            )
            connection = tls_connection_class(tls, s.tls_handshake_timeout_s, self._handshakes)
            if server.tls_client_ca is not None and server.station_passwords:
                log.info("security profile 3: station_passwords are not asked for")
        self._server = await serve(
            self._serve,
            server.host,
            server.port,
            create_connection=connection,
            process_request=self._admission.process_request,
            subprotocols=[Subprotocol(p) for p in SUBPROTOCOLS],
            select_subprotocol=select_subprotocol,
            compression=None,
            max_size=s.max_frame_bytes,
            max_queue=8,
            ping_interval=s.ping_interval_s,
            ping_timeout=s.ping_timeout_s,
            close_timeout=5,
        )
        self.port = self._server.sockets[0].getsockname()[1]
        self._gc.start()
        self._dynamic.start()
        log.info("OCPP central system on %s:%d", server.host, self.port)

    async def stop(self) -> None:
        """Stop accepting; close every station with 1001 (going away)."""
        await self._gc.stop()
        await self._dynamic.stop()
        if self._server is None:
            return
        for task in list(self._handshakes):
            task.cancel()
        await asyncio.gather(*self._handshakes, return_exceptions=True)
        self._server.close(close_connections=True)
        await self._server.wait_closed()
        self._server = None

    # --- a connection ---------------------------------------------------------------------

    async def _serve(self, ws: ServerConnection) -> None:
        sid = station_id_of(ws.request.path if ws.request else "")
        if sid is None or ws.subprotocol is None:
            refused = log_fields(id=sid, reason="no common OCPP sub-protocol")
            log.info("station refused %s", refused)
            await ws.close(1002, "no common OCPP sub-protocol")
            return
        version = OcppVersion(ws.subprotocol)
        ocpp = version.value.removeprefix("ocpp")  # the log's "1.6", "2.0.1"
        session = self._sessions.get(sid)
        if session is None or session.version is not version:
            session = StationSession(sid, version, self._session_settings, self._tx_ids, self.clock)
            self._sessions[sid] = session
        session.pending = None
        link = StationLink(ws, session, self._link_context)
        self._gc.opened()
        old = self._links.get(sid)
        self._links[sid] = link
        if old is not None:
            # this line stands for the old connection's end: it is not logged as lost
            log.info("station reconnected %s", log_fields(id=sid, ocpp=ocpp))
            old.shut()
            old.spawn(old.ws.close(1000, "replaced by a new connection"))
        if session.state.booted:
            link.on_ready(booted_now=False)
        self._last_seen[sid] = link.last_seen
        tls = "no" if self.server.tls_cert is None else "yes"
        log.info("station connected %s", log_fields(id=sid, ocpp=ocpp, tls=tls))
        await emit(self.on_event, StationConnected(sid, version.value, self.clock()))
        worker = asyncio.get_running_loop().create_task(link.work())
        reason = ""
        try:
            async for frame in ws:
                await link.on_frame(frame)
                del frame
        except ConnectionClosed as e:
            reason = str(e)
        finally:
            link.shut()
            self._gc.connection_closed()
            for task in list(link.tasks):
                task.cancel()
            await link.finish(worker)
            await asyncio.gather(*link.tasks, return_exceptions=True)
            if self._links.get(sid) is link:
                del self._links[sid]
                code = ws.close_code
                # the log names the close code ("1000 (OK)"); the event keeps its reason
                said = reason or (str(Close(code, ws.close_reason or "")) if code else "closed")
                reason = reason or (f"{code} {ws.close_reason}".strip() if code else "closed")
                log.info("station lost %s", log_fields(id=sid, ocpp=ocpp, reason=said))
                await emit(self.on_event, StationDisconnected(sid, self.clock(), reason))

    def _new_transaction_id(self) -> int:
        return self._tx_ids.next() if self._tx_source is None else self._tx_source()

    def _reserve_transaction_id(self) -> None:
        self._tx_ids.reserve(self._new_transaction_id())

    # --- commands -------------------------------------------------------------------------

    async def _command(
        self, station_id: str, action: str, build: commands.Build, *, idempotent: bool
    ) -> tuple[CommandResult, dict[str, object] | None]:
        link = self._links.get(station_id)
        if link is None:
            return CommandResult(CommandOutcome.NOT_CONNECTED, "station not connected"), None
        return await link.command(action, build, idempotent=idempotent)

    async def set_limit(self, station_id: str, spec: ChargingLimitSpec) -> CommandResult:
        """Install ``spec`` as a charging profile; replaces ours for the same connector/purpose.

        A 2.1 transaction's profile goes Dynamic (`ocpp_adapter.dynamic_sender`)."""
        session = self._sessions.get(station_id)
        dyn = session is not None and dynamic_sender.wanted(session, spec, self.settings)
        if dyn:
            assert session is not None
            sent = await dynamic_sender.send(
                self._command, session, spec, self.clock, self.settings
            )
            if sent is not None:
                self._record(station_id, spec, sent)
                return sent
        build = commands.set_limit(spec, self.clock, self.settings)
        result, _ = await self._command(station_id, "SetChargingProfile", build, idempotent=True)
        self._record(station_id, spec, result)
        if dyn and session is not None and result.outcome is CommandOutcome.ACCEPTED:
            dynamic_sender.refused(session)
        elif v2x.discharges(spec) and session and result.outcome is CommandOutcome.ACCEPTED:
            dynamic_sender.forget(session, spec.connector)  # the Absolute one replaced it
        return result

    def _record(self, station_id: str, spec: ChargingLimitSpec, result: CommandResult) -> None:
        if result.outcome is CommandOutcome.ACCEPTED:
            self._profiles.setdefault(station_id, {})[(spec.connector, spec.purpose)] = spec

    async def clear_limit(
        self, station_id: str, connector: int, purpose: LimitPurpose = LimitPurpose.TX
    ) -> CommandResult:
        """Remove our profile of ``purpose`` on ``connector``; "nothing to clear" is accepted."""
        build = commands.clear_limit(connector, purpose)
        result, payload = await self._command(
            station_id, "ClearChargingProfile", build, idempotent=True
        )
        if result.outcome is CommandOutcome.REJECTED and (payload or {}).get("status") == "Unknown":
            result = CommandResult(CommandOutcome.ACCEPTED, "no such profile at the station")
        if result.outcome is CommandOutcome.ACCEPTED:
            self._profiles.get(station_id, {}).pop((connector, purpose), None)
            session = self._sessions.get(station_id)
            if session is not None and purpose is LimitPurpose.TX:
                dynamic_sender.forget(session, connector)
        return result

    async def remote_start(
        self,
        station_id: str,
        connector: int,
        id_tag: str,
        spec: ChargingLimitSpec | None = None,
    ) -> CommandResult:
        build = commands.remote_start(
            connector, id_tag, spec, self.clock, self.settings, self._new_transaction_id
        )
        action = self._action(station_id, "RemoteStartTransaction", "RequestStartTransaction")
        result, _ = await self._command(station_id, action, build, idempotent=False)
        return result

    async def remote_stop(self, station_id: str, transaction_id: str) -> CommandResult:
        result, _ = await self._command(
            station_id,
            self._action(station_id, "RemoteStopTransaction", "RequestStopTransaction"),
            commands.remote_stop(transaction_id),
            idempotent=False,
        )
        return result

    async def trigger_message(
        self, station_id: str, message: str, connector: int | None = None
    ) -> CommandResult:
        """Ask the station to send ``message`` now ("MeterValues", "StatusNotification")."""
        build = commands.trigger_message(message, connector)
        result, _ = await self._command(station_id, "TriggerMessage", build, idempotent=True)
        return result

    async def reset(self, station_id: str, hard: bool = False) -> CommandResult:
        build = commands.reset(hard)
        result, _ = await self._command(station_id, "Reset", build, idempotent=False)
        return result

    async def change_availability(
        self, station_id: str, connector: int, operative: bool
    ) -> CommandResult:
        build = commands.change_availability(connector, operative)
        result, _ = await self._command(station_id, "ChangeAvailability", build, idempotent=True)
        return result

    async def get_composite_schedule(
        self, station_id: str, connector: int, duration_s: int, unit: str | None = None
    ) -> tuple[CommandResult, dict[str, object] | None]:
        """What the station will actually do: the answer payload as the station sent it
        (``unit``: "A" or "W", else the station's choice)."""
        build = commands.get_composite_schedule(connector, duration_s, unit)
        return await self._command(station_id, "GetCompositeSchedule", build, idempotent=True)

    def _action(self, station_id: str, v16: str, v201: str) -> str:
        session = self._sessions.get(station_id)
        return v201 if session is not None and session.version.is_v2 else v16

    # --- state ----------------------------------------------------------------------------

    def stations(self) -> list[StationInfo]:
        """Every configured or seen station, connected or not."""
        out = []
        for sid in sorted(self.server.known_stations | set(self._sessions)):
            session = self._sessions.get(sid)
            state = session.state if session is not None else None
            caps = state.capabilities if state else None
            out.append(
                StationInfo(
                    station_id=sid,
                    connected=sid in self._links,
                    protocol=session.version.value if session is not None else None,
                    vendor=(state.vendor if state else "") or None,
                    model=(state.model if state else "") or None,
                    firmware=state.firmware if state else None,
                    last_seen=self._last_seen.get(sid),
                    capabilities=tuple(capability_names(caps)) if caps is not None else (),
                    profiles=dict(self._profiles.get(sid, {})),
                )
            )
        return out
