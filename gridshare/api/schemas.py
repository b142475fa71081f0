"""The operator API's request and response bodies (pydantic models).

Units: currents are per line in A, power in kW, energy in kWh, times are timezone-aware
ISO 8601. A limit of ``None`` means "no limit". Connectors are named ``STATION/CONNECTOR``
as everywhere in gridshare; sessions by their session id (the transaction id, mostly).

The backend returns these models as they are; the API only serialises them,
so the OpenAPI schema at ``/api/openapi.json`` describes exactly what is sent.
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any, Literal, Protocol

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    ValidationInfo,
    field_validator,
)

from ocpp_adapter.events import CommandOutcome
from optimizer.modes import ChargeMode
from optimizer.plan import Plan, SolverStatus
from optimizer.site import Line, Site

# Inputs are strict: a JSON number for a number (not ``true`` or ``"5"``), never
# NaN or infinity (Python's JSON parser reads ``NaN``, ``Infinity`` and ``1e400``).
MAX_AMPS = 100_000.0
"""Per line: far above any grid connection, low enough to stay exact in the planner."""
MAX_KILOWATTS = 1_000_000.0
"""A gigawatt: the same for power."""
Amps = Annotated[float, Field(ge=0, le=MAX_AMPS, allow_inf_nan=False, strict=True)]
Kilowatts = Annotated[float, Field(ge=0, le=MAX_KILOWATTS, allow_inf_nan=False, strict=True)]
ConnectorNo = Annotated[int, Field(ge=1, le=1000, strict=True)]
Flag = Annotated[bool, Field(strict=True)]
_PATCHABLE = ("priority", "departure", "charge_mode", "energy_need_kwh")  # of a session


def _plausible(t: datetime) -> datetime:
    try:
        utc = t.astimezone(UTC)
    except OverflowError:
        raise ValueError("time out of range") from None
    if not 2000 <= utc.year <= 2200:
        raise ValueError("time must lie between the years 2000 and 2200")
    return utc


def _iso_text(v: object) -> object:
    # lax datetimes would take a number as a Unix time
    if not isinstance(v, (str, datetime)):
        raise ValueError("a time must be an ISO 8601 string with an offset")
    return v


Instant = Annotated[AwareDatetime, BeforeValidator(_iso_text), AfterValidator(_plausible)]
"""An input time: ISO 8601 with an offset, normalised to UTC, within a plausible range."""

PerLine = dict[Line, float]
"""Line → current in A (only the lines that carry something)."""


class _Out(BaseModel):
    model_config = ConfigDict(frozen=True)


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


# --- plan -------------------------------------------------------------------------------


class PlanStatus(_Out):
    """The figures of one plan: what every write answers with."""

    plan_id: int = Field(description="Increases with every plan made.")
    created_at: datetime
    reason: str = Field(description="What triggered the plan (operator limit, meter values…).")
    status: SolverStatus
    backend: str
    solve_ms: float
    grid_start: datetime
    slot_minutes: int
    slots: int
    sessions: int
    energy_requested_kwh: float
    energy_planned_kwh: float
    unmet_kwh: float
    binding_now: list[str] = Field(description="``GROUP:L1``-style limits binding in slot 0.")
    notes: list[str] = Field(default_factory=list)


class PlannedConnector(_Out):
    connector_id: str
    session_id: str | None
    lines: list[Line]
    current_a: list[float] = Field(description="Per slot of the grid, A per line.")


class PlannedSession(_Out):
    session_id: str
    connector_id: str
    requested_kwh: float
    planned_kwh: float
    unmet_kwh: float


class BindingOut(_Out):
    group_id: str
    quantity: str = Field(description="L1/L2/L3, kW, weighted, or a solar mode's (PV surplus).")
    slot: int


class PlanOut(_Out):
    plan: PlanStatus
    slot_starts: list[datetime]
    connectors: list[PlannedConnector]
    sessions: list[PlannedSession]
    binding: list[BindingOut]

    @classmethod
    def of(cls, plan: Plan, status: PlanStatus, site: Site) -> PlanOut:
        """The plan as the API shows it: per connector per slot, per session, binding."""
        by_conn = {cid: sid for sid, cid in plan.session_connector.items()}
        return cls(
            plan=status,
            slot_starts=plan.grid.starts(),
            connectors=[
                PlannedConnector(
                    connector_id=cid,
                    session_id=by_conn.get(cid),
                    lines=list(plan.lines.get(cid, site.connectors[cid].lines)),
                    current_a=[round(float(x), 3) for x in plan.schedule(cid)],
                )
                for cid in plan.connector_ids
            ],
            sessions=[
                PlannedSession(
                    session_id=sid,
                    connector_id=plan.session_connector[sid],
                    requested_kwh=round(plan.requested_kwh[sid], 3),
                    planned_kwh=round(plan.energy_kwh.get(sid, 0.0), 3),
                    unmet_kwh=round(plan.unmet_kwh.get(sid, 0.0), 3),
                )
                for sid in plan.requested_kwh
            ],
            binding=[
                BindingOut(group_id=b.group_id, quantity=b.quantity, slot=b.slot)
                for b in plan.binding
            ],
        )


# --- groups -----------------------------------------------------------------------------


class OverrideView(Protocol):
    """An operator's limit on a group as the controller keeps it."""

    @property
    def limit_a(self) -> float | None: ...
    @property
    def limit_kw(self) -> float | None: ...
    @property
    def start(self) -> datetime | None: ...
    @property
    def end(self) -> datetime | None: ...
    @property
    def set_by(self) -> str: ...
    @property
    def set_at(self) -> datetime: ...

    def covers(self, t0: datetime, t1: datetime) -> bool:
        """Whether it is in force at any moment of ``[t0, t1)`` (``t0 == t1``: at t0)."""
        ...


