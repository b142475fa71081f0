"""A site's view of the shared central system: its own stations only."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from gridshare.site_stations import SiteStations
from ocpp_adapter.events import (
    ChargingLimitSpec,
    CommandOutcome,
    CommandResult,
    LimitPeriod,
    LimitPurpose,
)
from ocpp_adapter.ports import StationInfo


class Recorder:
    """The node's central system: answers every command, keeps what was sent."""

    port = 9000

    def __init__(self) -> None:
        self.sent: list[tuple[str, str]] = []

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    def stations(self) -> Sequence[StationInfo]:
        return [StationInfo(sid, connected=True) for sid in ("N1", "N2", "S1")]

    async def _ok(self, action: str, station_id: str) -> CommandResult:
        self.sent.append((action, station_id))
        return CommandResult(CommandOutcome.ACCEPTED)

    async def set_limit(self, station_id: str, spec: ChargingLimitSpec) -> CommandResult:
        return await self._ok("set_limit", station_id)

    async def clear_limit(self, station_id: str, connector: int) -> CommandResult:
        return await self._ok("clear_limit", station_id)

    async def remote_start(self, station_id: str, *args: Any) -> CommandResult:
        return await self._ok("remote_start", station_id)

    async def remote_stop(self, station_id: str, transaction_id: str) -> CommandResult:
        return await self._ok("remote_stop", station_id)

    async def trigger_message(self, station_id: str, *args: Any) -> CommandResult:
        return await self._ok("trigger_message", station_id)

    async def reset(self, station_id: str, hard: bool = False) -> CommandResult:
        return await self._ok("reset", station_id)

    async def change_availability(self, station_id: str, *args: Any) -> CommandResult:
        return await self._ok("change_availability", station_id)

    async def get_composite_schedule(
        self, station_id: str, *args: Any
    ) -> tuple[CommandResult, dict[str, object] | None]:
        return await self._ok("get_composite_schedule", station_id), {}


SPEC = ChargingLimitSpec(
    LimitPurpose.TX,
    1,
    datetime(2026, 1, 1, tzinfo=UTC),
    (LimitPeriod(start_offset_s=0, limit_a=6.0, number_phases=3),),
)


async def test_a_site_commands_its_own_stations_and_no_other() -> None:
    node = Recorder()
    north = SiteStations(node, frozenset({"N1", "N2"}))
    assert [s.station_id for s in north.stations()] == ["N1", "N2"]
    assert (await north.set_limit("N1", SPEC)).outcome is CommandOutcome.ACCEPTED
    others = [
        await north.set_limit("S1", SPEC),
        await north.clear_limit("S1", 1),
        await north.remote_start("S1", 1, "tag"),
        await north.remote_stop("S1", "7"),
        await north.trigger_message("S1", "MeterValues"),
        await north.reset("S1"),
        await north.change_availability("S1", 1, False),
        (await north.get_composite_schedule("S1", 1, 60))[0],
    ]
    assert {r.outcome for r in others} == {CommandOutcome.NOT_CONNECTED}
    assert all("not this site's" in r.detail for r in others)
    assert node.sent == [("set_limit", "N1")]  # nothing reached another site's station
    await north.stop()  # the node's port: a site does not close it
    assert north.port == 9000
