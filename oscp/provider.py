"""The Flexibility Provider: what we do with each capacity provider's messages.

`FlexibilityProvider.handle` takes one request (message name, method, headers,
body) and returns a typed `Reply`; it never touches a socket, so the HTTP
router (`oscp.http`) is a thin shell and every rule can be tested without one.
Work owed after answering (our Register reply, HandshakeAcknowledge) comes
back in ``Reply.after`` and is run by `FlexibilityProvider.run_after` once the
answer is on its way.

Accepted means stored: a forecast is passed to ``on_forecast`` (the app
persists it and updates its `forecasts.CapacityBook`) before we answer 204; if
that fails the answer is 500 and the provider will send it again. A forecast of
more than `forecasts.capacity_book.MAX_BLOCKS` blocks (a week of 5-minute blocks, in
one message or its segments together) is answered 400 and changes nothing.

Around it: `oscp.inbound` checks a request (token, message, segments, body),
`oscp.registrar` takes each registration step and keeps the tokens stored,
`oscp.links` holds what we know of each capacity provider.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping
from datetime import datetime
from typing import Any

import httpx

from forecasts.capacity_book import MAX_BLOCKS
from forecasts.model import Block, Forecast, ForecastType
from oscp.client import (
    CapacityProviderClient,
    MeasurementSource,
    RetryPolicy,
    utc_now,
)
from oscp.config import OscpConfig
from oscp.errors import (
    BadRequest,
    NotRegistered,
    NotStored,
    ProtocolError,
    UnknownGroup,
)
from oscp.inbound import FP_MESSAGES, Reply, authenticate, header, message_of, parse, reassemble
from oscp.links import ProviderLink
from oscp.messages import (
    OSCP_VERSION,
    AdjustGroupCapacityForecast,
    ForecastedBlock,
    GroupCapacityComplianceError,
    Handshake,
    Heartbeat,
    MeasurementConfiguration,
    Message,
    Register,
    RequiredBehaviour,
    UpdateGroupCapacityForecast,
    VersionUrl,
)
from oscp.registrar import AfterReply, Registrar
from oscp.registration import ACCEPTS_MESSAGES, RegState
from oscp.segments import Reassembler
from oscp.tokens import TokenStore

__all__ = [
    "FP_MESSAGES",
    "AdjustHandler",
    "ComplianceHandler",
    "FlexibilityProvider",
    "ForecastHandler",
    "HeartbeatHandler",
    "OfflineHandler",
    "ProviderLink",
    "Reply",
]

log = logging.getLogger("oscp.provider")

ForecastHandler = Callable[[str, Forecast], Awaitable[None]]
"""(provider group id, forecast) → stored. Raise to refuse (we answer 500)."""
HeartbeatHandler = Callable[[str, datetime], Awaitable[None]]
"""(provider id, offline_mode_at)."""
OfflineHandler = Callable[[str], Awaitable[None]]
"""(provider id): its offline_mode_at passed without a heartbeat."""
AdjustHandler = Callable[[str, AdjustGroupCapacityForecast], Awaitable[None]]
ComplianceHandler = Callable[[str, GroupCapacityComplianceError], Awaitable[None]]


class FlexibilityProvider:
    """Our OSCP 2.0 Flexibility Provider towards every configured capacity provider."""

    def __init__(
        self,
        config: OscpConfig,
        *,
        our_base_url: str,
        groups: Iterable[str],
        token_store: TokenStore,
        on_forecast: ForecastHandler,
        on_heartbeat: HeartbeatHandler | None = None,
        on_offline: OfflineHandler | None = None,
        on_adjust: AdjustHandler | None = None,
        on_compliance_error: ComplianceHandler | None = None,
        measurements: MeasurementSource | None = None,
        measurement_interval_s: float = 60.0,
        retry: RetryPolicy | None = None,
        registration_retry: RetryPolicy | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self.config = config
        self.our_base_url = config.base_url or our_base_url
        self.groups = frozenset(groups)
        self._store = token_store
        self._on_forecast = on_forecast
        self._on_heartbeat = on_heartbeat
        self._on_offline = on_offline
        self._on_adjust = on_adjust
        self._on_compliance = on_compliance_error
        self._measurements = measurements
        self._measurement_interval_s = measurement_interval_s
        self._retry = retry or RetryPolicy()
        self._registration_retry = registration_retry or RetryPolicy(
            attempts=None, max_delay_s=60.0
        )
        self._transport = transport
        self._clock = clock
        self.links: dict[str, ProviderLink] = {}
        self._segments: Reassembler[bytes] = Reassembler()
        self._group_source: dict[str, str] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._watchdog: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._started = False
        self._registrar = Registrar(
            token_store,
            version_urls=self._version_urls,
            retry=self._registration_retry,
            spawn=self.spawn,
            on_registered=self._start_loops,
        )

    def __repr__(self) -> str:
        return f"FlexibilityProvider({sorted(self.links)})"

    def set_groups(self, groups: Iterable[str]) -> None:
        """The provider group ids we accept forecasts for (after a site reload)."""
        self.groups = frozenset(groups)

    # --- lifecycle ---------------------------------------------------------------

    async def start(self) -> None:
        """Load tokens, start clients, and Register where we hold a registration token."""
        if self._started:
            return
        self._started = True
        for pc in self.config.capacity_providers:
            record = await self._registrar.load(pc)
            link = ProviderLink(pc, record)
            if record.behaviour is not None:
                link.behaviour = RequiredBehaviour.model_validate(record.behaviour)
            link.client = CapacityProviderClient(
                pc.id, link.peer, transport=self._transport, retry=self._retry, clock=self._clock
            )
            self.links[pc.id] = link
            await link.client.start()
            if link.peer() is not None:
                self._start_loops(link)
                if record.state is RegState.REPLYING and record.token_to_us is not None:
                    self.spawn(self._registrar.reply(link, record.token_to_us))
            elif pc.registration_token is not None and record.state in (
                RegState.UNREGISTERED,
                RegState.AWAITING_REPLY,
            ):
                await self._registrar.begin(link)
        self._watchdog = asyncio.ensure_future(self._watch_offline())

    async def stop(self) -> None:
        tasks = [*self._tasks, *([self._watchdog] if self._watchdog else [])]
        self._tasks.clear()
        self._watchdog = None
        for t in tasks:
            t.cancel()
        for t in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await t
        for link in self.links.values():
            await link.client.stop()
        self._started = False

    def spawn(self, coro: Awaitable[None]) -> None:
        """Run in the background until done or `stop`."""
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def run_after(self, reply: Reply) -> None:
        """Start the work a reply owes (call once the answer is sent)."""
        for job in reply.after:
            self.spawn(job())

    def _start_loops(self, link: ProviderLink) -> None:
        b = link.behaviour
        interval = b.heartbeat_interval if b and b.heartbeat_interval else None
        link.client.set_heartbeat(interval or link.config.heartbeat_interval_s)
        if self._measurements is not None:
            mode = MeasurementConfiguration.CONTINUOUS
            if (
                b
                and b.measurement_configuration
                and (MeasurementConfiguration.CONTINUOUS not in b.measurement_configuration)
            ):
                mode = MeasurementConfiguration.INTERMITTENT

            async def keep(last: dict[str, tuple[datetime, float]]) -> None:
                if last != link.record.reported:
                    await self._registrar.set_record(link, reported=last)

            link.client.set_measurements(
                lambda: self._groups_of(link.id),
                self._measurements,
                mode,
                self._measurement_interval_s,
                baseline=link.record.reported,
                on_report=keep,
            )

    def _groups_of(self, provider_id: str) -> list[str]:
        """Groups whose forecasts came from the provider (all groups if none came yet)."""
        mine = [g for g, s in self._group_source.items() if s == provider_id]
        return sorted(mine) if mine else sorted(self.groups)

    def _version_urls(self) -> list[VersionUrl]:
        return [VersionUrl(version=OSCP_VERSION, base_url=self.our_base_url)]

    # --- we register -------------------------------------------------------------------

    async def register(self, provider_id: str) -> None:
        """Start (again) the Register flow with the out-of-band registration token."""
        await self._registrar.register(self.links[provider_id])

    # --- our messages ----------------------------------------------------------------

    def _targets(self, group_id: str) -> list[ProviderLink]:
        """Who hears about a group: the provider whose forecasts it follows, else
        every provider; only those registered (a message for one that is not
        would wait in its queue for nobody)."""
        src = self._group_source.get(group_id)
        candidates = (
            [self.links[src]] if src is not None and src in self.links else self.links.values()
        )
        return [lk for lk in candidates if lk.peer() is not None]

    def report_compliance_error(
        self, group_id: str, message: str, blocks: Iterable[Block] = ()
    ) -> int:
        """Tell the group's provider we cannot keep its capacity (queued; never waits).
        How many providers it was queued for."""
        body = GroupCapacityComplianceError(
            message=f"{group_id}: {message}",
            forecasted_blocks=[ForecastedBlock.from_block(b) for b in blocks],
        )
        targets = self._targets(group_id)
        for link in targets:
            link.client.enqueue(Message.GROUP_CAPACITY_COMPLIANCE_ERROR, body)
        return len(targets)

    def request_adjustment(
        self,
        group_id: str,
        blocks: Iterable[Block],
        type_: ForecastType = ForecastType.CONSUMPTION,
    ) -> int:
        """Ask the group's provider for a different capacity (queued; never waits)."""
        body = AdjustGroupCapacityForecast(
            group_id=group_id,
            type=type_,
            forecasted_blocks=[ForecastedBlock.from_block(b) for b in blocks],
        )
        targets = self._targets(group_id)
        for link in targets:
            link.client.enqueue(Message.ADJUST_GROUP_CAPACITY_FORECAST, body)
        return len(targets)

    # --- liveness --------------------------------------------------------------------

    def status(self) -> list[dict[str, Any]]:
        """Per capacity provider, for the API and dashboard (no tokens)."""
        now = self._clock()
        out = []
        for lk in self.links.values():
            st = lk.client.stats
            b = lk.behaviour
            out.append(
                {
                    "id": lk.id,
                    "state": lk.state.value,
                    "base_url": lk.record.base_url,
                    "offline_mode_at": lk.offline_mode_at.isoformat()
                    if lk.offline_mode_at
                    else None,
                    "offline": self.is_offline(lk.id, now),
                    "heartbeat_interval_s": (b.heartbeat_interval if b else None)
                    or lk.config.heartbeat_interval_s,
                    "delivered": st.delivered,
                    "failed": st.failed,
                    "dropped": st.dropped,
                    "heartbeats_sent": st.heartbeats_sent,
                    "last_error": st.last_error,
                }
            )
        return out

    def is_offline(self, provider_id: str, now: datetime | None = None) -> bool:
        t = self.links[provider_id].offline_mode_at
        return t is not None and (now or self._clock()) >= t

    async def _watch_offline(self) -> None:
        while True:
            now = self._clock()
            due = [
                lk
                for lk in self.links.values()
                if lk.offline_mode_at is not None and not lk.offline_reported
            ]
            for lk in due:
                assert lk.offline_mode_at is not None
                if now >= lk.offline_mode_at:
                    lk.offline_reported = True
                    log.warning("%s: no heartbeat since offline_mode_at passed", lk.id)
                    if self._on_offline is not None:
                        try:
                            await self._on_offline(lk.id)
                        except Exception:  # the app's handler: keep watching the others
                            log.exception("on_offline(%s) failed", lk.id)
            waits = [
                (lk.offline_mode_at - now).total_seconds()
                for lk in self.links.values()
                if lk.offline_mode_at is not None and not lk.offline_reported
            ]
            timeout = min([*waits, 60.0])
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), max(timeout, 0.01))

    # --- incoming ----------------------------------------------------------------------

    async def handle(
        self, message: str, method: str, headers: Mapping[str, str], body: bytes
    ) -> Reply:
        """Answer one request to ``{our base}/{message}``."""
        request_id = header(headers, "X-Request-ID")
        out_headers = {"X-Correlation-ID": request_id} if request_id else {}
        try:
            link = authenticate(self.links.values(), headers)
            if not request_id:
                raise BadRequest("X-Request-ID header required")
            msg = message_of(message, method)
            after = await self._dispatch(link, msg, method.upper(), headers, body, request_id)
        except ProtocolError as e:
            log.info("refused %s %s: %s %s", method, message, e.status, e.message)
            return Reply(e.status, {"message": e.message}, out_headers)
        return Reply(204, None, out_headers, after)

    async def _dispatch(
        self,
        link: ProviderLink,
        msg: Message,
        method: str,
        headers: Mapping[str, str],
        body: bytes,
        request_id: str,
    ) -> AfterReply:
        if msg is Message.REGISTER:
            if method == "DELETE":
                await self._registrar.unregister(link)
                return ()
            return await self._registrar.received(link, parse(Register, body))
        if link.state not in ACCEPTS_MESSAGES:
            raise NotRegistered(f"{link.id} is not registered")
        if msg is Message.HANDSHAKE:
            return await self._registrar.handshake(link, parse(Handshake, body), request_id)
        if msg is Message.HEARTBEAT:
            await self._heartbeat(link, parse(Heartbeat, body))
            return ()
        whole = reassemble(self._segments, link, msg, headers, body, self._clock)
        if whole is None:
            return ()
        if msg is Message.UPDATE_GROUP_CAPACITY_FORECAST:
            await self._forecast(link, parse(UpdateGroupCapacityForecast, whole))
        elif msg is Message.ADJUST_GROUP_CAPACITY_FORECAST:
            adj = parse(AdjustGroupCapacityForecast, whole)
            self._check_group(adj.group_id)
            if self._on_adjust is not None:
                await self._store_call(self._on_adjust(link.id, adj))
        elif msg is Message.GROUP_CAPACITY_COMPLIANCE_ERROR:
            err = parse(GroupCapacityComplianceError, whole)
            log.warning("%s reports a compliance error: %r", link.id, err.message)
            if self._on_compliance is not None:
                await self._store_call(self._on_compliance(link.id, err))
        return ()

    async def _store_call(self, call: Awaitable[None]) -> None:
        try:
            await call
        except ProtocolError:
            raise
        except Exception as e:  # the app's storage failed: not accepted
            log.error("could not store an accepted message: %s", type(e).__name__)
            raise NotStored("could not store the message; send it again") from e

    def _check_group(self, group_id: str) -> None:
        if group_id not in self.groups:
            raise UnknownGroup(f"unknown group {group_id!r}")

    async def _heartbeat(self, link: ProviderLink, hb: Heartbeat) -> None:
        if self._on_heartbeat is not None:
            await self._store_call(self._on_heartbeat(link.id, hb.offline_mode_at))
        link.offline_mode_at = hb.offline_mode_at
        if link.offline_reported:
            log.info("%s: back online", link.id)
        link.offline_reported = False
        self._wake.set()

    async def _forecast(self, link: ProviderLink, fc: UpdateGroupCapacityForecast) -> None:
        self._check_group(fc.group_id)
        if len(fc.forecasted_blocks) > MAX_BLOCKS:
            raise BadRequest(
                f"a forecast holds at most {MAX_BLOCKS} forecasted_blocks, "
                f"not {len(fc.forecasted_blocks)}"
            )
        forecast = fc.to_forecast(self._clock(), link.id)
        await self._store_call(self._on_forecast(fc.group_id, forecast))
        self._group_source[fc.group_id] = link.id
