"""Station events on a real JetStream stream: acked by JetStream before the
station is answered, kept for a planner that was down, de-duplicated,
delivered again when not acked, a malformed one isolated."""

from __future__ import annotations

import asyncio
import time

import pytest
from nats.aio.client import Client

from gridshare.cluster.connection import events_stream
from gridshare.cluster.errors import BusConfigError
from gridshare.cluster.events import EventPublisher, SiteEventConsumer, StationEvent
from gridshare.cluster.names import Subjects
from gridshare.cluster.settings import BusSettings
from tests.cluster.conftest import Bus


def meter(station: str, mid: str, wh: int, site: str = "depot") -> StationEvent:
    return StationEvent(
        site=site,
        station=station,
        message_id=mid,
        action="MeterValues",
        payload={"connectorId": 1, "meterValue": [{"sampledValue": [{"value": str(wh)}]}]},
        received_at="2026-12-08T00:00:00Z",
        node="n1",
    )


async def gateway(bus: Bus) -> EventPublisher:
    nc = await bus.connect("gateway")
    await events_stream(nc.jetstream(), bus.settings)
    return EventPublisher(nc.jetstream(), bus.settings)


class Planner:
    """A planner node's write-through: what it stored, and failures on demand."""

    def __init__(self, nc: Client, settings: BusSettings, site: str = "depot") -> None:
        self.stored: list[StationEvent] = []
        self.fail_next = 0
        self.consumer = SiteEventConsumer(nc.jetstream(), settings, site, self.write)

    async def write(self, event: StationEvent) -> None:
        if self.fail_next:
            self.fail_next -= 1
            raise RuntimeError("database unavailable")
        self.stored.append(event)

    async def read_until(self, count: int, limit_s: float) -> None:
        deadline = time.monotonic() + limit_s
        while len(self.stored) < count:
            if time.monotonic() > deadline:
                pytest.fail(f"{len(self.stored)} events of {count} within {limit_s} s")
            await self.consumer.process(await self.consumer.fetch(0.3))

    async def read_nothing_more(self, for_s: float) -> None:
        before = len(self.stored)
        deadline = time.monotonic() + for_s
        while time.monotonic() < deadline:
            await self.consumer.process(await self.consumer.fetch(0.3))
        assert len(self.stored) == before


async def test_an_acked_event_reaches_the_planner_that_was_down(bus: Bus) -> None:
    pub = await gateway(bus)
    early = await pub.publish(meter("CP1", "m0", 100))  # before any planner ever read
    first = Planner(await bus.connect("planner-1"), bus.settings)
    await first.read_until(1, 5)
    await first.consumer.close()  # the planner goes down
    acks = [await pub.publish(meter(f"CP{i}", f"m{i}", 100 * i)) for i in range(1, 4)]
    assert [a.duplicate for a in acks] == [False] * 3
    assert [a.seq for a in acks] == [early.seq + 1, early.seq + 2, early.seq + 3]
    second = Planner(await bus.connect("planner-2"), bus.settings)  # another node takes over
    await second.read_until(3, 5)
    assert [e.message_id for e in second.stored] == ["m1", "m2", "m3"]
    assert second.stored[1] == meter("CP2", "m2", 200)
    await second.read_nothing_more(0.6)
    info = await pub.js.stream_info(bus.settings.stream)  # written through: gone
    assert info.state.messages == 0


async def test_a_frame_sent_again_is_stored_once(bus: Bus) -> None:
    pub = await gateway(bus)
    planner = Planner(await bus.connect("planner"), bus.settings)
    once = await pub.publish(meter("CP1", "42", 100))
    again = await pub.publish(meter("CP1", "42", 100))  # no answer reached the station
    assert (again.seq, again.duplicate) == (once.seq, True)
    reused = await pub.publish(meter("CP1", "42", 250))  # the id reused for another message
    other = await pub.publish(meter("CP2", "42", 100))  # the same id at another station
    assert not reused.duplicate and not other.duplicate
    await planner.read_until(3, 5)
    await planner.read_nothing_more(0.6)
    assert [(e.station, e.payload == meter("CP1", "42", 100).payload) for e in planner.stored] == [
        ("CP1", True),
        ("CP1", False),
        ("CP2", True),
    ]


async def test_an_event_not_acked_is_delivered_again(bus: Bus) -> None:
    pub = await gateway(bus)
    await pub.publish(meter("CP1", "m1", 100))
    await pub.publish(meter("CP1", "m2", 110))
    crashed = await bus.connect("planner-1")

    async def never(event: StationEvent) -> None:
        raise AssertionError("this planner dies before writing")

    dying = SiteEventConsumer(crashed.jetstream(), bus.settings, "depot", never)
    got = await dying.fetch(1.0)
    assert len(got) == 2
    await crashed.close()  # dies before writing or acking
    planner = Planner(await bus.connect("planner-2"), bus.settings)
    started = time.monotonic()
    await planner.read_until(2, bus.settings.ack_wait_s + 5)
    assert time.monotonic() - started >= bus.settings.ack_wait_s * 0.5  # not before the ack wait
    assert [e.message_id for e in planner.stored] == ["m1", "m2"]
    await planner.read_nothing_more(bus.settings.ack_wait_s + 0.3)


async def test_a_failed_write_through_comes_again_in_order(bus: Bus) -> None:
    pub = await gateway(bus)
    for i in range(5):
        await pub.publish(meter("CP1", f"m{i}", i))
    planner = Planner(await bus.connect("planner"), bus.settings)
    planner.fail_next = 1
    first = await planner.consumer.process(await planner.consumer.fetch(1.0))
    assert first == 0 and planner.stored == []
    await planner.read_until(5, 5)
    assert [e.message_id for e in planner.stored] == [f"m{i}" for i in range(5)]
    await planner.read_nothing_more(bus.settings.ack_wait_s + 0.3)


async def test_a_malformed_event_is_dropped_and_reported_and_the_next_written(bus: Bus) -> None:
    pub = await gateway(bus)
    subject = Subjects(bus.settings.prefix).event("depot", "CP1")
    await pub.js.publish(subject, b'{"site": "depot", "payload": []}')
    await pub.js.publish(subject, b"\xff not json")
    await pub.publish(meter("CP1", "m1", 100))
    planner = Planner(await bus.connect("planner"), bus.settings)
    await planner.read_until(1, 5)
    await planner.read_nothing_more(bus.settings.ack_wait_s + 0.3)  # not redelivered
    assert planner.consumer.bad == 2
    assert [e.message_id for e in planner.stored] == ["m1"]


async def test_a_planner_reads_its_own_sites_events_only(bus: Bus) -> None:
    pub = await gateway(bus)
    await pub.publish(meter("CP1", "m1", 1, site="depot"))
    await pub.publish(meter("X.9", "m1", 1, site="yard north"))
    depot = Planner(await bus.connect("p1"), bus.settings, "depot")
    yard = Planner(await bus.connect("p2"), bus.settings, "yard north")
    await depot.read_until(1, 5)
    await yard.read_until(1, 5)
    await asyncio.gather(depot.read_nothing_more(0.4), yard.read_nothing_more(0.4))
    assert [e.station for e in depot.stored + yard.stored] == ["CP1", "X.9"]


async def test_a_stream_of_another_deployment_is_refused(bus: Bus) -> None:
    nc = await bus.connect("n1")
    await events_stream(nc.jetstream(), bus.settings)
    other = BusSettings(**{**bus.settings.__dict__, "prefix": "elsewhere"})
    with pytest.raises(BusConfigError, match="without subject elsewhere"):
        await events_stream(nc.jetstream(), other)