class LimitOverride(_Out):
    """An operator's limit on a group, in force between ``start`` and ``end``."""

    limit_a: float | None
    limit_kw: float | None
    start: datetime | None = Field(description="None: in force from when it was set.")
    end: datetime | None = Field(description="None: until cleared.")
    set_by: str
    set_at: datetime
    active_now: bool

    @classmethod
    def of(cls, o: OverrideView | None, now: datetime) -> LimitOverride | None:
        """From a stored override, or None."""
        if o is None:
            return None
        return cls(
            limit_a=o.limit_a,
            limit_kw=o.limit_kw,
            start=o.start,
            end=o.end,
            set_by=o.set_by,
            set_at=o.set_at,
            active_now=o.covers(now, now),
        )


class ForecastValue(_Out):
    """The DSO's capacity for a group in force now, and when the forecast came."""

    limit_a: float | None
    limit_kw: float | None
    source: str
    received_at: datetime


class GroupOut(_Out):
    id: str
    parent: str | None
    children: list[str]
    description: str
    weighted: bool = Field(description="A weighted constraint rather than a branch of the tree.")
    lines: list[Line] = Field(description="Lines carried by connectors under the group.")
    static_limit_a: float | None
    static_limit_kw: float | None
    fallback_limit_a: float | None
    override: LimitOverride | None
    dso_forecast: ForecastValue | None
    capacity_a: float | None = Field(description="Per-line limit in force now (None: none).")
    capacity_kw: float | None = Field(description="Power limit in force now (None: none).")
    planned_a: PerLine = Field(description="Sum of planned currents now, per line.")
    measured_a: PerLine = Field(description="Sum of measured currents now, per line.")
    planned_kw: float
    measured_kw: float


class GroupTree(_Out):
    root: str
    groups: list[GroupOut] = Field(description="Every group, parents before their children.")


class TimelinePoint(_Out):
    at: datetime
    capacity_a: float | None
    capacity_kw: float | None
    planned_a: PerLine | None = Field(description="Planned (future slots) or None.")
    measured_a: PerLine | None = Field(description="Measured (past) or None.")


class GroupTimeline(_Out):
    """A group's capacity, plan and measurements: past ``hours`` and the plan ahead."""

    group_id: str
    now: datetime
    lines: list[Line]
    points: list[TimelinePoint] = Field(description="In time order.")


# --- stations and sessions --------------------------------------------------------------


class ProfileOut(_Out):
    """The last charging profile sent to a connector and the station's answer."""

    limit_a: float
    sent_at: datetime
    outcome: Literal[
        "pending", "accepted", "rejected", "timeout", "not_connected", "rate_limited", "error"
    ]


