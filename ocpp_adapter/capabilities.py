"""After boot, without I/O: asking a station what it can do for smart charging,
reading its answer, and configuring its meter sampling. 1.6 answers with
configuration keys, 2.0.1 with the SmartChargingCtrlr's variables; a station
that would not say is taken to schedule in amperes only."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any

from ocpp_adapter.events import StationCapabilities
from ocpp_adapter.versions import OcppVersion

V16 = OcppVersion.V16

_SMART_VARIABLES_201 = ("RateUnit", "PeriodsPerSchedule", "ProfileStackLevel", "Phases3to1")
_SMART_KEYS_16 = (
    "ChargingScheduleAllowedChargingRateUnit",
    "ChargingScheduleMaxPeriods",
    "ChargeProfileMaxStackLevel",
    "ConnectorSwitch3to1PhaseSupported",
)


def capability_request(version: OcppVersion) -> tuple[str, dict[str, Any]]:
    if version is V16:
        return "GetConfiguration", {"key": list(_SMART_KEYS_16)}
    return "GetVariables", {
        "getVariableData": [
            {"component": {"name": "SmartChargingCtrlr"}, "variable": {"name": name}}
            for name in _SMART_VARIABLES_201
        ]
    }


def read_capabilities(
    station_id: str, version: OcppVersion, payload: dict[str, Any] | None, now: datetime
) -> StationCapabilities:
    """The capability answer (None: the station would not say) → its capabilities."""
    values: dict[str, str] = {}
    if payload and version is V16:
        for item in payload.get("configurationKey") or ():
            if "value" in item:
                values[item["key"]] = item["value"]
        units_raw = values.get("ChargingScheduleAllowedChargingRateUnit")
        periods, stack = (
            values.get("ChargingScheduleMaxPeriods"),
            values.get("ChargeProfileMaxStackLevel"),
        )
        switching = values.get("ConnectorSwitch3to1PhaseSupported")
    elif payload:
        for item in payload.get("getVariableResult") or ():
            if item.get("attributeStatus") == "Accepted" and "attributeValue" in item:
                values[item["variable"]["name"]] = item["attributeValue"]
        units_raw = values.get("RateUnit")
        periods, stack = values.get("PeriodsPerSchedule"), values.get("ProfileStackLevel")
        switching = values.get("Phases3to1")
    else:
        units_raw = periods = stack = switching = None
    return StationCapabilities(
        station_id,
        now,
        _rate_units(units_raw),
        _int(periods),
        _int(stack),
        None if switching is None else switching.strip().lower() == "true",
    )


def sampling_requests(
    version: OcppVersion, interval_s: int | None, measurands: tuple[str, ...]
) -> Iterator[tuple[str, dict[str, Any]]]:
    """The CALLs that set the sample interval and measurands (none for ``interval_s`` None)."""
    if interval_s is None:
        return
    sampled = ",".join(measurands)
    if version is V16:
        yield "ChangeConfiguration", {"key": "MeterValueSampleInterval", "value": str(interval_s)}
        yield "ChangeConfiguration", {"key": "MeterValuesSampledData", "value": sampled}
        return
    yield (
        "SetVariables",
        {
            "setVariableData": [
                {
                    "component": {"name": "SampledDataCtrlr"},
                    "variable": {"name": "TxUpdatedInterval"},
                    "attributeValue": str(interval_s),
                },
                {
                    "component": {"name": "SampledDataCtrlr"},
                    "variable": {"name": "TxUpdatedMeasurands"},
                    "attributeValue": sampled,
                },
            ]
        },
    )


def _int(value: str | None) -> int | None:
    try:
        return int(value.strip()) if value is not None else None
    except ValueError:
        return None


def _rate_units(raw: str | None) -> tuple[str, ...]:
    if raw is None:
        return ("A",)
    units = []
    for token in raw.replace(";", ",").split(","):
        t = token.strip().lower()
        if t in ("current", "a") and "A" not in units:
            units.append("A")
        elif t in ("power", "w") and "W" not in units:
            units.append("W")
    return tuple(units) or ("A",)
