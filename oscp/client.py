"""Our side of the wire towards a capacity provider (httpx, async).

`CapacityProviderClient` sends our messages to one party: directly with
retries (`send`), or queued (`enqueue`: returns at once, a background worker
delivers with retries and gives up after the policy's attempts). Heartbeats
and group measurements run as background loops between `start` and `stop`.
A party that cannot be reached costs a log line and a counter, never a wait
for the caller: charging goes on.

Every request carries ``Authorization: Token ...``, a fresh ``X-Request-ID``
and, when it answers a message, ``X-Correlation-ID``. httpx errors are
translated into `oscp.errors.DeliveryError` where they enter.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import uuid
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import httpx
from pydantic import BaseModel, SecretStr

from oscp.errors import DeliveryError, NotConnected, PeerRejected, PeerUnreachable
from oscp.messages import (
    EnergyMeasurement,
    EnergyUnit,
    Heartbeat,
    MeasurementConfiguration,
    Message,
    UpdateGroupMeasurements,
)

log = logging.getLogger("oscp.client")

MeasurementSource = Callable[[str], Awaitable[float | None]]
"""Cumulative imported energy (kWh) of a provider group id, or None if unknown."""


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff: ``first_delay_s × factor^k`` capped at ``max_delay_s``."""

    attempts: int | None = 5
    """Tries in all; None: until stopped."""
    first_delay_s: float = 0.5
    max_delay_s: float = 30.0
    factor: float = 2.0
    timeout_s: float = 10.0

    def delays(self) -> Iterator[float]:
        d, n = self.first_delay_s, 1
        while self.attempts is None or n < self.attempts:
            yield min(d, self.max_delay_s)
            d *= self.factor
            n += 1


@dataclass(frozen=True)
class Peer:
    """Where and with which token to reach a party."""

    base_url: str
    token: SecretStr


PeerGetter = Callable[[], "Peer | None"]


async def post_message(
    http: httpx.AsyncClient,
    peer: Peer,
    message: Message,
    body: BaseModel | None,
    *,
    method: str = "POST",
    correlation_id: str | None = None,
    timeout_s: float = 10.0,
) -> str:
    """One attempt; the X-Request-ID used. Raises `DeliveryError`."""
    request_id = str(uuid.uuid4())
    headers = {
        "Authorization": f"Token {peer.token.get_secret_value()}",
        "X-Request-ID": request_id,
    }
    if correlation_id:
        headers["X-Correlation-ID"] = correlation_id
    content = b""
    if body is not None:
        content = body.model_dump_json(exclude_none=True).encode()
        headers["Content-Type"] = "application/json"
    url = f"{peer.base_url.rstrip('/')}/{message.value}"
    try:
        r = await http.request(method, url, content=content, headers=headers, timeout=timeout_s)
    except httpx.HTTPError as e:
        raise PeerUnreachable(f"{message.value}: {type(e).__name__}") from None
    if r.status_code >= 300:
        try:
            text = str(r.json().get("message", ""))
        except ValueError:
            text = r.text[:200]
        raise PeerRejected(r.status_code, f"{message.value}: {text}")
    return request_id


@dataclass
class _Outgoing:
    message: Message
    body: BaseModel | None
    method: str = "POST"
    correlation_id: str | None = None
    delivered: Callable[[], Awaitable[None]] | None = None
    given_up: Callable[[], None] | None = None


@dataclass
class ClientStats:
    delivered: int = 0
    failed: int = 0
    dropped: int = 0
    heartbeats_sent: int = 0
    last_error: str | None = None
    last_heartbeat_at: datetime | None = None


