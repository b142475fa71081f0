"""The OCPP-J central system over ``websockets``: the I/O shell around `StationSession`.

One task reads each connection; a second one per connection handles the
station's CALLs in order, so a handler that awaits a reply from the station
(``set_limit`` from inside ``on_event``) never blocks reading that reply.

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
- TLS handshakes are made per connection by `_TlsConnection` (``loop.start_tls``)
  rather than by asyncio's server, which drops a failed one silently: a failed
  handshake (no, expired or untrusted client certificate, no common cipher,
  plain HTTP) is logged at WARNING with the peer's address.
- Station-supplied strings (ids, frames) are logged with ``%r``.
- Sub-protocols ``ocpp2.0.1`` (preferred) and ``ocpp1.6``. ``ocpp2.1`` is not
  selected: its framing adds message types this server does not speak, so a
  2.1-only station is treated like any station without a common sub-protocol:
  the handshake completes without the header and the connection is closed at
  once (1002).
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
import base64
import binascii
import contextlib
import contextvars
import gc
import hmac
import logging
import secrets
import ssl
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http import HTTPStatus
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response
from websockets.typing import Subprotocol

from ocpp_adapter.events import (
    ChargingLimitSpec,
    CommandOutcome,
    CommandResult,
    DomainEvent,
    EventRefused,
    LimitPurpose,
    StationCapabilities,
    StationConnected,
    StationDisconnected,
)
from ocpp_adapter.profiles import (
    LimitSpecError,
    charging_profile_16,
    charging_profile_201,
    clear_profile_16,
    clear_profile_201,
    resolve,
    set_profile_16,
    set_profile_201,
)
from ocpp_adapter.rpc import Call, Fault, OcppVersion, RpcError, encode_error, error_code
from ocpp_adapter.station import (
    Answer,
    Handled,
    Refused,
    SessionSettings,
    StationSession,
    TransactionIds,
)
from ocpp_adapter.tls import server_tls_context

if TYPE_CHECKING:
    from gridshare.config import GridshareConfig

log = logging.getLogger(__name__)
frames_log = logging.getLogger("ocpp_adapter.frames")
"""Every frame read or written, at DEBUG (``gridshare serve --log-level DEBUG``)."""

FrameTap = Callable[[str, str, str | bytes], None]
"""Sees every OCPP frame: (station id, ``"in"`` or ``"out"``, the frame), called
when a frame is read (before it is handled) and after one is written."""

PATH_PREFIX = "/ocpp/"
SUBPROTOCOLS = (OcppVersion.V201.value, OcppVersion.V16.value)
_MAX_ID_LEN = 48
_NO_PASSWORD = secrets.token_bytes(24)


def _utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class AdapterSettings:
    call_timeout_s: float = 10.0
    """Per attempt. A station that does not answer holds its own queue this long
    (× 1 + ``call_retries``); keep it below the caller's own command timeout."""
    call_retries: int = 1
    """Resends after a timeout, for idempotent commands (profiles, reads)."""
    boot_wait_s: float = 60.0
    """How long a command waits for a connected station to finish booting."""
    max_queued_calls: int = 32
    """Commands waiting per station (for boot or for the CALL before them)."""
    heartbeat_interval_s: int = 300
    meter_interval_s: int | None = 10
    ping_interval_s: float | None = 60.0
    ping_timeout_s: float | None = 30.0
    max_frame_bytes: int = 256 * 1024
    bad_frame_limit: int = 20
    """Invalid frames a station may send within ``bad_frame_window_s`` before we close it."""
    bad_frame_window_s: float = 60.0
    max_inbound_calls: int = 8
    """CALLs a station may have waiting for our answer (the spec allows one)."""
    validate_replies: bool = False
    """Check our own CALLRESULT payloads against the schemas (tests)."""
    backdate_s: float = 5.0
    default_max_periods: int = 24
    rate_limit_backoff_s: float = 60.0
    gc_freeze_interval_s: float | None = 1.0
    """Collect the young generation, then move every object the GC tracks into
    its permanent generation (`gc.freeze`), this often. Frozen objects are never
    scanned and are still freed when their last reference goes. Thousands of
    connections are ~200 tracked objects each, and after every message ~30 new
    ones (websockets' pending read, our worker's wait) live a whole meter
    interval: generational collection promotes those, and full collections then
    rescan everything, stalling the loop for 0.3-1.5 s at 5,000 stations. Handling
    a message leaves no cyclic garbage, and cycles that die young are collected
    before each freeze. None leaves the collector alone. Process-wide (the whole
    service), see `_GcTuning`."""
    gc_threshold0: int | None = 10_000
    """Generation-0 threshold while running (CPython's default: 700): between
    freezes young collections are then rare, and each (~10k objects) still takes
    about a millisecond. None keeps the interpreter's thresholds."""
    gc_full_collect_s: float = 3600.0
    """Unfreeze and collect everything this often, so cycles that became garbage
    after being frozen are freed: one pause (~1 s at 5,000 stations) per interval."""
    gc_full_collect_closed: int = 1000
    """... or once this many connections closed since the last such collection:
    a closed connection's objects are reference cycles inside ``websockets`` and
    ``asyncio``, frozen while it was open."""
    gc_freeze_settle_s: float = 2.0
    """That collection waits until no connection came or went for this long, so
    a reconnect wave costs one pause, not one per batch of closes."""
    first_transaction_id: int | None = None
    """First 1.6 transaction id without a ``transaction_ids`` source (default: the
    clock's Unix seconds)."""
    tls_handshake_timeout_s: float = 10.0