class ConnectorOut(_Out):
    connector_id: str = Field(description="``STATION/CONNECTOR``.")
    connector: int
    status: str = Field(description="OCPP status as last sent (Available, Charging, …).")
    max_current_a: float
    min_current_a: float
    lines: list[Line]
    limit_a: float | None = Field(description="Limit in force now (None: none known).")
    planned_a: float | None
    draw_a: PerLine
    power_kw: float | None
    energy_kwh: float | None = Field(description="Energy of the running session so far.")
    session_id: str | None
    profile: ProfileOut | None
    not_following: str | None = Field(default=None, description="Why it ignores its limit.")


class StationOut(_Out):
    station_id: str
    group: str
    connected: bool
    protocol: str | None = Field(description="ocpp1.6, ocpp2.0.1 or ocpp2.1 once connected.")
    vendor: str | None
    model: str | None
    firmware: str | None
    capabilities: list[str]
    last_seen: datetime | None
    connectors: list[ConnectorOut]


class SessionOut(_Out):
    session_id: str
    connector_id: str
    id_tag: str | None
    active: bool
    started_at: datetime
    ended_at: datetime | None
    energy_kwh: float = Field(description="Delivered so far.")
    departure: datetime | None
    departure_estimated: bool
    energy_need_kwh: float | None = Field(description="Still to deliver, stated or estimated.")
    energy_need_estimated: bool
    priority: float
    charge_mode: ChargeMode = ChargeMode.FAST
    planned_a: float | None
    planned_kwh: float | None
    drawn_a: float | None
    limit_a: float | None
    paused: bool = Field(description="Offered 0 A now although it still needs energy.")


# --- status, forecasts, events ----------------------------------------------------------


class DsoStatus(_Out):
    configured: bool
    online: bool
    last_heartbeat: datetime | None
    fallback_active: bool = Field(description="Planning on the fallback capacity.")
    detail: str = ""


IsoTime = Annotated[
    datetime, PlainSerializer(lambda t: t.isoformat(), return_type=str, when_used="json")
]
"""A time in the service's own view, written as Python's ``isoformat`` writes it."""


class StatusStations(_Out):
    connected: list[str] = Field(description="Ids of the stations connected now.")
    known: int = Field(description="Stations the site configures.")


class StatusSession(_Out):
    """A running session as the controller sees it."""

    connector_id: str
    session_id: str
    station_id: str
    transaction_id: str
    id_tag: str | None
    started_at: IsoTime
    energy_kwh: float
    departure: IsoTime = Field(description="Stated, else estimated, else now.")
    departure_estimated: bool
    limit_a: float | None
    planned_a: float | None
    drawn_a: float | None
    learned_cap_a: float | None
    learned_lines: list[str] | None
    pinned: str | None = Field(description="Why its limit is held (rejected, no_answer, …).")


class StatusRollout(_Out):
    """The last rollout: profiles sent, accepted, failed."""

    sent: int
    accepted: int
    failed: dict[str, str] = Field(description="Connector → the station's outcome.")
    withheld: list[str]
    unchanged: int


class StatusGroup(_Out):
    capacity_a: float | None
    capacity_kw: float | None
    limits_in_force_a: dict[str, float] = Field(description="Per line: the sum of limits now.")


class StatusOverrides(_Out):
    limit_a: dict[str, float] = Field(description="Group → operator limit per line (A).")
    limit_kw: dict[str, float] = Field(description="Group → operator power limit (kW).")


class StatusConflict(_Out):
    kind: str = Field(description="``isolated``, ``refused`` or ``superseded``.")
    station_id: str
    transaction_id: str
    connector_id: str | None
    reason: str
    since: IsoTime


class StatusService(_Out):
    started_at: IsoTime | None
    ocpp_port: int
    http_port: int
    database: str = Field(description="The database URL, password hidden.")


