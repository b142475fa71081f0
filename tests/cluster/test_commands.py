"""Commands to stations over a real NATS: they reach the gateway holding the
station wherever it is, a planner whose lease moved on is refused with a
clear error, bad commands are refused and run nothing."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from gridshare.cluster.commands import Command, CommandClient, CommandGateway, read_reply
from gridshare.cluster.connection import lease_bucket
from gridshare.cluster.errors import CommandRefused, StaleFencingToken, StationUnreachable
from gridshare.cluster.fencing import watch_leases
from gridshare.cluster.lease import Lease, SiteLeases
from gridshare.cluster.names import Subjects
from tests.cluster.conftest import Bus

PROFILE = {"connectorId": 1, "csChargingProfiles": {"chargingProfileId": 7, "limit": 16}}


class Station:
    """What the gateway's stations did, and how they answer."""

    def __init__(self) -> None:
        self.ran: list[tuple[str, str, dict[str, Any]]] = []
        self.answer: dict[str, Any] | CommandRefused = {"status": "Accepted"}

    async def execute(self, station: str, action: str, payload: dict[str, Any]) -> dict[str, Any]:
        self.ran.append((station, action, payload))
        if isinstance(self.answer, CommandRefused):
            raise self.answer
        return self.answer


async def gateway(bus: Bus, name: str = "gateway") -> tuple[CommandGateway, Station]:
    station = Station()
    return CommandGateway(await bus.connect(name), bus.settings, station.execute), station


async def test_a_command_reaches_the_gateway_holding_the_station(bus: Bus) -> None:
    (g1, s1), (g2, s2) = await gateway(bus, "n1"), await gateway(bus, "n2")
    planner = CommandClient(await bus.connect("planner"), bus.settings)
    await g1.hold("CP1", "depot")
    await g2.hold("CP.2", "depot")
    cmd = Command(site="depot", token=5, action="SetChargingProfile", payload=PROFILE)
    assert await planner.send("CP1", cmd) == {"status": "Accepted"}
    assert await planner.send("CP.2", cmd) == {"status": "Accepted"}
    assert s1.ran == [("CP1", "SetChargingProfile", PROFILE)]
    assert s2.ran == [("CP.2", "SetChargingProfile", PROFILE)]
    with pytest.raises(StationUnreachable, match="'CP3' is not connected"):
        await planner.send("CP3", cmd)
    await g1.release("CP1")  # its socket closed; it reconnects to n2
    with pytest.raises(StationUnreachable):
        await planner.send("CP1", cmd)
    await g2.hold("CP1", "depot")
    await planner.send("CP1", cmd)
    assert len(s1.ran) == 1 and len(s2.ran) == 2


async def test_a_command_with_an_old_fencing_token_is_refused(bus: Bus) -> None:
    s = bus.settings
    g, station = await gateway(bus)
    await g.hold("CP1", "depot")
    nodes = []
    for name in ("n1", "n2"):
        nc = await bus.connect(name)
        nodes.append(
            (SiteLeases(await lease_bucket(nc.jetstream(), s), name), CommandClient(nc, s))
        )
    (leases1, planner1), (leases2, planner2) = nodes
    old = await leases1.acquire("depot")
    assert old is not None
    await planner1.send("CP1", Command("depot", old.token, "SetChargingProfile", PROFILE))
    # n1 stalls (no renewal); n2 takes the site once the TTL removed n1's lease
    new: Lease | None = None
    for _ in range(int((s.lease_ttl_s + 2) / s.lease_poll_s)):
        new = await leases2.acquire("depot")
        if new is not None:
            break
        await asyncio.sleep(s.lease_poll_s)
    assert new is not None and new.token > old.token
    await planner2.send("CP1", Command("depot", new.token, "SetChargingProfile", PROFILE))
    late = Command("depot", old.token, "SetChargingProfile", {**PROFILE, "limit": 32})
    with pytest.raises(StaleFencingToken, match=f"token {old.token} .* older than {new.token}"):
        await planner1.send("CP1", late)  # n1 wakes up and still thinks it plans
    assert len(station.ran) == 2 and all(r[2] == PROFILE for r in station.ran)
    assert g.book.newest("depot") == new.token


async def test_a_gateway_refuses_a_stale_planner_before_the_new_one_sends(bus: Bus) -> None:
    s = bus.settings
    g, station = await gateway(bus)
    await g.hold("CP1", "depot")
    leases = SiteLeases(await lease_bucket(g.nc.jetstream(), s), "n1")
    ready = asyncio.Event()
    watch = asyncio.create_task(watch_leases(leases.kv, g.book, ready))
    await asyncio.wait_for(ready.wait(), 5)
    old = await leases.acquire("depot")
    assert old is not None
    planner = CommandClient(await bus.connect("n1"), s)
    await planner.send("CP1", Command("depot", old.token, "SetChargingProfile", PROFILE))
    successor = SiteLeases(leases.kv, "n2")
    new = None
    for _ in range(int((s.lease_ttl_s + 2) / s.lease_poll_s)):
        new = await successor.acquire("depot")
        if new is not None:
            break
        await asyncio.sleep(s.lease_poll_s)
    assert new is not None
    for _ in range(50):  # the watch brings the new token within moments
        if g.book.newest("depot") == new.token:
            break
        await asyncio.sleep(0.05)
    with pytest.raises(StaleFencingToken):
        await planner.send("CP1", Command("depot", old.token, "SetChargingProfile", PROFILE))
    assert len(station.ran) == 1
    watch.cancel()
    await asyncio.gather(watch, return_exceptions=True)


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (b"not json", "BadCommand"),
        (b'{"site": "depot", "token": 3}', "BadCommand"),
        (b'{"site": "depot", "token": "3", "action": "X", "payload": {}}', "BadCommand"),
        (b'{"site": "depot", "token": -1, "action": "X", "payload": {}}', "BadCommand"),
        (b'{"site": "yard", "token": 9, "action": "X", "payload": {}}', "WrongSite"),
    ],
)
async def test_a_bad_command_is_refused_clearly_and_runs_nothing(
    bus: Bus, body: bytes, code: str
) -> None:
    g, station = await gateway(bus)
    await g.hold("CP1", "depot")
    nc = await bus.connect("planner")
    reply = await nc.request(Subjects(bus.settings.prefix).command("CP1"), body, timeout=2)
    doc = json.loads(reply.data)
    assert (doc["status"], doc["code"]) == ("refused", code)
    assert doc["detail"]
    with pytest.raises(CommandRefused) as err:
        read_reply(reply.data)
    assert err.value.code == code
    assert station.ran == [] and g.book.newest("depot") is None


async def test_a_stations_refusal_comes_back_to_the_planner(bus: Bus) -> None:
    g, station = await gateway(bus)
    await g.hold("CP1", "depot")
    station.answer = CommandRefused("the station did not answer within 30 s", "StationTimeout")
    planner = CommandClient(await bus.connect("planner"), bus.settings)
    with pytest.raises(CommandRefused) as err:
        await planner.send("CP1", Command("depot", 1, "SetChargingProfile", PROFILE))
    assert (err.value.code, err.value.detail) == (
        "StationTimeout",
        "the station did not answer within 30 s",
    )
    assert not isinstance(err.value, StaleFencingToken)
