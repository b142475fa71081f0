"""One station's WebSocket connection: the I/O shell around its `StationSession`.

One task reads the connection (`StationLink.on_frame`); a second one handles
the station's CALLs in order (`StationLink.work`), so a handler that awaits a
reply from the station (``set_limit`` from inside ``on_event``) never blocks
reading that reply. Outbound, one CALL is in flight at a time
(`StationLink.command`).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import json
import logging
import re
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed

from ocpp_adapter.commands import Build, command_result
from ocpp_adapter.events import (
    CommandOutcome,
    CommandResult,
    DomainEvent,
    EventRefused,
    StationBooted,
)
from ocpp_adapter.profiles import LimitSpecError
from ocpp_adapter.rpc import Call, Fault, RpcError, Send, encode_error, error_code
from ocpp_adapter.settings import AdapterSettings
from ocpp_adapter.station import Answer, Handled, Refused, StationSession, Streamed
from ocpp_adapter.streams import Ask
from ocpp_adapter.versions import OcppVersion

# The central system's log: a connection's lines are its lines.
log = logging.getLogger("ocpp_adapter.central_system")

FrameTap = Callable[[str, str, str | bytes], None]
"""Sees every OCPP frame: (station id, ``"in"`` or ``"out"``, the frame), called
when a frame is read (before it is handled) and after one is written."""


def utc_now() -> datetime:
    return datetime.now(UTC)


_WORD = re.compile(r"[\w.:/@+,~*-]+")


def log_fields(**pairs: object) -> str:
    """``key=value`` pairs after a log line's message: None as ``-``, booleans as
    ``yes``/``no``, a station's string with spaces or quotes in double quotes (each
    pair stays one word)."""

    def value(v: object) -> str:
        if v is None:
            return "-"
        if isinstance(v, bool):
            return "yes" if v else "no"
        text = str(v)
        return text if _WORD.fullmatch(text) else json.dumps(text, ensure_ascii=False)

    return " ".join(f"{k}={value(v)}" for k, v in pairs.items())


# The link whose inbound CALL is being handled: lets a command issued from inside
# on_event for a BootNotification send the boot answer first instead of waiting for it.
_DISPATCHING: contextvars.ContextVar[StationLink | None] = contextvars.ContextVar(
    "ocpp_dispatching", default=None
)


async def emit(on_event: Callable[[DomainEvent], Awaitable[None]], event: DomainEvent) -> None:
    """An event no message of the station's waits on: a refusal or failure is only logged."""
    try:
        await on_event(event)
    except EventRefused as e:  # no message of the station's to answer
        log.warning("%s refused: %s %r", type(event).__name__, e.code, e.description)
    except Exception:
        log.exception("on_event failed for %s", type(event).__name__)


@dataclass(frozen=True)
class LinkContext:
    """What every connection of a central system shares with it."""

    settings: AdapterSettings
    on_event: Callable[[DomainEvent], Awaitable[None]]
    tap: FrameTap
    last_seen: dict[str, datetime]
    """Station id → when its last frame came, kept after it disconnects."""
    reserve_transaction_id: Callable[[], None]
    """Reserve the next 1.6 transaction id before a StartTransaction is handled."""