@dataclass(frozen=True)
class StationInfo:
    station_id: str
    protocol: str | None
    connected: bool
    last_seen: datetime | None
    vendor: str
    model: str
    firmware: str | None
    capabilities: StationCapabilities | None
    profiles: dict[tuple[int, LimitPurpose], ChargingLimitSpec] = field(default_factory=dict)
    """Last accepted limit per (connector, purpose)."""


class _GcTuning:
    """Process-wide collector settings, held while any central system runs."""

    def __init__(self) -> None:
        self.users = 0
        self.saved: tuple[int, int, int] | None = None

    def acquire(self, threshold0: int | None) -> None:
        self.users += 1
        if self.users == 1 and threshold0 is not None:
            self.saved = gc.get_threshold()
            gc.set_threshold(threshold0, *self.saved[1:])

    def release(self) -> None:
        self.users -= 1
        if self.users == 0:
            if self.saved is not None:
                gc.set_threshold(*self.saved)
                self.saved = None
            gc.unfreeze()


_GC = _GcTuning()


# The link whose inbound CALL is being handled: lets a command issued from inside
# on_event for a BootNotification send the boot answer first instead of waiting for it.
_DISPATCHING: contextvars.ContextVar[_Link | None] = contextvars.ContextVar(
    "ocpp_dispatching", default=None
)


class _Link:
    """One WebSocket connection of a station."""

    def __init__(self, ws: ServerConnection, session: StationSession) -> None:
        self.ws = ws
        self.session = session
        self.station_id = session.station_id
        self.inbound: asyncio.Queue[Call | None] = asyncio.Queue()
        """The station's CALLs in arrival order; None ends the worker."""
        self.call_lock = asyncio.Lock()
        self.waiting: tuple[str, asyncio.Future[Answer | None]] | None = None
        """Our CALL in flight; its future gets None if the connection goes."""
        self.ready = asyncio.Event()
        """The station may be sent CALLs (boot accepted, now or on an earlier connection)."""
        self.configured = asyncio.Event()
        """Capabilities known (or given up on): commands may go."""
        self.boot_answer: Handled | None = None
        self.queued = 0
        self.commands = 0
        """Commands in progress or waiting; background configuration yields to them."""
        self.no_commands = asyncio.Event()
        self.no_commands.set()
        self.closed = False
        self.bad_frames: deque[float] = deque()
        self.last_seen = _utc_now()
        self.tasks: set[asyncio.Task[Any]] = set()

    def spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    def shut(self) -> None:
        """No more calls: fail the one in flight and wake every waiting command."""
        self.closed = True
        if self.waiting is not None and not self.waiting[1].done():
            # A result, not an exception: a raised exception stored in the future
            # would hold the awaiting frames through its traceback (a cycle).
            self.waiting[1].set_result(None)
        self.ready.set()
        self.configured.set()


