"""Every OSCP 2.0 message body as a pydantic model.

Parsing is lenient where implementations differ (a capacity sent as a string;
a Handshake without the ``required_behaviour`` wrapper; unknown extra fields)
and strict where the meaning is at stake (units, phases, types, aware times,
``end_time`` after ``start_time``).
"""

from __future__ import annotations

import math
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator, model_validator

from forecasts.model import Block, Forecast, ForecastType, Phase, Unit

OSCP_VERSION = "2.0"


class MeasurementConfiguration(StrEnum):
    CONTINUOUS = "CONTINUOUS"
    INTERMITTENT = "INTERMITTENT"


class EnergyUnit(StrEnum):
    WH = "WH"
    KWH = "KWH"


class EnergyDirection(StrEnum):
    NET = "NET"
    IMPORT = "IMPORT"
    EXPORT = "EXPORT"


class EnergyType(StrEnum):
    FLEXIBLE = "FLEXIBLE"
    NONFLEXIBLE = "NONFLEXIBLE"
    TOTAL = "TOTAL"


class _Message(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class ErrorMessage(_Message):
    message: str


class ForecastedBlock(_Message):
    capacity: Annotated[float, Field(ge=0)]
    phase: Phase
    unit: Unit
    start_time: AwareDatetime
    end_time: AwareDatetime

    @field_validator("capacity")
    @classmethod
    def _finite(cls, v: float) -> float:
        if not math.isfinite(v):
            raise ValueError("capacity must be finite")
        return v

    @model_validator(mode="after")
    def _ordered(self) -> ForecastedBlock:
        if not self.end_time > self.start_time:
            raise ValueError("end_time must be after start_time")
        return self

    def to_block(self) -> Block:
        return Block(self.capacity, self.unit, self.phase, self.start_time, self.end_time)

    @classmethod
    def from_block(cls, b: Block) -> ForecastedBlock:
        return cls(
            capacity=b.capacity, phase=b.phase, unit=b.unit, start_time=b.start, end_time=b.end
        )


class UpdateGroupCapacityForecast(_Message):
    group_id: str = Field(min_length=1)
    type: ForecastType
    forecasted_blocks: list[ForecastedBlock]

    def to_forecast(self, received_at: datetime, source: str) -> Forecast:
        return Forecast(
            group_id=self.group_id,
            type=self.type,
            blocks=tuple(b.to_block() for b in self.forecasted_blocks),
            received_at=received_at,
            source=source,
        )


class AdjustGroupCapacityForecast(UpdateGroupCapacityForecast):
    """Same body as the forecast: the capacity the sender asks for."""


class GroupCapacityComplianceError(_Message):
    message: str
    forecasted_blocks: list[ForecastedBlock] = Field(default_factory=list)


class VersionUrl(_Message):
    version: str
    base_url: str = Field(pattern=r"^https?://")


class Register(_Message):
    token: str = Field(min_length=1)
    version_url: list[VersionUrl] = Field(min_length=1)

    def __repr__(self) -> str:  # the token never shows
        return f"Register(token=***, version_url={self.version_url!r})"

    __str__ = __repr__


class RequiredBehaviour(_Message):
    heartbeat_interval: Annotated[float, Field(gt=0)] | None = None
    measurement_configuration: list[MeasurementConfiguration] = Field(default_factory=list)


def _wrap_behaviour(data: Any) -> Any:
    if isinstance(data, dict) and "required_behaviour" not in data:
        keys = {"heartbeat_interval", "measurement_configuration"}
        if keys & data.keys():
            return {"required_behaviour": {k: data[k] for k in keys if k in data}}
    return data


class Handshake(_Message):
    required_behaviour: RequiredBehaviour

    @model_validator(mode="before")
    @classmethod
    def _flat(cls, data: Any) -> Any:
        return _wrap_behaviour(data)


class HandshakeAcknowledge(_Message):
    required_behaviour: RequiredBehaviour | None = None

    @model_validator(mode="before")
    @classmethod
    def _flat(cls, data: Any) -> Any:
        return _wrap_behaviour(data)


class Heartbeat(_Message):
    offline_mode_at: AwareDatetime


class EnergyMeasurement(_Message):
    value: float
    phase: Phase = Phase.ALL
    unit: EnergyUnit = EnergyUnit.KWH
    direction: EnergyDirection = EnergyDirection.IMPORT
    energy_type: EnergyType | None = None
    measure_time: AwareDatetime
    initial_measure_time: AwareDatetime | None = None


class UpdateGroupMeasurements(_Message):
    group_id: str = Field(min_length=1)
    measurements: list[EnergyMeasurement] = Field(min_length=1)


class Message(StrEnum):
    """The path of each message under a party's base URL."""

    REGISTER = "register"
    HANDSHAKE = "handshake"
    HANDSHAKE_ACKNOWLEDGE = "handshake_acknowledge"
    HEARTBEAT = "heartbeat"
    UPDATE_GROUP_CAPACITY_FORECAST = "update_group_capacity_forecast"
    ADJUST_GROUP_CAPACITY_FORECAST = "adjust_group_capacity_forecast"
    GROUP_CAPACITY_COMPLIANCE_ERROR = "group_capacity_compliance_error"
    UPDATE_GROUP_MEASUREMENTS = "update_group_measurements"


BODY_MODELS: dict[Message, type[_Message]] = {
    Message.REGISTER: Register,
    Message.HANDSHAKE: Handshake,
    Message.HANDSHAKE_ACKNOWLEDGE: HandshakeAcknowledge,
    Message.HEARTBEAT: Heartbeat,
    Message.UPDATE_GROUP_CAPACITY_FORECAST: UpdateGroupCapacityForecast,
    Message.ADJUST_GROUP_CAPACITY_FORECAST: AdjustGroupCapacityForecast,
    Message.GROUP_CAPACITY_COMPLIANCE_ERROR: GroupCapacityComplianceError,
    Message.UPDATE_GROUP_MEASUREMENTS: UpdateGroupMeasurements,
}