class StationLink:
    """One WebSocket connection of a station."""

    def __init__(self, ws: ServerConnection, session: StationSession, ctx: LinkContext) -> None:
        self.ws = ws
        self.session = session
        self.ctx = ctx
        self.station_id = session.station_id
        self.inbound: asyncio.Queue[Call | Send | None] = asyncio.Queue()
        """The station's CALLs and SENDs in arrival order; None ends the worker."""
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
        self.last_seen = utc_now()
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

    async def finish(self, worker: asyncio.Task[None]) -> None:
        """Let the CALL being handled finish storing its events; drop the ones still queued.

        Their answers cannot be sent any more: the station resends them.
        """
        while not self.inbound.empty():
            self.inbound.get_nowait()
        self.inbound.put_nowait(None)
        try:
            await asyncio.wait_for(worker, self.ctx.settings.call_timeout_s)
        except TimeoutError:
            log.warning("%r: on_event still busy after disconnect; cancelled", self.station_id)

    # --- frames in ------------------------------------------------------------------------

    async def on_frame(self, frame: str | bytes) -> None:
        ctx = self.ctx
        ctx.tap(self.station_id, "in", frame)
        self.last_seen = now = utc_now()
        ctx.last_seen[self.station_id] = now
        session = self.session
        outcome = session.parse(frame)
        if isinstance(outcome, Refused):
            await self._refuse(outcome)
        elif isinstance(outcome, Call):
            if self.inbound.qsize() >= ctx.settings.max_inbound_calls:
                reply = encode_error(
                    outcome.unique_id,
                    error_code(Fault.RPC_FRAMEWORK, session.version),
                    "too many CALLs waiting for an answer",
                )
                await self._refuse(Refused(reply, "inbound queue full"))
            else:
                self.inbound.put_nowait(outcome)
        elif isinstance(outcome, Send):
            if self.inbound.qsize() >= ctx.settings.max_inbound_calls:
                log.warning("%r: %s dropped: inbound queue full", self.station_id, outcome.action)
            else:
                self.inbound.put_nowait(outcome)  # in order with the CALLs around it
        else:
            answer = session.handle(outcome)
            if isinstance(answer, Answer):
                waiting = self.waiting
                if waiting is not None and waiting[0] == answer.unique_id and not waiting[1].done():
                    waiting[1].set_result(answer)

    async def _refuse(self, refused: Refused) -> None:
        log.warning("%r: bad frame: %r", self.station_id, refused.reason)
        settings = self.ctx.settings
        now = time.monotonic()
        bad = self.bad_frames
        bad.append(now)
        while bad and bad[0] < now - settings.bad_frame_window_s:
            bad.popleft()
        if len(bad) > settings.bad_frame_limit:
            log.warning("%r: too many bad frames; closing", self.station_id)
            self.shut()
            await self.ws.close(1008, "too many invalid frames")
            return
        if refused.reply is not None:
            await self._send(refused.reply)

    async def _send(self, frame: str) -> None:
        with contextlib.suppress(ConnectionClosed):
            await self._write(frame)

    async def _write(self, frame: str) -> None:
        await self.ws.send(frame)
        self.ctx.tap(self.station_id, "out", frame)

    async def work(self) -> None:
        """The station's CALLs, one at a time: events stored, then the answer sent."""
        while (call := await self.inbound.get()) is not None:
            if isinstance(call, Send):
                await self._handle_send(call)
            else:
                await self._handle_call(call)
            # Not kept while waiting for the next CALL (a meter interval): objects
            # alive that long are promoted to the GC's old generation.
            del call

    async def _handle_send(self, send: Send) -> None:
        """A SEND's events stored; never answered, a failure only logged."""
        outcome = self.session.handle(send)
        if isinstance(outcome, Refused):
            await self._refuse(outcome)
        elif isinstance(outcome, Streamed):
            for event in outcome.events:
                await emit(self.ctx.on_event, event)
            self._ask(outcome.ask)

    def _ask(self, ask: Ask | None) -> None:
        """Send the station a question a message of its raised, in the background."""
        if ask is None or self.closed:
            return

        async def run(q: Ask) -> None:
            result, payload = await self.command(q.action, lambda s: q.payload, idempotent=True)
            if result.outcome is not CommandOutcome.ACCEPTED:
                log.info("%r: %s: %s", self.station_id, q.action, result.outcome)
            if q.on_answer is not None:
                q.on_answer(payload if result.outcome is CommandOutcome.ACCEPTED else None)

        self.spawn(run(ask))

    async def _handle_call(self, call: Call) -> None:
        if call.action == "BootNotification":
            # A station (re)booting takes no CALLs until we accepted it.
            self.configured.clear()
        try:
            if call.action == "StartTransaction" and self.session.version is OcppVersion.V16:
                # Asked here (the store commits it) so that the session does no I/O.
                self.ctx.reserve_transaction_id()
            outcome = self.session.handle(call)
        except Exception:
            log.exception("%r: failed to handle %s", self.station_id, call.action)
            code = error_code(Fault.INTERNAL, self.session.version)
            await self._send(encode_error(call.unique_id, code, "internal error"))
            return
        if isinstance(outcome, Refused):
            await self._refuse(outcome)
            return
        assert isinstance(outcome, Handled)
        if outcome.boot_accepted:
            self.boot_answer = outcome
        token = _DISPATCHING.set(self)
        try:
            for event in outcome.events:
                await self.ctx.on_event(event)
        except EventRefused as e:
            log.warning(
                "%r: %s refused: %s %r", self.station_id, call.action, e.code, e.description
            )
            await self._not_accepted(call, outcome, e.code, e.description)
            return
        except Exception:
            log.exception("%r: on_event failed for %s", self.station_id, call.action)
            code = error_code(Fault.INTERNAL, self.session.version)
            await self._not_accepted(call, outcome, code, "could not store the message")
            return
        finally:
            _DISPATCHING.reset(token)
        if outcome.boot_accepted:
            if self.boot_answer is outcome:
                await self._answer_boot(outcome)
            return
        await self._send(outcome.reply)
        if outcome.commit is not None:
            outcome.commit()
        self._ask(outcome.ask)
        if not self.ready.is_set() and self.session.state.booted:
            self.on_ready(booted_now=False)

    async def _not_accepted(
        self, call: Call, outcome: Handled, code: str, description: str
    ) -> None:
        # Unless the boot answer already went (a command from on_event flushed it).
        flushed = outcome.boot_accepted and self.boot_answer is not outcome
        self.boot_answer = None
        if not flushed:
            await self._send(encode_error(call.unique_id, code, description))

    async def _answer_boot(self, answer: Handled) -> None:
        self.boot_answer = None
        await self._send(answer.reply)
        if answer.commit is not None:
            answer.commit()
        for event in answer.events:
            if isinstance(event, StationBooted):
                log.info(
                    "station booted %s",
                    log_fields(
                        id=self.station_id,
                        ocpp=self.session.version.value.removeprefix("ocpp"),
                        vendor=event.vendor,
                        model=event.model,
                        firmware=event.firmware,
                    ),
                )
        self.on_ready(booted_now=True)

    def on_ready(self, *, booted_now: bool) -> None:
        """The station may now get CALLs: learn its capabilities unless known."""
        if self.closed:
            return
        self.ready.set()
        if booted_now or self.session.state.capabilities is None:
            self.configured.clear()
            self.spawn(self._configure())
        else:
            self.configured.set()

    async def _configure(self) -> None:
        settings, session = self.ctx.settings, self.session
        action, payload = session.capability_request()
        answer = await self._exchange(action, payload, retries=settings.call_retries)
        caps = session.apply_capabilities(answer.payload if isinstance(answer, Answer) else None)
        self.configured.set()
        await emit(self.ctx.on_event, caps)
        for action, payload in session.sampling_requests():
            # After any command already waiting, e.g. the fallback profile at boot.
            await self.no_commands.wait()
            result = await self._exchange(action, payload, retries=0)
            if not isinstance(result, Answer) or result.error is not None:
                log.info("%r: %s not applied: %s", self.station_id, action, result)

    # --- frames out -----------------------------------------------------------------------

    async def _exchange(
        self, action: str, payload: dict[str, Any], *, retries: int
    ) -> Answer | CommandResult:
        """Send one CALL (resent up to ``retries`` times on timeout) and wait for its answer."""
        settings = self.ctx.settings
        async with self.call_lock:
            for attempt in range(retries + 1):
                if self.closed:
                    return CommandResult(CommandOutcome.NOT_CONNECTED, "connection closed")
                try:
                    unique_id, frame = self.session.call(action, payload)
                except RpcError as e:
                    log.error("%r: our %s payload is invalid: %s", self.station_id, action, e)
                    return CommandResult(CommandOutcome.ERROR, f"invalid {action}: {e}")
                future: asyncio.Future[Answer | None] = asyncio.get_running_loop().create_future()
                self.waiting = (unique_id, future)
                try:
                    await self._write(frame)
                    answer = await asyncio.wait_for(future, settings.call_timeout_s)
                    if answer is None:
                        return CommandResult(CommandOutcome.NOT_CONNECTED, "connection closed")
                    return answer
                except TimeoutError:
                    log.warning(
                        "%r: no answer to %s (attempt %d)", self.station_id, action, attempt + 1
                    )
                except ConnectionClosed:
                    return CommandResult(CommandOutcome.NOT_CONNECTED, "connection closed")
                finally:
                    self.waiting = None
                    self.session.forget(unique_id)
        return CommandResult(CommandOutcome.TIMEOUT, f"no answer to {action}")

    async def command(
        self, action: str, build: Build, *, idempotent: bool
    ) -> tuple[CommandResult, dict[str, Any] | None]:
        """Send a command once the station is ready: what it meant and the answer's payload."""
        self.commands += 1
        self.no_commands.clear()
        try:
            return await self._run_command(action, build, idempotent=idempotent)
        finally:
            self.commands -= 1
            if self.commands == 0:
                self.no_commands.set()

    async def _run_command(
        self, action: str, build: Build, *, idempotent: bool
    ) -> tuple[CommandResult, dict[str, Any] | None]:
        settings = self.ctx.settings
        if not self.configured.is_set():
            pending_boot = self.boot_answer
            if pending_boot is not None and _DISPATCHING.get() is self:
                # Called from on_event while the boot answer waits for that very call.
                await self._answer_boot(pending_boot)
            if self.queued >= settings.max_queued_calls:
                return CommandResult(CommandOutcome.REJECTED, "too many queued commands"), None
            self.queued += 1
            try:
                await asyncio.wait_for(self.configured.wait(), settings.boot_wait_s)
            except TimeoutError:
                return CommandResult(CommandOutcome.NOT_CONNECTED, "station has not booted"), None
            finally:
                self.queued -= 1
            if self.closed:
                return CommandResult(CommandOutcome.NOT_CONNECTED, "connection closed"), None
        try:
            payload = build(self.session)
        except LimitSpecError as e:
            return CommandResult(CommandOutcome.REJECTED, f"invalid limit: {e}"), None
        retries = settings.call_retries if idempotent else 0
        answer = await self._exchange(action, payload, retries=retries)
        if isinstance(answer, CommandResult):
            return answer, None
        return command_result(answer, settings.rate_limit_backoff_s), answer.payload