class StatusOut(_Out):
    site: str
    timezone: str = Field(
        default="UTC", description="The site's IANA time zone, e.g. ``Europe/Amsterdam``."
    )
    now: datetime
    stations_known: int
    stations_connected: int
    sessions_active: int
    overrides_active: int
    plan: PlanStatus | None
    dso: DsoStatus
    # The service's own view, kept for the clients of its first status route.
    stations: StatusStations | None = Field(
        default=None, description="Connected station ids and how many are known."
    )
    sessions: list[StatusSession] | None = Field(
        default=None, description="Running sessions as the controller sees them."
    )
    rollout: StatusRollout | None = Field(
        default=None, description="The last rollout: profiles sent, accepted, failed."
    )
    groups: dict[str, StatusGroup] | None = Field(
        default=None, description="Per group: capacity now and the sum of limits in force."
    )
    overrides: StatusOverrides | None = Field(default=None, description="Operator limits.")
    conflicts: list[StatusConflict] | None = Field(
        default=None,
        description="Inconsistent sessions, with why: left out of planning, and the "
        "latest refused or superseded.",
    )
    service: StatusService | None = Field(
        default=None, description="Start time, ports and database (password hidden)."
    )
    not_following: dict[str, str] = Field(default_factory=dict, description="Connector: why.")


class ForecastPoint(_Out):
    start: datetime
    end: datetime
    limit_a: float | None
    limit_kw: float | None


class ForecastOut(_Out):
    group_id: str
    source: str
    kind: str = Field(description="e.g. ``capacity`` or ``fallback``.")
    received_at: datetime
    points: list[ForecastPoint]


FORECAST_PAGE = 1000
"""Points per page of ``GET /api/forecasts`` unless the client asks otherwise."""
FORECAST_PAGE_MAX = 5000


class ForecastPage(_Out):
    """One page of the forecasts' points (the series in order, each point once)."""

    series: list[ForecastOut]
    total: int = Field(description="Points of all pages together.")

    @classmethod
    def of(cls, series: list[ForecastOut], *, limit: int, offset: int) -> ForecastPage:
        """The points ``offset`` to ``offset + limit`` of ``series`` taken in order;
        a series appears on each page that holds some of its points."""
        out: list[ForecastOut] = []
        first = 0
        for f in series:
            lo = max(offset - first, 0)
            hi = min(offset + limit - first, len(f.points))
            if lo < hi:
                out.append(f.model_copy(update={"points": f.points[lo:hi]}))
            first += len(f.points)
        return cls(series=out, total=first)


class AuditEvent(_Out):
    id: int
    at: datetime
    kind: str
    subject: str
    actor: str
    detail: dict[str, Any]


class EventPage(_Out):
    events: list[AuditEvent] = Field(description="Newest first.")
    next_before: int | None = Field(description="Pass as ``before`` for the next page.")


# --- writes -----------------------------------------------------------------------------


def _one_of_given(*names: str) -> dict[str, Any]:
    """JSON schema: at least one of ``names`` is present and not null."""
    return {
        "anyOf": [{"required": [n], "properties": {n: {"not": {"type": "null"}}}} for n in names]
    }


class GroupLimitRequest(_In):
    """An operator limit for a group: ``limit_a`` and/or ``limit_kw``, optionally a window.

    A limit below what the running sessions need is accepted: sessions are
    paused (offered 0 A) until it fits.
    """

    model_config = ConfigDict(json_schema_extra=_one_of_given("limit_a", "limit_kw"))

    limit_a: Amps | None = None
    limit_kw: Kilowatts | None = Field(default=None, validate_default=True)
    start: Instant | None = None
    end: Instant | None = Field(default=None, validate_default=True)

    @field_validator("limit_kw")
    @classmethod
    def _one_limit(cls, v: float | None, info: ValidationInfo) -> float | None:
        if v is None and info.data.get("limit_a") is None and "limit_a" in info.data:
            raise ValueError("give limit_a and/or limit_kw")
        return v

    @field_validator("end")
    @classmethod
    def _after_start(cls, v: datetime | None, info: ValidationInfo) -> datetime | None:
        start = info.data.get("start")
        if v is not None and start is not None and v <= start:
            raise ValueError("end must be after start")
        return v


