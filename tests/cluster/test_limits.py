"""The rollout's `LimitCommands` over a real NATS: a limit reaches the
gateway's central system unchanged, its outcome comes back, and a planner
without the lease, or with an old token, sends nothing."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from gridshare.cluster.commands import Command, CommandClient, CommandGateway
from gridshare.cluster.errors import BadBusMessage, CommandRefused
from gridshare.cluster.limits import FencedLimits, limit_executor, spec_from_json, spec_to_json
from ocpp_adapter.events import (
    ChargingLimitSpec,
    CommandOutcome,
    CommandResult,
    LimitPeriod,
    LimitPurpose,
)
from ocpp_adapter.ports import LimitCommands
from tests.cluster.conftest import Bus

SPEC = ChargingLimitSpec(
    purpose=LimitPurpose.TX,
    connector=2,
    start=datetime(2026, 12, 8, 17, 0, tzinfo=UTC),
    periods=(LimitPeriod(0, 16.0, 3), LimitPeriod(900, 6.5, 1)),
    transaction_id="tx-9",
    stack_level=3,
    voltage_v=120.0,
    station_phases=(1,),
)


class CentralSystem:
    """The gateway node's stations: records the limits, answers as told."""

    def __init__(self) -> None:
        self.limits: list[tuple[str, ChargingLimitSpec | int]] = []
        self.result = CommandResult(CommandOutcome.ACCEPTED)

    async def set_limit(self, station_id: str, spec: ChargingLimitSpec) -> CommandResult:
        self.limits.append((station_id, spec))
        return self.result

    async def clear_limit(self, station_id: str, connector: int) -> CommandResult:
        self.limits.append((station_id, connector))
        return self.result


async def cluster(bus: Bus) -> tuple[CentralSystem, CommandGateway, CommandClient]:
    local = CentralSystem()
    ported: LimitCommands = local
    gw = CommandGateway(await bus.connect("gateway"), bus.settings, limit_executor(ported))
    await gw.hold("CP1", "depot")
    return local, gw, CommandClient(await bus.connect("planner"), bus.settings)


def test_a_limit_survives_its_trip_as_json() -> None:
    assert spec_from_json(spec_to_json(SPEC)) == SPEC
    for broken in ({**spec_to_json(SPEC), "start": "2026-12-08T17:00"}, {"purpose": "tx"}):
        with pytest.raises(BadBusMessage):
            spec_from_json(broken)


async def test_a_limit_reaches_the_stations_node_and_its_outcome_comes_back(bus: Bus) -> None:
    local, _, client = await cluster(bus)
    limits: LimitCommands = FencedLimits(client, "depot", lambda: 7)
    assert (await limits.set_limit("CP1", SPEC)).outcome is CommandOutcome.ACCEPTED
    local.result = CommandResult(CommandOutcome.RATE_LIMITED, "busy", retry_after_s=12.5)
    assert await limits.clear_limit("CP1", 2) == local.result
    assert local.limits == [("CP1", SPEC), ("CP1", 2)]
    gone = await limits.set_limit("CP9", SPEC)
    assert gone.outcome is CommandOutcome.NOT_CONNECTED and "'CP9'" in gone.detail


async def test_a_planner_without_the_lease_or_with_an_old_token_sends_nothing(bus: Bus) -> None:
    local, gw, client = await cluster(bus)
    held: list[int | None] = [None]
    limits = FencedLimits(client, "depot", lambda: held[0])
    first = await limits.set_limit("CP1", SPEC)
    assert first.outcome is CommandOutcome.REJECTED and "not planning" in first.detail
    gw.book.observe("depot", 40)  # a successor's lease, seen by the gateway
    held[0] = 31
    stale = await limits.set_limit("CP1", SPEC)
    assert stale.outcome is CommandOutcome.REJECTED
    assert stale.detail.startswith("fencing: fencing token 31")
    held[0] = 40
    assert (await limits.set_limit("CP1", SPEC)).outcome is CommandOutcome.ACCEPTED
    assert local.limits == [("CP1", SPEC)]


async def test_a_malformed_limit_is_refused_and_reaches_no_station(bus: Bus) -> None:
    local, _, client = await cluster(bus)
    for action, payload, code in (
        ("set_limit", {"purpose": "tx", "connector": 1}, "BadCommand"),
        ("clear_limit", {"connector": "1"}, "BadCommand"),
        ("reset", {}, "UnknownAction"),
    ):
        with pytest.raises(CommandRefused) as err:
            await client.send("CP1", Command("depot", 1, action, payload))
        assert err.value.code == code
    assert local.limits == []
