"""`SiteStations`: one site's view of the node's central system.

The node's one OCPP port holds every site's stations; a site runtime sees and
commands only its own: a command to another site's station is refused as a
station the site does not know (nothing is sent), and `stations` lists only the
site's. Starting and stopping the port is the node's, not the site's.
"""

from __future__ import annotations

from collections.abc import Sequence

from ocpp_adapter.events import ChargingLimitSpec, CommandOutcome, CommandResult
from ocpp_adapter.ports import OcppGateway, StationInfo


def _not_ours(station_id: str) -> CommandResult:
    return CommandResult(CommandOutcome.NOT_CONNECTED, f"station {station_id} is not this site's")


class SiteStations:
    """An `OcppGateway` limited to ``station_ids`` of the shared ``gateway``."""

    def __init__(self, gateway: OcppGateway, station_ids: frozenset[str]) -> None:
        self._gateway = gateway
        self.station_ids = station_ids

    @property
    def port(self) -> int:
        return self._gateway.port

    async def start(self) -> None:  # the node's port: started by the node
        return None

    async def stop(self) -> None:
        return None

    def stations(self) -> Sequence[StationInfo]:
        return [s for s in self._gateway.stations() if s.station_id in self.station_ids]

    async def set_limit(self, station_id: str, spec: ChargingLimitSpec) -> CommandResult:
        if station_id not in self.station_ids:
            return _not_ours(station_id)
        return await self._gateway.set_limit(station_id, spec)

    async def clear_limit(self, station_id: str, connector: int) -> CommandResult:
        if station_id not in self.station_ids:
            return _not_ours(station_id)
        return await self._gateway.clear_limit(station_id, connector)

    async def remote_start(
        self,
        station_id: str,
        connector: int,
        id_tag: str,
        spec: ChargingLimitSpec | None = None,
    ) -> CommandResult:
        if station_id not in self.station_ids:
            return _not_ours(station_id)
        return await self._gateway.remote_start(station_id, connector, id_tag, spec)

    async def remote_stop(self, station_id: str, transaction_id: str) -> CommandResult:
        if station_id not in self.station_ids:
            return _not_ours(station_id)
        return await self._gateway.remote_stop(station_id, transaction_id)

    async def trigger_message(
        self, station_id: str, message: str, connector: int | None = None
    ) -> CommandResult:
        if station_id not in self.station_ids:
            return _not_ours(station_id)
        return await self._gateway.trigger_message(station_id, message, connector)

    async def reset(self, station_id: str, hard: bool = False) -> CommandResult:
        if station_id not in self.station_ids:
            return _not_ours(station_id)
        return await self._gateway.reset(station_id, hard)

    async def change_availability(
        self, station_id: str, connector: int, operative: bool
    ) -> CommandResult:
        if station_id not in self.station_ids:
            return _not_ours(station_id)
        return await self._gateway.change_availability(station_id, connector, operative)

    async def get_composite_schedule(
        self, station_id: str, connector: int, duration_s: int, unit: str | None = None
    ) -> tuple[CommandResult, dict[str, object] | None]:
        reader = getattr(self._gateway, "get_composite_schedule", None)
        if station_id not in self.station_ids or reader is None:
            return _not_ours(station_id), None
        result: tuple[CommandResult, dict[str, object] | None] = await reader(
            station_id, connector, duration_s, unit
        )
        return result