class SessionPatch(_In):
    """Change what gridshare assumes of a session; omitted fields stay as they are."""

    model_config = ConfigDict(json_schema_extra=_one_of_given(*_PATCHABLE))

    priority: Annotated[float, Field(gt=0, le=1000, allow_inf_nan=False, strict=True)] | None = None
    departure: Instant | None = None
    charge_mode: ChargeMode | None = None
    energy_need_kwh: (
        Annotated[float, Field(ge=0, le=10_000, allow_inf_nan=False, strict=True)] | None
    ) = Field(default=None, validate_default=True)

    @field_validator("energy_need_kwh")
    @classmethod
    def _something(cls, v: float | None, info: ValidationInfo) -> float | None:
        if v is None and all(k in info.data and info.data[k] is None for k in _PATCHABLE[:-1]):
            raise ValueError("give priority, departure, charge_mode and/or energy_need_kwh")
        return v


class CapacityUnit(StrEnum):
    A = "A"
    W = "W"
    KW = "KW"


class CapacityAdjustRequest(_In):
    """Ask the DSO for a different capacity of a group over a window (OSCP
    AdjustGroupCapacityForecast). Nothing changes at the site until the DSO
    answers with a new forecast."""

    capacity: Annotated[float, Field(ge=0, le=1_000_000, allow_inf_nan=False, strict=True)] = Field(
        description="A per line, or W / kW in total."
    )
    unit: CapacityUnit
    start: Instant | None = Field(default=None, description="None: from now.")
    end: Instant

    @field_validator("end")
    @classmethod
    def _after_start(cls, v: datetime, info: ValidationInfo) -> datetime:
        start = info.data.get("start")
        if start is not None and v <= start:
            raise ValueError("end must be after start")
        return v


class CapacityAdjustResult(_Out):
    """The request as sent to the group's capacity providers (queued, delivered with retries)."""

    group_id: str
    oscp_group_id: str
    capacity: float
    unit: CapacityUnit
    start: datetime
    end: datetime
    providers: int = Field(description="How many capacity providers it was sent to.")
    requested_at: datetime


class WriteResult(_Out):
    """What every write answers: the plan made after it."""

    plan: PlanStatus
    paused_sessions: list[str] = Field(
        description="Sessions offered 0 A now although they need energy (limit too low)."
    )


class GroupLimitResult(WriteResult):
    group: GroupOut


class SessionResult(WriteResult):
    session: SessionOut


# --- station commands -------------------------------------------------------------------


class RemoteStart(_In):
    command: Literal["remote_start"]
    connector: ConnectorNo
    id_tag: Annotated[str, Field(min_length=1, max_length=36, strict=True)]


class RemoteStop(_In):
    command: Literal["remote_stop"]
    connector: ConnectorNo


class TriggerMeterValues(_In):
    command: Literal["trigger_meter_values"]
    connector: ConnectorNo | None = None


class ResetKind(StrEnum):
    SOFT = "soft"
    HARD = "hard"


class Reset(_In):
    command: Literal["reset"]
    kind: ResetKind = ResetKind.SOFT


class Availability(_In):
    command: Literal["availability"]
    connector: Annotated[int, Field(ge=0, le=1000, strict=True)] = Field(
        default=0, description="0: the whole station."
    )
    operative: Flag


StationCommand = Annotated[
    RemoteStart | RemoteStop | TriggerMeterValues | Reset | Availability,
    Field(discriminator="command"),
]


class CommandResult(_Out):
    """The station's answer. Every outcome is a 200: the request itself was valid."""

    station_id: str
    command: str
    outcome: CommandOutcome = Field(description="The adapter's outcome, as the station answered.")
    detail: str = ""
    plan: PlanStatus | None = Field(description="The plan in force after the command.")


# --- live updates -----------------------------------------------------------------------


class ChangeKind(StrEnum):
    MEASUREMENT = "measurement"
    PLAN = "plan"
    LIMIT = "limit"
    STATION = "station"
    SESSION = "session"
    DSO = "dso"


class Change(_Out):
    """A hint that something changed; the API reads the new state itself."""

    kind: ChangeKind
    at: datetime
    subject: str = ""


class Snapshot(_Out):
    """What the live stream sends: status, groups now, stations now."""

    seq: int
    status: StatusOut
    groups: GroupTree
    stations: list[StationOut]


class ErrorOut(_Out):
    detail: str
