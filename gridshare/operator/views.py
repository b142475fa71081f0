"""What the operator backend reads and writes of the running service, as narrow views.

The service wires the real parts in (`OperatorParts`); a test may wire fakes.

    SiteState       the controller's state: sessions, plan, limits, stations
    SiteControl     the controller's operator writes and the re-plan they wait for
    OperatorStore   the store: audit log, ended sessions, meters, profiles, stations
    DsoView         the DSO link: capacity book, providers, capacity requests
    StationCommands the OCPP central system: station records and commands
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from forecasts.capacity_book import CapacityBook
from forecasts.model import Block
from gridshare.api.metrics import MetricsRecorder
from gridshare.api.schemas import OverrideView, StatusService
from gridshare.controller import ControllerSettings, SessionState
from gridshare.dso_link import ProviderState
from gridshare.store import StoredSession
from ocpp_adapter.events import ChargingLimitSpec, CommandResult
from optimizer.modes import ChargeMode
from optimizer.plan import Plan
from optimizer.problem import Capacity, TimeGrid
from optimizer.site import Site

StoreRow = Mapping[str, Any]
"""A row as the store gives it (column → value)."""


class OverridesView(Protocol):
    @property
    def by_group(self) -> Mapping[str, OverrideView]: ...


class SiteState(Protocol):
    """The controller's state the operator reads."""

    @property
    def plan(self) -> Plan | None: ...
    @property
    def plan_id(self) -> int | None: ...
    @property
    def plans(self) -> int: ...
    @property
    def plan_at(self) -> datetime | None: ...
    @property
    def plan_reason(self) -> str: ...
    @property
    def plan_requested_at(self) -> float | None:
        """``time.perf_counter()`` when the plan was asked for."""
        ...

    @property
    def sessions(self) -> Mapping[str, SessionState]:
        """Connector → its running session."""
        ...

    @property
    def connected(self) -> Mapping[str, str]:
        """Station → the protocol it speaks."""
        ...

    @property
    def status_by_connector(self) -> Mapping[str, str]: ...
    @property
    def overrides(self) -> OverridesView: ...
    @property
    def conflicts_total(self) -> Mapping[str, int]: ...
    @property
    def settings(self) -> ControllerSettings: ...

    def capacity(self, grid: TimeGrid, now: datetime) -> Capacity: ...

    def limit_now(self, cid: str, at: datetime | None = None) -> float | None: ...

    def status(self) -> Mapping[str, object]:
        """The controller's own status (stations, sessions, rollout, groups, …)."""
        ...


class SiteControl(Protocol):
    """The controller's writes the operator may make (each persisted and audited)."""

    def set_group_limit(
        self,
        group_id: str,
        *,
        limit_a: float | None = None,
        limit_kw: float | None = None,
        start: datetime | None = None,
        end: datetime | None = None,
        source: str = "operator",
        actor: str | None = None,
    ) -> object: ...

    def update_session(
        self,
        connector_id: str,
        *,
        priority: float | None = None,
        departure: datetime | None = None,
        energy_need_kwh: float | None = None,
        charge_mode: ChargeMode | None = None,
        actor: str = "operator",
    ) -> object: ...

    async def replan_now(self, reason: str, timeout_s: float = 60.0) -> None: ...


class OperatorStore(Protocol):
    def meter_last_all(self) -> Mapping[str, StoreRow]: ...
    def meter_minutes_since(self, since: datetime) -> Sequence[StoreRow]: ...
    def last_profiles(self) -> Mapping[str, StoreRow]: ...
    def stations(self) -> Sequence[StoreRow]: ...
    def recent_sessions(self, limit: int = 50) -> Sequence[StoredSession]: ...
    def session(self, station_id: str, transaction_id: str) -> StoredSession | None: ...
    def session_by_id(self, session_id: str) -> StoredSession | None: ...
    def audit_page(self, limit: int, before: int | None = None) -> Sequence[StoreRow]: ...
    def audit(self, at: datetime, kind: str, subject: str, detail: dict[str, Any]) -> None: ...


class DsoView(Protocol):
    @property
    def capacity_book(self) -> CapacityBook: ...
    @property
    def configured(self) -> bool:
        """Whether a capacity provider (DSO) is configured."""
        ...

    def provider_status(self) -> list[ProviderState]: ...

    def last_heartbeat(self) -> datetime | None: ...

    def request_adjustment(self, oscp_group_id: str, blocks: list[Block]) -> int | None:
        """How many providers the request went to (None: no provider at all)."""
        ...


class StationRecord(Protocol):
    """What the central system knows of one station."""

    @property
    def station_id(self) -> str: ...
    @property
    def protocol(self) -> str | None: ...
    @property
    def vendor(self) -> str | None: ...
    @property
    def model(self) -> str | None: ...
    @property
    def firmware(self) -> str | None: ...
    @property
    def last_seen(self) -> datetime | None: ...
    @property
    def capabilities(self) -> tuple[str, ...]: ...


class StationCommands(Protocol):
    def stations(self) -> Sequence[StationRecord]: ...

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
    ) -> CommandResult: ...

    async def reset(self, station_id: str, hard: bool = False) -> CommandResult: ...

    async def change_availability(
        self, station_id: str, connector: int, operative: bool
    ) -> CommandResult: ...


@dataclass(frozen=True)
class OperatorParts:
    """Everything the operator backend is built from."""

    site: Site
    clock: Callable[[], datetime]
    state: SiteState
    control: SiteControl
    store: OperatorStore
    dso: DsoView
    stations: StationCommands
    metrics: MetricsRecorder
    default_energy_kwh: float
    """What a session whose need nobody stated is assumed to need."""
    service: Callable[[], StatusService]
    """The service's own facts for the status: start time, ports, database."""
    not_following: Callable[[], Mapping[str, str]] = dict
    """Connector → why it is flagged as not following its limit."""
