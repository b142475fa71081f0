"""Domain events and commands: the adapter's contract with the application.

Stations speak OCPP; the rest of gridshare sees only these typed events (what
a station said) and `ChargingLimitSpec` (what we want a station to enforce),
whatever the OCPP version. Connectors are named ``STATION/CONNECTOR`` (OCPP
2.0.1's EVSE id plays the connector's part).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum


@dataclass(frozen=True)
class StationConnected:
    station_id: str
    protocol: str
    """Negotiated sub-protocol, e.g. ``ocpp1.6`` or ``ocpp2.0.1``."""
    at: datetime


@dataclass(frozen=True)
class StationBooted:
    station_id: str
    vendor: str
    model: str
    at: datetime
    firmware: str | None = None


@dataclass(frozen=True)
class StationDisconnected:
    station_id: str
    at: datetime
    reason: str = ""


@dataclass(frozen=True)
class ConnectorStatusChanged:
    connector_id: str
    status: str
    """OCPP status as sent (Available, Preparing, Charging, SuspendedEV, ...)."""
    at: datetime
    error_code: str | None = None


@dataclass(frozen=True)
class SessionStarted:
    connector_id: str
    transaction_id: str
    id_tag: str | None
    meter_start_wh: float | None
    at: datetime
    offline: bool = False


@dataclass(frozen=True)
class SessionEnded:
    transaction_id: str
    meter_stop_wh: float | None
    at: datetime
    reason: str | None = None
    connector_id: str | None = None
    station_id: str | None = None
    """The station that ended it (transaction ids are only unique per station)."""


@dataclass(frozen=True)
class MeterReading:
    """One sampled meter value set of one connector at one time.

    Current and power are per line where the station said which line; a value
    without a phase is stored under ``total_*``. Units are normalised: A, W, Wh.
    """

    connector_id: str
    at: datetime
    transaction_id: str | None = None
    current_a: dict[str, float] = field(default_factory=dict)
    """Line ("L1", "L2", "L3") → Current.Import; "total" for a value without a phase."""
    current_offered_a: float | None = None
    inlet_current_a: dict[str, float] = field(default_factory=dict)
    """The Current.Import values sampled at location Inlet (the grid inlet: on
    connector/EVSE 0, the station's main meter), by line as ``current_a``."""
    power_w: dict[str, float] = field(default_factory=dict)
    total_power_w: float | None = None
    energy_wh: float | None = None
    """Energy.Active.Import.Register."""
    soc_pct: float | None = None
    context: str | None = None


@dataclass(frozen=True)
class V2xNeeds:
    """What a bidirectional car allows (2.1 ``v2xChargingParameters``, `ocpp_adapter.v2x`)."""

    max_discharge_a: float | None = None
    max_discharge_w: float | None = None
    min_v2x_energy_wh: float | None = None
    """Wh to the lowest state of charge allowed for cycling (negative: it may give that much)."""
    max_v2x_energy_wh: float | None = None
    """Wh to the highest state of charge allowed for cycling."""


@dataclass(frozen=True)
class EvChargingNeeds:
    """What the car itself said (OCPP 2.0.1 NotifyEVChargingNeeds / ISO 15118)."""

    connector_id: str
    at: datetime
    departure: datetime | None = None
    energy_wh: float | None = None
    ev_max_current_a: float | None = None
    ev_min_current_a: float | None = None
    v2x: V2xNeeds | None = None
    """Set when the car announced bidirectional power transfer (2.1)."""


@dataclass(frozen=True)
class PriorityChargingNotified:
    """OCPP 2.1 NotifyPriorityCharging: the driver asked for (or stopped) priority
    charging of a running transaction ("boost")."""

    station_id: str
    transaction_id: str
    activated: bool
    at: datetime


@dataclass(frozen=True)
class ExternalLimitNotified:
    """A limit set at the station by something other than us (NotifyChargingLimit)."""

    station_id: str
    at: datetime
    source: str
    connector_id: str | None = None
    limit_a: float | None = None


@dataclass(frozen=True)
class StationCapabilities:
    """What a station said it can do with charging profiles, learned after boot.

    None means the station did not say; the adapter then assumes A, no phase
    switching and its configured default number of periods.
    """

    station_id: str
    at: datetime
    rate_units: tuple[str, ...] = ("A",)
    """Units the station accepts in schedules: "A" and/or "W"."""
    max_periods: int | None = None
    max_stack_level: int | None = None
    phase_switching: bool | None = None


class LimitPurpose(StrEnum):
    TX = "tx"
    """The running transaction's profile (TxProfile)."""
    TX_DEFAULT = "tx_default"
    """The fallback for any transaction (TxDefaultProfile), on connector/EVSE 0 or one."""
    STATION_MAX = "station_max"
    """Cap on the whole station (ChargePointMaxProfile / ChargingStationMaxProfile)."""


@dataclass(frozen=True)
class LimitPeriod:
    start_offset_s: int
    limit_a: float
    """Per-line current in A (converted to W by the adapter if the station wants W).
    Negative: a V2X discharge at that current, sent to a 2.1 station as a
    CentralSetpoint (`ocpp_adapter.v2x`); an older station refuses it unsent."""
    number_phases: int


@dataclass(frozen=True)
class ChargingLimitSpec:
    """A charging schedule we want a station to enforce, version independent."""

    purpose: LimitPurpose
    connector: int
    """Connector (1.6) or EVSE (2.0.1) number; 0 = the whole station."""
    start: datetime
    periods: tuple[LimitPeriod, ...]
    transaction_id: str | None = None
    stack_level: int = 0
    """The profile's stack level, except that a connector's own TxDefault is sent
    one above it, never at the station-wide one's (`ocpp_adapter.profiles.stack_level`)."""
    voltage_v: float = 230.0
    """Used when the station takes W: W = A × voltage × phases."""
    station_phases: tuple[int, ...] | None = None
    """The station's phases (1-3) the car loads, where fewer than the periods'
    ``number_phases`` (e.g. ``(1,)`` for a one-phase car): a 2.1 station gets
    the limit on those and 0 A on the others (``limit_L2``/``limit_L3``), so
    what is in force matches the lines the plan counts. Older versions have
    one figure for every phase and get ``limit_a`` as before. None: all."""


class EventRefused(Exception):
    """Raised by the application's event sink: the station's message is refused.

    The station gets a CALLERROR with ``code`` (an OCPP error code both versions
    spell alike, e.g. ``PropertyConstraintViolation``) and ``description``;
    nothing of the message counts as accepted. For a record the application
    will not take, not for a failure of its own (that is an internal error).
    """

    def __init__(self, code: str, description: str) -> None:
        super().__init__(f"{code}: {description}")
        self.code = code
        self.description = description


PROPERTY_CONSTRAINT = "PropertyConstraintViolation"
"""The error code for a message whose values contradict what is stored."""


class CommandOutcome(StrEnum):
    ACCEPTED = "accepted"
    REJECTED = "rejected"
    TIMEOUT = "timeout"
    NOT_CONNECTED = "not_connected"
    RATE_LIMITED = "rate_limited"
    ERROR = "error"
    """The station answered with a CALLERROR."""


@dataclass(frozen=True)
class CommandResult:
    outcome: CommandOutcome
    detail: str = ""
    retry_after_s: float | None = None


DomainEvent = (
    StationConnected
    | StationBooted
    | StationDisconnected
    | ConnectorStatusChanged
    | SessionStarted
    | SessionEnded
    | MeterReading
    | EvChargingNeeds
    | PriorityChargingNotified
    | ExternalLimitNotified
    | StationCapabilities
)
