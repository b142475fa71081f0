"""Station events on a JetStream stream: nothing a station was answered for is lost.

The gateway node holding a station's socket publishes each event to
`<prefix>.ev.<site>.<station>` and answers the station only once JetStream
has acknowledged the publish (it is then stored, on file by default). The
node planning the site reads the site's events through a durable pull
consumer, writes each through (store, controller) and acks it only after:
an event whose write-through fails, or whose consumer dies, is delivered
again (after `redeliver_delay_s`, or `ack_wait_s`). Delivery is at least once,
so the write-through must be idempotent by (station, message id); events come
in the stream's order, except that one delivered again may come after later ones.

A station that sends a frame again (no answer came) is de-duplicated by
JetStream within `duplicate_window_s`: the message id is the station's id,
the OCPP frame's message id and a digest of its action and payload, so a
station reusing a message id for a different message is not mistaken for a
repeat.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from gridshare.cluster.connection import bus_errors
from gridshare.cluster.errors import BadBusMessage, BusUnavailable
from gridshare.cluster.names import Subjects, encode_id
from gridshare.cluster.settings import BusSettings

log = logging.getLogger(__name__)

_TEXT_FIELDS = ("site", "station", "message_id", "action", "received_at", "node")


@dataclass(frozen=True)
class StationEvent:
    """One message a station sent, as the gateway accepted it."""

    site: str
    station: str
    message_id: str  # the OCPP frame's message id
    action: str  # the OCPP action, e.g. "MeterValues"
    payload: dict[str, Any] = field(default_factory=dict)
    received_at: str = ""  # ISO 8601, the gateway's clock
    node: str = ""  # the gateway node that accepted it

    @property
    def dedup_id(self) -> str:
        body = json.dumps([self.action, self.payload], sort_keys=True).encode()
        digest = hashlib.sha256(body).hexdigest()[:16]
        return f"{encode_id(self.station)}.{encode_id(self.message_id)}.{digest}"

    def to_bytes(self) -> bytes:
        return json.dumps(asdict(self), separators=(",", ":")).encode()

    @classmethod
    def from_bytes(cls, data: bytes) -> StationEvent:
        try:
            doc = json.loads(data)
        except ValueError as exc:
            raise BadBusMessage(f"station event is not JSON: {exc}") from exc
        if not isinstance(doc, dict) or set(doc) != {*_TEXT_FIELDS, "payload"}:
            raise BadBusMessage("station event: expected the fields of StationEvent")
        if not all(isinstance(doc[k], str) for k in _TEXT_FIELDS):
            raise BadBusMessage("station event: site, station, ids and times are strings")
        if not isinstance(doc["payload"], dict):
            raise BadBusMessage("station event: payload is an object")
        return cls(**doc)


@dataclass(frozen=True)
class Published:
    """JetStream's acknowledgement of an event: stored at `seq`, or a repeat of it."""

    seq: int
    duplicate: bool


class EventPublisher:
    """The gateway's side: publish, and return only once JetStream has it."""

    def __init__(self, js: JetStreamContext, settings: BusSettings) -> None:
        self.js = js
        self.settings = settings
        self.subjects = Subjects(settings.prefix)

    async def publish(self, event: StationEvent) -> Published:
        """Store the event; `BusUnavailable` means it is not accepted (do not answer)."""
        with bus_errors(f"publishing {event.action} of {event.station!r}"):
            ack = await self.js.publish(
                self.subjects.event(event.site, event.station),
                event.to_bytes(),
                timeout=self.settings.request_timeout_s,
                stream=self.settings.stream,
                headers={"Nats-Msg-Id": event.dedup_id},
            )
        return Published(seq=ack.seq, duplicate=bool(ack.duplicate))


Handler = Callable[[StationEvent], Awaitable[None]]


def durable_name(site: str) -> str:
    return f"planner-{encode_id(site)}"


class SiteEventConsumer:
    """The planner's side for one site: a durable pull consumer, acked after the handler.

    The consumer lives in JetStream, not in this object: events published
    while no node reads them wait there, and a node that takes the site over
    continues where the last one acked.
    """

    def __init__(
        self,
        js: JetStreamContext,
        settings: BusSettings,
        site: str,
        handler: Handler,
        *,
        batch: int = 64,
    ) -> None:
        self.js = js
        self.settings = settings
        self.site = site
        self.handler = handler
        self.batch = batch
        self.bad = 0  # events that did not parse, terminated and reported
        self._sub: JetStreamContext.PullSubscription | None = None
        self._running = False

    async def open(self) -> None:
        subject = Subjects(self.settings.prefix).site_events(self.site)
        config = ConsumerConfig(
            durable_name=durable_name(self.site),
            deliver_policy=DeliverPolicy.ALL,
            ack_policy=AckPolicy.EXPLICIT,
            ack_wait=self.settings.ack_wait_s,
            filter_subject=subject,
        )
        with bus_errors(f"consumer of site {self.site!r}"):
            self._sub = await self.js.pull_subscribe(
                subject, durable=durable_name(self.site), stream=self.settings.stream, config=config
            )

    def stop(self) -> None:
        """`run` returns after the batch in hand."""
        self._running = False

    async def close(self) -> None:
        """Stop reading; the durable consumer and its unacked events stay in JetStream."""
        if self._sub is not None:
            sub, self._sub = self._sub, None
            with bus_errors(f"closing the consumer of site {self.site!r}"):
                await sub.unsubscribe()

    async def fetch(self, timeout: float) -> list[Msg]:
        if self._sub is None:
            await self.open()
        assert self._sub is not None
        with bus_errors(f"reading events of site {self.site!r}"):
            try:
                return await self._sub.fetch(self.batch, timeout=timeout)
            except TimeoutError:  # nothing new (nats-py raises asyncio's or its own)
                return []

    async def process(self, msgs: list[Msg]) -> int:
        """Write `msgs` through in order; returns how many were acked."""
        done = 0
        for i, msg in enumerate(msgs):
            try:
                event = StationEvent.from_bytes(msg.data)
            except BadBusMessage as exc:  # isolated: never redelivered, never blocks the site
                self.bad += 1
                log.error("site %r: event on %s dropped: %s", self.site, msg.subject, exc)
                await msg.term()
                continue
            try:
                await self.handler(event)
            except Exception:
                # not written: it and the rest of the batch come again, in order
                log.exception("site %r: write-through of %s failed", self.site, event.dedup_id)
                for rest in msgs[i:]:
                    await rest.nak(delay=self.settings.redeliver_delay_s)
                return done
            await msg.ack()
            done += 1
        return done

    async def run(self, fetch_timeout: float = 1.0) -> None:
        """Read and write through until stopped (or cancelled)."""
        self._running = True
        # the flag as well as the cancel: Python 3.11's wait_for (in nats-py) can swallow one
        while self._running:
            try:
                msgs = await self.fetch(fetch_timeout)
                with bus_errors(f"acking events of site {self.site!r}"):
                    await self.process(msgs)
            except BusUnavailable as exc:  # the client reconnects; the events wait in JetStream
                log.warning("%s", exc)
                await asyncio.sleep(fetch_timeout)
