"""The OCPP adapter as the application sees it: the commands it may send a
station and what it may know of one. `ocpp_adapter.CentralSystem` is the
implementation; the application's fakes satisfy the same Protocols.

    LimitCommands       set and clear a charging limit (planning, rollout)
    StationCommands     + start, stop, trigger, reset, availability (operator)
    OcppGateway         + listening (start, stop, port) and `StationInfo` per station
    CompositeSchedules  read back what a station will really do (GetCompositeSchedule)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from ocpp_adapter.events import (
    ChargingLimitSpec,
    CommandResult,
    LimitPurpose,
    StationCapabilities,
)


@dataclass(frozen=True)
class StationInfo:
    """What the central system knows of one station."""

    station_id: str
    connected: bool
    protocol: str | None = None
    vendor: str | None = None
    model: str | None = None
    firmware: str | None = None
    last_seen: datetime | None = None
    capabilities: tuple[str, ...] = ()
    """What the station said it can do, as short names (`capability_names`)."""
    profiles: Mapping[tuple[int, LimitPurpose], ChargingLimitSpec] = field(default_factory=dict)
    """Last accepted limit per (connector, purpose)."""


def capability_names(c: StationCapabilities) -> list[str]:
    """What a station said it can do, as short names for the operator."""
    names = ["SmartCharging", *(f"rate:{u}" for u in c.rate_units)]
    if c.phase_switching:
        names.append("PhaseSwitching")
    if c.max_periods is not None:
        names.append(f"max_periods:{c.max_periods}")
    return names


class LimitCommands(Protocol):
    """Charging limits: what planning and its rollout send."""

    async def set_limit(self, station_id: str, spec: ChargingLimitSpec) -> CommandResult:
        """Install ``spec``; it replaces ours for the same connector and purpose."""
        ...

    async def clear_limit(self, station_id: str, connector: int) -> CommandResult:
        """Remove our TxProfile on ``connector``; "nothing to clear" is accepted."""
        ...


class StationCommands(LimitCommands, Protocol):
    """Every command the application may send a station."""

    async def remote_start(
        self,
        station_id: str,
        connector: int,
        id_tag: str,
        spec: ChargingLimitSpec | None = None,
    ) -> CommandResult: ...

    async def remote_stop(self, station_id: str, transaction_id: str) -> CommandResult: ...

    async def trigger_message(
        self, station_id: str, message: str, connector: int | None = None
    ) -> CommandResult:
        """Ask the station to send ``message`` now ("MeterValues", "StatusNotification")."""
        ...

    async def reset(self, station_id: str, hard: bool = False) -> CommandResult: ...

    async def change_availability(
        self, station_id: str, connector: int, operative: bool
    ) -> CommandResult: ...


class CompositeSchedules(Protocol):
    """The read-back of the limits a station will apply (GetCompositeSchedule)."""

    async def get_composite_schedule(
        self, station_id: str, connector: int, duration_s: int, unit: str | None = None
    ) -> tuple[CommandResult, dict[str, object] | None]:
        """The station's answer as sent (None: no answer)."""
        ...


class OcppGateway(StationCommands, Protocol):
    """The central system as the service runs it."""

    @property
    def port(self) -> int:
        """The OCPP port listened on (the one picked, once started on port 0)."""
        ...

    async def start(self) -> None: ...

    async def stop(self) -> None:
        """Stop listening; close every station's connection."""
        ...

    def stations(self) -> Sequence[StationInfo]:
        """Every configured or seen station, connected or not."""
        ...