@dataclass
class _MeasurementPlan:
    groups: Callable[[], Iterable[str]]
    source: MeasurementSource
    mode: MeasurementConfiguration
    interval_s: float
    last: dict[str, tuple[datetime, float]] = field(default_factory=dict)
    """INTERMITTENT: per group, the time and cumulative kWh of the last report
    the provider received (a report that is never delivered moves nothing, so
    the next one covers its interval)."""
    on_report: Callable[[dict[str, tuple[datetime, float]]], Awaitable[None]] | None = None
    in_flight: set[str] = field(default_factory=set)
    """Groups whose report is still being delivered (the next one waits for it)."""
    last_round: float | None = None
    """Event-loop time of the last round, carried to a new plan so that a new
    Handshake does not send a second report right after the last one."""


class CapacityProviderClient:
    """Our outgoing messages to one capacity provider."""

    def __init__(
        self,
        provider_id: str,
        peer: PeerGetter,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        retry: RetryPolicy | None = None,
        outbox_size: int = 1000,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self.provider_id = provider_id
        self._peer = peer
        self._transport = transport
        self.retry = retry or RetryPolicy()
        self._clock = clock
        self._http: httpx.AsyncClient | None = None
        self._queue: asyncio.Queue[_Outgoing] = asyncio.Queue(maxsize=outbox_size)
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._heartbeat_s: float | None = None
        self._measure: _MeasurementPlan | None = None
        self.stats = ClientStats()
        # an unreachable party is said once, and again when it answers
        self._unreachable_since: datetime | None = None

    def __repr__(self) -> str:
        return f"CapacityProviderClient({self.provider_id!r})"

    # --- lifecycle -------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self._http is not None

    async def start(self) -> None:
        if self._http is not None:
            return
        self._http = httpx.AsyncClient(transport=self._transport)
        self._spawn("outbox", self._outbox())
        if self._heartbeat_s is not None:
            self._spawn("heartbeat", self._heartbeats(self._heartbeat_s))
        if self._measure is not None:
            self._spawn("measure", self._measurements(self._measure))

    async def stop(self) -> None:
        tasks = list(self._tasks.values())
        self._tasks.clear()
        for t in tasks:
            t.cancel()
        for t in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await t
        if self._http is not None:
            await self._http.aclose()
            self._http = None

    def _spawn(self, name: str, coro: Awaitable[None]) -> None:
        old = self._tasks.pop(name, None)
        if old is not None:
            old.cancel()
        self._tasks[name] = asyncio.ensure_future(coro)

    # --- sending ---------------------------------------------------------------

    async def send_once(
        self,
        message: Message,
        body: BaseModel | None,
        *,
        method: str = "POST",
        correlation_id: str | None = None,
        peer: Peer | None = None,
        timeout_s: float | None = None,
    ) -> str:
        """One attempt; raises `DeliveryError`."""
        if self._http is None:
            raise NotConnected("client not started")
        target = peer or self._peer()
        if target is None:
            raise NotConnected(f"no base URL or token for {self.provider_id} yet")
        try:
            rid = await post_message(
                self._http,
                target,
                message,
                body,
                method=method,
                correlation_id=correlation_id,
                timeout_s=timeout_s or self.retry.timeout_s,
            )
        except PeerUnreachable as e:
            if self._unreachable_since is None:
                self._unreachable_since = self._clock()
                log.warning(
                    "%s: %s does not answer (%s); retrying in the background, "
                    "said again when it answers",
                    self.provider_id,
                    target.base_url,
                    e,
                )
            raise
        if self._unreachable_since is not None:
            log.info(
                "%s: %s answers again (unreachable since %s)",
                self.provider_id,
                target.base_url,
                self._unreachable_since.isoformat(timespec="seconds"),
            )
            self._unreachable_since = None
        return rid

    async def send(
        self,
        message: Message,
        body: BaseModel | None,
        *,
        method: str = "POST",
        correlation_id: str | None = None,
        peer: Peer | None = None,
        retry: RetryPolicy | None = None,
    ) -> str:
        """Deliver with retries and backoff; raises the last `DeliveryError`.

        A 4xx answer other than 408/429 is final: retrying would not help.
        """
        policy = retry or self.retry
        delays = policy.delays()
        while True:
            try:
                rid = await self.send_once(
                    message,
                    body,
                    method=method,
                    correlation_id=correlation_id,
                    peer=peer,
                    timeout_s=policy.timeout_s,
                )
            except DeliveryError as e:
                self.stats.last_error = str(e)
                final = (
                    isinstance(e, PeerRejected)
                    and 400 <= e.status < 500
                    and e.status not in (408, 429)
                )
                delay = None if final else next(delays, None)
                if delay is None:
                    self.stats.failed += 1
                    raise
                # an unreachable party was said once in send_once
                quiet = isinstance(e, PeerUnreachable)
                log.log(
                    logging.DEBUG if quiet else logging.INFO,
                    "%s: %s; retry in %.1fs",
                    self.provider_id,
                    e,
                    delay,
                )
                await asyncio.sleep(delay)
            else:
                self.stats.delivered += 1
                return rid

    def enqueue(
        self,
        message: Message,
        body: BaseModel | None,
        *,
        method: str = "POST",
        correlation_id: str | None = None,
        delivered: Callable[[], Awaitable[None]] | None = None,
        given_up: Callable[[], None] | None = None,
    ) -> None:
        """Queue for background delivery; never waits. A full queue drops its oldest.
        ``delivered`` is awaited once the provider accepted the message,
        ``given_up`` called if it never will."""
        item = _Outgoing(message, body, method, correlation_id, delivered, given_up)
        if self._queue.full():
            old = self._queue.get_nowait()
            self.stats.dropped += 1
            if old.given_up is not None:
                old.given_up()
        self._queue.put_nowait(item)

    async def _outbox(self) -> None:
        while True:
            item = await self._queue.get()
            try:
                await self.send(
                    item.message, item.body, method=item.method, correlation_id=item.correlation_id
                )
            except DeliveryError as e:
                self.stats.dropped += 1
                log.warning("%s: gave up on %s: %s", self.provider_id, item.message.value, e)
                if item.given_up is not None:
                    item.given_up()
                continue
            if item.delivered is not None:
                try:
                    await item.delivered()
                except Exception:  # the app's storage failed; the message did arrive
                    log.exception("%s: after delivering %s", self.provider_id, item.message.value)

    async def drain(self, timeout_s: float = 5.0) -> bool:
        """Wait (bounded) until the outbox is empty; True if it is."""
        loop = asyncio.get_running_loop()
        end = loop.time() + timeout_s
        while not self._queue.empty() and loop.time() < end:
            await asyncio.sleep(0.01)
        return self._queue.empty()

    # --- heartbeats --------------------------------------------------------------

    def set_heartbeat(self, interval_s: float | None) -> None:
        """Send a Heartbeat every ``interval_s`` (offline_mode_at = now + 2 intervals);
        None stops them."""
        self._heartbeat_s = interval_s
        if self._http is None:
            return
        if interval_s is None:
            t = self._tasks.pop("heartbeat", None)
            if t is not None:
                t.cancel()
        else:
            self._spawn("heartbeat", self._heartbeats(interval_s))

    async def heartbeat(self, interval_s: float) -> None:
        """One Heartbeat, one attempt (the next tick is the retry)."""
        now = self._clock()
        body = Heartbeat(offline_mode_at=now + timedelta(seconds=2 * interval_s))
        await self.send_once(Message.HEARTBEAT, body, timeout_s=min(interval_s, 10.0))
        self.stats.heartbeats_sent += 1
        self.stats.last_heartbeat_at = now

    async def _heartbeats(self, interval_s: float) -> None:
        while True:
            try:
                await self.heartbeat(interval_s)
            except DeliveryError as e:
                self.stats.last_error = str(e)
                level = logging.DEBUG if isinstance(e, PeerUnreachable) else logging.INFO
                log.log(level, "%s: heartbeat not delivered: %s", self.provider_id, e)
            await asyncio.sleep(interval_s)

    # --- measurements --------------------------------------------------------------

    def set_measurements(
        self,
        groups: Callable[[], Iterable[str]],
        source: MeasurementSource,
        mode: MeasurementConfiguration = MeasurementConfiguration.CONTINUOUS,
        interval_s: float = 60.0,
        *,
        baseline: Mapping[str, tuple[datetime, float]] | None = None,
        on_report: Callable[[dict[str, tuple[datetime, float]]], Awaitable[None]] | None = None,
    ) -> None:
        """Report each group's energy every ``interval_s``.

        CONTINUOUS: the cumulative imported kWh at ``measure_time``.
        INTERMITTENT: the kWh imported since the previous report, with
        ``initial_measure_time`` = that report's time. ``baseline`` is the last
        report of an earlier run (a restart, a new handshake), so no interval
        goes unreported; without one the first reading only sets it.
        ``on_report`` is given the new baselines after each round, to keep them.
        A new plan (a new Handshake) continues the previous one's baselines and
        reports in flight, so an interval is neither lost nor counted twice.
        """
        old = self._measure
        self._measure = _MeasurementPlan(
            groups,
            source,
            mode,
            interval_s,
            old.last if old is not None else dict(baseline or {}),
            on_report,
            old.in_flight if old is not None else set(),
            old.last_round if old is not None else None,
        )
        if self._http is not None:
            self._spawn("measure", self._measurements(self._measure))

    async def measure_once(self) -> int:
        """Read and queue one round of measurements; how many groups were queued."""
        plan = self._measure
        if plan is None:
            return 0
        n = 0
        for gid in plan.groups():
            try:
                value = await plan.source(gid)
            except Exception:  # the app's meter source failed: skip this round, say so
                log.exception("%s: no measurement for %s", self.provider_id, gid)
                continue
            if value is None:
                continue
            now = self._clock()
            delivered = given_up = None
            if plan.mode is MeasurementConfiguration.CONTINUOUS:
                m = EnergyMeasurement(value=value, unit=EnergyUnit.KWH, measure_time=now)
            else:
                if gid in plan.in_flight:
                    continue
                prev = plan.last.get(gid)
                if prev is None:
                    plan.last[gid] = (now, value)
                    await self._keep_baseline(plan)
                    continue
                m = EnergyMeasurement(
                    value=max(value - prev[1], 0.0),
                    unit=EnergyUnit.KWH,
                    measure_time=now,
                    initial_measure_time=prev[0],
                )
                plan.in_flight.add(gid)
                delivered = functools.partial(self._reported, plan, gid, (now, value))
                given_up = functools.partial(plan.in_flight.discard, gid)
            self.enqueue(
                Message.UPDATE_GROUP_MEASUREMENTS,
                UpdateGroupMeasurements(group_id=gid, measurements=[m]),
                delivered=delivered,
                given_up=given_up,
            )
            n += 1
        return n

    async def _reported(self, plan: _MeasurementPlan, gid: str, at: tuple[datetime, float]) -> None:
        plan.in_flight.discard(gid)
        plan.last[gid] = at
        await self._keep_baseline(plan)

    async def _keep_baseline(self, plan: _MeasurementPlan) -> None:
        if plan.on_report is None:
            return
        try:
            await plan.on_report(dict(plan.last))
        except Exception:  # the app's storage failed: kept again after the next report
            log.exception("%s: measurement baseline not kept", self.provider_id)

    async def _measurements(self, plan: _MeasurementPlan) -> None:
        loop = asyncio.get_running_loop()
        if plan.last_round is not None:  # a new plan: the round already due, not one now
            await asyncio.sleep(max(plan.last_round + plan.interval_s - loop.time(), 0.0))
        while True:
            if self._peer() is not None:
                plan.last_round = loop.time()
                await self.measure_once()
            await asyncio.sleep(plan.interval_s)
