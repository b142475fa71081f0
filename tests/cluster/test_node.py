"""Two nodes on a real NATS: one plans the site, the other holds its station;
the planner dies and the other takes the site over with the events it had not
written, and the dead planner's token is refused."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import UTC, datetime

import pytest

from gridshare.cluster.commands import CommandClient
from gridshare.cluster.events import Handler, StationEvent
from gridshare.cluster.limits import FencedLimits
from gridshare.cluster.node import ClusterNode, NodeHooks
from ocpp_adapter.events import (
    ChargingLimitSpec,
    CommandOutcome,
    CommandResult,
    LimitPeriod,
    LimitPurpose,
)
from tests.cluster.conftest import Bus

SPEC = ChargingLimitSpec(
    LimitPurpose.TX, 1, datetime(2026, 12, 8, 18, tzinfo=UTC), (LimitPeriod(0, 10.0, 3),)
)


class App:
    """What one node's application does with the bus."""

    def __init__(self) -> None:
        self.stored: list[StationEvent] = []
        self.limits: dict[str, FencedLimits] = {}
        self.installed: list[tuple[str, ChargingLimitSpec]] = []

    def hooks(self, *, stations: bool) -> NodeHooks:
        def write_through(site: str) -> Handler:
            async def write(event: StationEvent) -> None:
                self.stored.append(event)

            return write

        return NodeHooks(
            write_through=write_through,
            local_limits=self if stations else None,
            on_planning=lambda site, limits: self.limits.__setitem__(site, limits),
            on_stopped=self.stopped,
        )

    def stopped(self, site: str) -> None:
        self.limits.pop(site, None)

    async def set_limit(self, station_id: str, spec: ChargingLimitSpec) -> CommandResult:
        self.installed.append((station_id, spec))
        return CommandResult(CommandOutcome.ACCEPTED)

    async def clear_limit(self, station_id: str, connector: int) -> CommandResult:
        return CommandResult(CommandOutcome.ACCEPTED)


async def until(cond: Callable[[], object], limit_s: float) -> float:
    start = time.monotonic()
    while not cond():
        if time.monotonic() - start > limit_s:
            pytest.fail(f"not within {limit_s} s")
        await asyncio.sleep(0.02)
    return time.monotonic() - start


def status(mid: str) -> StationEvent:
    return StationEvent("depot", "CP1", mid, "StatusNotification", {"status": "Charging"})


async def test_a_planner_dies_and_another_node_takes_its_site_over(bus: Bus) -> None:
    s = bus.settings
    app1, app2 = App(), App()
    n1 = ClusterNode(s, "n1", ["depot"], app1.hooks(stations=False))
    n2 = ClusterNode(s, "n2", ["depot"], app2.hooks(stations=True))
    await n1.start()
    await until(lambda: n1.planning() == {"depot"}, 5)
    await n2.start()
    await n2.station_connected("CP1", "depot")
    await n2.accept(status("1"))  # the station is answered after this
    await until(lambda: len(app1.stored) == 1, 5)
    assert (await app1.limits["depot"].set_limit("CP1", SPEC)).outcome is CommandOutcome.ACCEPTED
    assert app2.installed == [("CP1", SPEC)]
    old_token = n1.keeper.token("depot")
    assert old_token is not None and n2.planning() == set()

    await n1.stop(release=False)  # dies: no renewal, no release
    died = time.monotonic()
    await n2.accept(status("2"))  # accepted while no node plans the site
    await until(lambda: n2.planning() == {"depot"}, s.lease_ttl_s + s.lease_poll_s + 2)
    assert time.monotonic() - died <= s.lease_ttl_s + s.lease_poll_s + 1
    await until(lambda: len(app2.stored) == 1, 5)
    assert [e.message_id for e in app1.stored + app2.stored] == ["1", "2"]
    assert (await app2.limits["depot"].set_limit("CP1", SPEC)).outcome is CommandOutcome.ACCEPTED
    assert n2.keeper.token("depot") > old_token  # type: ignore[operator]

    zombie = FencedLimits(
        CommandClient(await bus.connect("n1-again"), s), "depot", lambda: old_token
    )
    late = await zombie.set_limit("CP1", SPEC)
    assert late.outcome is CommandOutcome.REJECTED and late.detail.startswith("fencing:")
    assert len(app2.installed) == 2
    await n2.stop()