class _TlsConnection(ServerConnection):
    """A WebSocket connection that makes its own TLS handshake (``loop.start_tls``).

    asyncio's TLS server drops a failed handshake without telling anyone, and
    only here is the peer's address known. Subclassed per central system
    (`_tls_connection_class`) to carry its context; given to ``serve`` as
    ``create_connection``.
    """

    tls_context: ssl.SSLContext
    handshake_timeout_s: float
    pending: set[asyncio.Task[None]]
    """Handshakes in progress (cancelled when the server stops)."""
    secured = False
    """The TLS layer is in place and websockets has the connection."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        transport.pause_reading()  # start_tls reads; nothing must reach us before it
        task = self.loop.create_task(self._secure(transport))
        self.pending.add(task)
        task.add_done_callback(self.pending.discard)

    async def _secure(self, raw: asyncio.Transport) -> None:
        peer = _address(raw.get_extra_info("peername"))
        try:
            secure = await self.loop.start_tls(
                raw,
                self,
                self.tls_context,
                server_side=True,
                ssl_handshake_timeout=self.handshake_timeout_s,
                ssl_shutdown_timeout=self.close_timeout,
            )
        except ssl.SSLError as e:
            # "certificate has expired", or OpenSSL's code as words ("no shared cipher")
            reason = getattr(e, "verify_message", None) or (e.reason or str(e))
            reason = reason.replace("_", " ").lower() if reason.isupper() else reason
            log.warning("TLS handshake with %s failed: %s", peer, reason)
            return
        except OSError as e:  # reset, closed or timed out before the handshake ended
            log.info("TLS handshake with %s did not finish: %s", peer, str(e) or type(e).__name__)
            return
        if secure is None:  # the peer went away as it finished
            raw.close()
            return
        self.secured = True
        super().connection_made(secure)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.secured:  # else websockets never saw this connection
            super().connection_lost(exc)


def _tls_connection_class(
    context: ssl.SSLContext, timeout_s: float, handshakes: set[asyncio.Task[None]]
) -> type[ServerConnection]:
    class Connection(_TlsConnection):
        tls_context = context
        handshake_timeout_s = timeout_s
        pending = handshakes

    return Connection


def _address(peer: Any) -> str:
    if isinstance(peer, tuple) and len(peer) >= 2:
        host, port = peer[0], peer[1]
        return f"[{host}]:{port}" if ":" in str(host) else f"{host}:{port}"
    return repr(peer)


def certificate_name(cert: dict[str, Any] | None) -> str | None:
    """The subject CN of a verified peer certificate (``ssl`` form), if any."""
    for rdn in (cert or {}).get("subject", ()):
        for key, value in rdn:
            if key == "commonName":
                return str(value)
    return None


class CentralSystem:
    def __init__(
        self,
        config: GridshareConfig,
        on_event: Callable[[DomainEvent], Awaitable[None]],
        *,
        settings: AdapterSettings | None = None,
        clock: Callable[[], datetime] = _utc_now,
        transaction_ids: Callable[[], int] | None = None,
    ) -> None:
        """``transaction_ids``: where 1.6 transaction ids come from (the store's
        sequence, so they stay unique across restarts)."""
        self.config = config
        self.on_event = on_event
        self.settings = settings or AdapterSettings()
        self.clock = clock
        server = config.server
        self._known = {c.id for c in config.site.chargers}
        self._passwords = {
            k: v.get_secret_value().encode() for k, v in server.station_passwords.items()
        }
        tags = server.authorize_id_tags
        s = self.settings
        self._session_settings = SessionSettings(
            heartbeat_interval_s=s.heartbeat_interval_s,
            meter_interval_s=s.meter_interval_s,
            authorize_id_tags=frozenset(tags) if tags is not None else None,
            validate_replies=s.validate_replies,
        )
        first = s.first_transaction_id
        self._tx_ids = TransactionIds(first if first is not None else int(clock().timestamp()))
        self._tx_source = transaction_ids
        self._sessions: dict[str, StationSession] = {}
        self._links: dict[str, _Link] = {}
        self._profiles: dict[str, dict[tuple[int, LimitPurpose], ChargingLimitSpec]] = {}
        self._last_seen: dict[str, datetime] = {}
        self._server: Server | None = None
        self._gc_task: asyncio.Task[None] | None = None
        self._handshakes: set[asyncio.Task[None]] = set()
        """TLS handshakes in progress."""
        self._churn = 0
        """Connections opened or closed so far (the GC keeper waits for it to settle)."""
        self._closed = 0
        self._gc_tuned = False
        self.port: int = server.ocpp_port
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
        server, s = self.config.server, self.settings
        connection: type[ServerConnection] = ServerConnection
        if server.tls_cert is not None and server.tls_key is not None:
            tls = server_tls_context(
                server.tls_cert,
                server.tls_key,
                ca=server.tls_client_ca,
                require_client_cert=server.tls_client_ca is not None,  # security profile 3
            )
            connection = _tls_connection_class(tls, s.tls_handshake_timeout_s, self._handshakes)
            if server.tls_client_ca is not None and self._passwords:
                log.info("security profile 3: station_passwords are not asked for")
        self._server = await serve(
            self._serve,
            server.host,
            server.ocpp_port,
            create_connection=connection,
            process_request=self._process_request,
            subprotocols=[Subprotocol(p) for p in SUBPROTOCOLS],
            select_subprotocol=self._select_subprotocol,
            compression=None,
            max_size=s.max_frame_bytes,
            max_queue=8,
            ping_interval=s.ping_interval_s,
            ping_timeout=s.ping_timeout_s,
            close_timeout=5,
        )
        self.port = self._server.sockets[0].getsockname()[1]
        if s.gc_freeze_interval_s is not None:
            _GC.acquire(s.gc_threshold0)
            self._gc_tuned = True
            self._gc_task = asyncio.get_running_loop().create_task(self._gc_keeper())
        log.info("OCPP central system on %s:%d", server.host, self.port)

    async def stop(self) -> None:
        """Stop accepting; close every station with 1001 (going away)."""
        if self._gc_task is not None:
            self._gc_task.cancel()
            await asyncio.gather(self._gc_task, return_exceptions=True)
            self._gc_task = None
        if self._gc_tuned:
            self._gc_tuned = False
            _GC.release()
        if self._server is None:
            return
        for task in list(self._handshakes):
            task.cancel()
        await asyncio.gather(*self._handshakes, return_exceptions=True)
        self._server.close(close_connections=True)
        await self._server.wait_closed()
        self._server = None

    async def _gc_keeper(self) -> None:
        """Freeze everything now and then so collections only scan what is new."""
        s = self.settings
        interval = s.gc_freeze_interval_s
        assert interval is not None
        now = time.monotonic()
        last_full = last_change = now
        seen, closed_at_full = self._churn, self._closed
        while True:
            await asyncio.sleep(interval)
            now = time.monotonic()
            if self._churn != seen:
                seen, last_change = self._churn, now
            closed = self._closed - closed_at_full
            if now - last_full >= s.gc_full_collect_s or (
                closed >= s.gc_full_collect_closed and now - last_change >= s.gc_freeze_settle_s
            ):
                gc.unfreeze()
                gc.collect()
                last_full, closed_at_full = now, self._closed
            else:
                # Cycles that died young; scans only what came since the last freeze
                # (~10 ms at 5,000 stations on a busy 2-core machine).
                gc.collect(0)
            gc.freeze()

    # --- handshake ------------------------------------------------------------------------

    def _station_id(self, path: str) -> str | None:
        raw = urlsplit(path).path
        if not raw.startswith(PATH_PREFIX):
            return None
        sid = unquote(raw[len(PATH_PREFIX) :])
        # OCPP's identity is a CiString: printable ASCII. A newline or an escape
        # would reach every log line and file name that carries the id.
        if not sid or len(sid) > _MAX_ID_LEN or "/" in sid or ":" in sid:
            return None
        if not (sid.isascii() and sid.isprintable()):
            return None
        return sid

    def _process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        sid = self._station_id(request.path)
        if sid is None:
            log.info("refused connection to %r: not a station's path", request.path)
            return connection.respond(HTTPStatus.NOT_FOUND, "Unknown charging station\n")
        server = self.config.server
        known = sid in self._known
        # Who it is before whether the id exists: a refusal must not tell which ids do.
        if server.tls_client_ca is not None:  # profile 3: the certificate is the credential
            name = certificate_name(connection.transport.get_extra_info("peercert"))
            if name != sid:
                log.warning("%r: client certificate is for %r", sid, name)
                return connection.respond(
                    HTTPStatus.FORBIDDEN, "Client certificate is not this station's\n"
                )
        elif self._passwords and not self._authorized(sid, request.headers):
            log.warning("%r: wrong or missing credentials%s", sid, "" if known else " (unknown id)")
            response = connection.respond(HTTPStatus.UNAUTHORIZED, "Unauthorized\n")
            response.headers["WWW-Authenticate"] = 'Basic realm="ocpp", charset="UTF-8"'
            return response
        if not known and not server.allow_unknown_stations:
            log.info("refused connection to %r: unknown station", request.path)
            return connection.respond(HTTPStatus.NOT_FOUND, "Unknown charging station\n")
        return None

    def _authorized(self, sid: str, headers: Headers) -> bool:
        expected = self._passwords.get(sid)
        header = headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            user, sep, password = base64.b64decode(token, validate=True).partition(b":")
        except (binascii.Error, ValueError):
            return False
        # Both compared in constant time, the station's input second (the time
        # follows its length, not ours), and an id without a password against a
        # stand-in, so timing tells neither the password nor which ids exist.
        user_ok = hmac.compare_digest(sid.encode(), user)
        password_ok = hmac.compare_digest(
            expected if expected is not None else _NO_PASSWORD, password
        )
        return bool(sep) and user_ok and password_ok and expected is not None

    @staticmethod
    def _select_subprotocol(
        connection: ServerConnection, offered: Sequence[Subprotocol]
    ) -> Subprotocol | None:
        for ours in SUBPROTOCOLS:
            if ours in offered:
                return Subprotocol(ours)
        return None  # handshake without the header; _serve closes it at once

    # --- a connection ---------------------------------------------------------------------

    async def _serve(self, ws: ServerConnection) -> None:
        sid = self._station_id(ws.request.path if ws.request else "")
        if sid is None or ws.subprotocol is None:
            log.info("%r: no common OCPP sub-protocol; closing", sid)
            await ws.close(1002, "no common OCPP sub-protocol")
            return
        version = OcppVersion(ws.subprotocol)
        session = self._sessions.get(sid)
        if session is None or session.version is not version:
            session = StationSession(sid, version, self._session_settings, self._tx_ids, self.clock)
            self._sessions[sid] = session
        session.pending = None
        link = _Link(ws, session)
        self._churn += 1
        old = self._links.get(sid)
        self._links[sid] = link
        if old is not None:
            log.info("%r: reconnected; closing the previous connection", sid)
            old.shut()
            old.spawn(old.ws.close(1000, "replaced by a new connection"))
        if session.state.booted:
            self._on_ready(link, booted_now=False)
        self._last_seen[sid] = link.last_seen
        await self._emit(StationConnected(sid, version.value, self.clock()))
        worker = asyncio.get_running_loop().create_task(self._work(link))
        reason = ""
        try:
            async for frame in ws:
                await self._on_frame(link, frame)
                del frame
        except ConnectionClosed as e:
            reason = str(e)
        finally:
            link.shut()
            self._churn += 1
            self._closed += 1
            for task in list(link.tasks):
                task.cancel()
            await self._finish(link, worker)
            await asyncio.gather(*link.tasks, return_exceptions=True)
            if self._links.get(sid) is link:
                del self._links[sid]
                code = ws.close_code
                reason = reason or (f"{code} {ws.close_reason}".strip() if code else "closed")
                await self._emit(StationDisconnected(sid, self.clock(), reason))

    async def _finish(self, link: _Link, worker: asyncio.Task[None]) -> None:
        """Let the CALL being handled finish storing its events; drop the ones still queued.

        Their answers cannot be sent any more: the station resends them.
        """
        while not link.inbound.empty():
            link.inbound.get_nowait()
        link.inbound.put_nowait(None)
        try:
            await asyncio.wait_for(worker, self.settings.call_timeout_s)
        except TimeoutError:
            log.warning("%r: on_event still busy after disconnect; cancelled", link.station_id)

    async def _emit(self, event: DomainEvent) -> None:
        try:
            await self.on_event(event)
        except EventRefused as e:  # no message of the station's to answer
            log.warning("%s refused: %s %r", type(event).__name__, e.code, e.description)
        except Exception:
            log.exception("on_event failed for %s", type(event).__name__)

    async def _on_frame(self, link: _Link, frame: str | bytes) -> None:
        self._tap(link.station_id, "in", frame)
        link.last_seen = now = _utc_now()
        self._last_seen[link.station_id] = now
        session = link.session
        outcome = session.parse(frame)
        if isinstance(outcome, Refused):
            await self._refuse(link, outcome)
        elif isinstance(outcome, Call):
            if link.inbound.qsize() >= self.settings.max_inbound_calls:
                reply = encode_error(
                    outcome.unique_id,
                    error_code(Fault.RPC_FRAMEWORK, session.version),
                    "too many CALLs waiting for an answer",
                )
                await self._refuse(link, Refused(reply, "inbound queue full"))
            else:
                link.inbound.put_nowait(outcome)
        else:
            answer = session.handle(outcome)
            if isinstance(answer, Answer):
                waiting = link.waiting
                if waiting is not None and waiting[0] == answer.unique_id and not waiting[1].done():
                    waiting[1].set_result(answer)

    async def _refuse(self, link: _Link, refused: Refused) -> None:
        log.warning("%r: bad frame: %r", link.station_id, refused.reason)
        now = time.monotonic()
        bad = link.bad_frames
        bad.append(now)
        while bad and bad[0] < now - self.settings.bad_frame_window_s:
            bad.popleft()
        if len(bad) > self.settings.bad_frame_limit:
            log.warning("%r: too many bad frames; closing", link.station_id)
            link.shut()
            await link.ws.close(1008, "too many invalid frames")
            return
        if refused.reply is not None:
            await self._send(link, refused.reply)

    async def _send(self, link: _Link, frame: str) -> None:
        with contextlib.suppress(ConnectionClosed):
            await self._write(link, frame)

    async def _write(self, link: _Link, frame: str) -> None:
        await link.ws.send(frame)
        self._tap(link.station_id, "out", frame)

    async def _work(self, link: _Link) -> None:
        """The station's CALLs, one at a time: events stored, then the answer sent."""
        while (call := await link.inbound.get()) is not None:
            await self._handle_call(link, call)
            # Not kept while waiting for the next CALL (a meter interval): objects
            # alive that long are promoted to the GC's old generation.
            del call

    async def _handle_call(self, link: _Link, call: Call) -> None:
        if call.action == "BootNotification":
            # A station (re)booting takes no CALLs until we accepted it.
            link.configured.clear()
        try:
            if call.action == "StartTransaction" and link.session.version is OcppVersion.V16:
                # Asked here (the store commits it) so that the session does no I/O.
                self._tx_ids.reserve(self._new_transaction_id())
            outcome = link.session.handle(call)
        except Exception:
            log.exception("%r: failed to handle %s", link.station_id, call.action)
            code = error_code(Fault.INTERNAL, link.session.version)
            await self._send(link, encode_error(call.unique_id, code, "internal error"))
            return
        if isinstance(outcome, Refused):
            await self._refuse(link, outcome)
            return
        assert isinstance(outcome, Handled)
        if outcome.boot_accepted:
            link.boot_answer = outcome
        token = _DISPATCHING.set(link)
        try:
            for event in outcome.events:
                await self.on_event(event)
        except EventRefused as e:
            log.warning(
                "%r: %s refused: %s %r", link.station_id, call.action, e.code, e.description
            )
            await self._not_accepted(link, call, outcome, e.code, e.description)
            return
        except Exception:
            log.exception("%r: on_event failed for %s", link.station_id, call.action)
            code = error_code(Fault.INTERNAL, link.session.version)
            await self._not_accepted(link, call, outcome, code, "could not store the message")
            return
        finally:
            _DISPATCHING.reset(token)
        if outcome.boot_accepted:
            if link.boot_answer is outcome:
                await self._answer_boot(link, outcome)
            return
        await self._send(link, outcome.reply)
        if outcome.commit is not None:
            outcome.commit()
        if not link.ready.is_set() and link.session.state.booted:
            self._on_ready(link, booted_now=False)

    def _new_transaction_id(self) -> int:
        return self._tx_ids.next() if self._tx_source is None else self._tx_source()

    async def _not_accepted(
        self, link: _Link, call: Call, outcome: Handled, code: str, description: str
    ) -> None:
        # Unless the boot answer already went (a command from on_event flushed it).
        flushed = outcome.boot_accepted and link.boot_answer is not outcome
        link.boot_answer = None
        if not flushed:
            await self._send(link, encode_error(call.unique_id, code, description))

    async def _answer_boot(self, link: _Link, answer: Handled) -> None:
        link.boot_answer = None
        await self._send(link, answer.reply)
        if answer.commit is not None:
            answer.commit()
        self._on_ready(link, booted_now=True)

    def _on_ready(self, link: _Link, *, booted_now: bool) -> None:
        """The station may now get CALLs: learn its capabilities unless known."""
        if link.closed:
            return
        link.ready.set()
        if booted_now or link.session.state.capabilities is None:
            link.configured.clear()
            link.spawn(self._configure(link))
        else:
            link.configured.set()

    async def _configure(self, link: _Link) -> None:
        settings, session = self.settings, link.session
        action, payload = session.capability_request()
        answer = await self._exchange(link, action, payload, retries=settings.call_retries)
        caps = session.apply_capabilities(answer.payload if isinstance(answer, Answer) else None)
        link.configured.set()
        await self._emit(caps)
        for action, payload in session.sampling_requests():
            # After any command already waiting, e.g. the fallback profile at boot.
            await link.no_commands.wait()
            result = await self._exchange(link, action, payload, retries=0)
            if not isinstance(result, Answer) or result.error is not None:
                log.info("%r: %s not applied: %s", link.station_id, action, result)

    # --- outbound -------------------------------------------------------------------------

    async def _exchange(
        self, link: _Link, action: str, payload: dict[str, Any], *, retries: int
    ) -> Answer | CommandResult:
        """Send one CALL (resent up to ``retries`` times on timeout) and wait for its answer."""
        settings = self.settings
        async with link.call_lock:
            for attempt in range(retries + 1):
                if link.closed:
                    return CommandResult(CommandOutcome.NOT_CONNECTED, "connection closed")
                try:
                    unique_id, frame = link.session.call(action, payload)
                except RpcError as e:
                    log.error("%r: our %s payload is invalid: %s", link.station_id, action, e)
                    return CommandResult(CommandOutcome.ERROR, f"invalid {action}: {e}")
                future: asyncio.Future[Answer | None] = asyncio.get_running_loop().create_future()
                link.waiting = (unique_id, future)
                try:
                    await self._write(link, frame)
                    answer = await asyncio.wait_for(future, settings.call_timeout_s)
                    if answer is None:
                        return CommandResult(CommandOutcome.NOT_CONNECTED, "connection closed")
                    return answer
                except TimeoutError:
                    log.warning(
                        "%r: no answer to %s (attempt %d)", link.station_id, action, attempt + 1
                    )
                except ConnectionClosed:
                    return CommandResult(CommandOutcome.NOT_CONNECTED, "connection closed")
                finally:
                    link.waiting = None
                    link.session.forget(unique_id)
        return CommandResult(CommandOutcome.TIMEOUT, f"no answer to {action}")

    async def _command(
        self,
        station_id: str,
        action: str,
        build: Callable[[StationSession], dict[str, Any]],
        *,
        idempotent: bool,
    ) -> tuple[CommandResult, dict[str, Any] | None]:
        link = self._links.get(station_id)
        if link is None:
            return CommandResult(CommandOutcome.NOT_CONNECTED, "station not connected"), None
        link.commands += 1
        link.no_commands.clear()
        try:
            return await self._run_command(link, action, build, idempotent=idempotent)
        finally:
            link.commands -= 1
            if link.commands == 0:
                link.no_commands.set()

    async def _run_command(
        self,
        link: _Link,
        action: str,
        build: Callable[[StationSession], dict[str, Any]],
        *,
        idempotent: bool,
    ) -> tuple[CommandResult, dict[str, Any] | None]:
        if not link.configured.is_set():
            pending_boot = link.boot_answer
            if pending_boot is not None and _DISPATCHING.get() is link:
                # Called from on_event while the boot answer waits for that very call.
                await self._answer_boot(link, pending_boot)
            if link.queued >= self.settings.max_queued_calls:
                return CommandResult(CommandOutcome.REJECTED, "too many queued commands"), None
            link.queued += 1
            try:
                await asyncio.wait_for(link.configured.wait(), self.settings.boot_wait_s)
            except TimeoutError:
                return CommandResult(CommandOutcome.NOT_CONNECTED, "station has not booted"), None
            finally:
                link.queued -= 1
            if link.closed:
                return CommandResult(CommandOutcome.NOT_CONNECTED, "connection closed"), None
        try:
            payload = build(link.session)
        except LimitSpecError as e:
            return CommandResult(CommandOutcome.REJECTED, f"invalid limit: {e}"), None
        retries = self.settings.call_retries if idempotent else 0
        answer = await self._exchange(link, action, payload, retries=retries)
        if isinstance(answer, CommandResult):
            return answer, None
        return self._result(answer), answer.payload

    def _result(self, answer: Answer) -> CommandResult:
        if answer.error is not None:
            if answer.error_code == "RateLimitExceeded":
                return CommandResult(
                    CommandOutcome.RATE_LIMITED, answer.error, self.settings.rate_limit_backoff_s
                )
            return CommandResult(CommandOutcome.ERROR, answer.error)
        payload = answer.payload or {}
        status = payload.get("status", "")
        info = payload.get("statusInfo") or {}
        reason = info.get("reasonCode", "")
        if reason == "RateLimitExceeded":
            retry = _seconds(info.get("additionalInfo"))
            return CommandResult(
                CommandOutcome.RATE_LIMITED,
                f"{status}: {reason}",
                retry if retry is not None else self.settings.rate_limit_backoff_s,
            )
        if status == "Accepted":
            return CommandResult(CommandOutcome.ACCEPTED)
        if status == "Scheduled":
            return CommandResult(CommandOutcome.ACCEPTED, "scheduled")
        return CommandResult(CommandOutcome.REJECTED, f"{status}: {reason}".rstrip(": "))

    # --- public commands ------------------------------------------------------------------

    async def set_limit(self, station_id: str, spec: ChargingLimitSpec) -> CommandResult:
        """Install ``spec`` as a charging profile; replaces ours for the same connector/purpose."""

        def build(session: StationSession) -> dict[str, Any]:
            schedule = resolve(
                spec,
                session.state.capabilities,
                self.clock(),
                backdate_s=self.settings.backdate_s,
                default_max_periods=self.settings.default_max_periods,
            )
            if session.version is OcppVersion.V16:
                return set_profile_16(spec, schedule)
            return set_profile_201(spec, schedule)

        result, _ = await self._command(station_id, "SetChargingProfile", build, idempotent=True)
        if result.outcome is CommandOutcome.ACCEPTED:
            self._profiles.setdefault(station_id, {})[(spec.connector, spec.purpose)] = spec
        return result

    async def clear_limit(
        self, station_id: str, connector: int, purpose: LimitPurpose = LimitPurpose.TX
    ) -> CommandResult:
        """Remove our profile of ``purpose`` on ``connector``; "nothing to clear" is accepted."""

        def build(session: StationSession) -> dict[str, Any]:
            if session.version is OcppVersion.V16:
                return clear_profile_16(connector, purpose)
            return clear_profile_201(connector, purpose)

        result, payload = await self._command(
            station_id, "ClearChargingProfile", build, idempotent=True
        )
        if result.outcome is CommandOutcome.REJECTED and (payload or {}).get("status") == "Unknown":
            result = CommandResult(CommandOutcome.ACCEPTED, "no such profile at the station")
        if result.outcome is CommandOutcome.ACCEPTED:
            self._profiles.get(station_id, {}).pop((connector, purpose), None)
        return result

    async def remote_start(
        self,
        station_id: str,
        connector: int,
        id_tag: str,
        spec: ChargingLimitSpec | None = None,
    ) -> CommandResult:
        def build(session: StationSession) -> dict[str, Any]:
            profile: dict[str, Any] | None = None
            if spec is not None:
                schedule = resolve(
                    spec,
                    session.state.capabilities,
                    self.clock(),
                    backdate_s=self.settings.backdate_s,
                    default_max_periods=self.settings.default_max_periods,
                )
                make = (
                    charging_profile_16
                    if session.version is OcppVersion.V16
                    else charging_profile_201
                )
                profile = make(spec, schedule, in_remote_start=True)
            if session.version is OcppVersion.V16:
                p16: dict[str, Any] = {"connectorId": connector, "idTag": id_tag}
                if profile is not None:
                    p16["chargingProfile"] = profile
                return p16
            p201: dict[str, Any] = {
                "evseId": connector,
                "remoteStartId": self._new_transaction_id(),
                "idToken": {"idToken": id_tag, "type": "Central"},
            }
            if profile is not None:
                p201["chargingProfile"] = profile
            return p201

        action = self._action(station_id, "RemoteStartTransaction", "RequestStartTransaction")
        result, _ = await self._command(station_id, action, build, idempotent=False)
        return result

    async def remote_stop(self, station_id: str, transaction_id: str) -> CommandResult:
        def build(session: StationSession) -> dict[str, Any]:
            if session.version is OcppVersion.V16:
                try:
                    return {"transactionId": int(transaction_id)}
                except ValueError:
                    raise LimitSpecError(f"1.6 transaction id {transaction_id!r}") from None
            return {"transactionId": transaction_id}

        result, _ = await self._command(
            station_id,
            self._action(station_id, "RemoteStopTransaction", "RequestStopTransaction"),
            build,
            idempotent=False,
        )
        return result

    async def trigger_message(
        self, station_id: str, message: str, connector: int | None = None
    ) -> CommandResult:
        """Ask the station to send ``message`` now ("MeterValues", "StatusNotification")."""

        def build(session: StationSession) -> dict[str, Any]:
            payload: dict[str, Any] = {"requestedMessage": message}
            if connector is not None:
                if session.version is OcppVersion.V16:
                    payload["connectorId"] = connector
                else:
                    payload["evse"] = {"id": connector}
            return payload

        result, _ = await self._command(station_id, "TriggerMessage", build, idempotent=True)
        return result

    async def reset(self, station_id: str, hard: bool = False) -> CommandResult:
        def build(session: StationSession) -> dict[str, Any]:
            if session.version is OcppVersion.V16:
                return {"type": "Hard" if hard else "Soft"}
            return {"type": "Immediate" if hard else "OnIdle"}

        result, _ = await self._command(station_id, "Reset", build, idempotent=False)
        return result

    async def change_availability(
        self, station_id: str, connector: int, operative: bool
    ) -> CommandResult:
        status = "Operative" if operative else "Inoperative"

        def build(session: StationSession) -> dict[str, Any]:
            if session.version is OcppVersion.V16:
                return {"connectorId": connector, "type": status}
            payload: dict[str, Any] = {"operationalStatus": status}
            if connector:
                payload["evse"] = {"id": connector}
            return payload

        result, _ = await self._command(station_id, "ChangeAvailability", build, idempotent=True)
        return result

    async def get_composite_schedule(
        self, station_id: str, connector: int, duration_s: int
    ) -> tuple[CommandResult, dict[str, Any] | None]:
        """What the station will actually do: the answer payload as the station sent it."""

        def build(session: StationSession) -> dict[str, Any]:
            if session.version is OcppVersion.V16:
                return {"connectorId": connector, "duration": duration_s}
            return {"evseId": connector, "duration": duration_s}

        return await self._command(station_id, "GetCompositeSchedule", build, idempotent=True)

    def _action(self, station_id: str, v16: str, v201: str) -> str:
        session = self._sessions.get(station_id)
        return v201 if session is not None and session.version is OcppVersion.V201 else v16

    # --- state ----------------------------------------------------------------------------

    def stations(self) -> list[StationInfo]:
        """Every configured or seen station, connected or not."""
        ids = sorted(self._known | set(self._sessions))
        out = []
        for sid in ids:
            session = self._sessions.get(sid)
            link = self._links.get(sid)
            state = session.state if session is not None else None
            out.append(
                StationInfo(
                    station_id=sid,
                    protocol=session.version.value if session is not None else None,
                    connected=link is not None,
                    last_seen=self._last_seen.get(sid),
                    vendor=state.vendor if state else "",
                    model=state.model if state else "",
                    firmware=state.firmware if state else None,
                    capabilities=state.capabilities if state else None,
                    profiles=dict(self._profiles.get(sid, {})),
                )
            )
        return out


def _seconds(value: Any) -> float | None:
    try:
        return float(value) if value is not None else None
    except (TypeError, ValueError):
        return None
