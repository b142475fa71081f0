"""A simulated station's settings the central system reads and writes: 1.6
configuration keys (Get/ChangeConfiguration) and 2.0.1 device-model variables
(Get/SetVariables), over the same three values: heartbeat interval, meter
sample interval and sampled measurands."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from gridshare.peers.specs import SimStationSpec
from gridshare.peers.wire import Payload

ALL_MEASURANDS = (
    "Current.Import",
    "Power.Active.Import",
    "Energy.Active.Import.Register",
    "SoC",
    "Current.Offered",
)


class StationSettings:
    """The values and their handlers; ``on_interval`` runs after the meter sample
    interval changed, ``on_heartbeat`` after a 1.6 HeartbeatInterval change."""

    def __init__(
        self,
        spec: SimStationSpec,
        connector_count: int,
        on_interval: Callable[[], None],
        on_heartbeat: Callable[[], None],
    ) -> None:
        self.spec = spec
        self.connector_count = connector_count
        self.heartbeat_s = 300.0
        self.meter_interval_s = spec.meter_interval_s
        self.measurands = list(ALL_MEASURANDS)
        self._on_interval = on_interval
        self._on_heartbeat = on_heartbeat

    def _set_measurands(self, value: str) -> bool:
        items = [m.strip() for m in value.split(",") if m.strip()]
        if not items or any(m not in ALL_MEASURANDS for m in items):
            return False
        self.measurands = items
        return True

    def _set_interval(self, value: str) -> bool:
        s = float(value)
        if s < 0:
            return False
        self.meter_interval_s = s
        self._on_interval()
        return True

    # --- 1.6 configuration keys ---------------------------------------------------

    def config16(self) -> dict[str, tuple[str, bool]]:
        """Key → (value, read-only)."""
        units = "Power" if self.spec.power_unit_only else "Current,Power"
        return {
            "HeartbeatInterval": (str(int(self.heartbeat_s)), False),
            "MeterValueSampleInterval": (str(int(self.meter_interval_s)), False),
            "MeterValuesSampledData": (",".join(self.measurands), False),
            "ChargingScheduleAllowedChargingRateUnit": (units, True),
            "ChargingScheduleMaxPeriods": (str(self.spec.max_periods), True),
            "ChargeProfileMaxStackLevel": (str(self.spec.max_stack_level), True),
            "MaxChargingProfilesInstalled": ("32", True),
            "ConnectorSwitch3to1PhaseSupported": ("false", True),
            "NumberOfConnectors": (str(self.connector_count), True),
            "SupportedFeatureProfiles": ("Core,SmartCharging,RemoteTrigger", True),
        }

    def get_configuration(self, p: Payload) -> Payload:
        conf = self.config16()
        keys = p.get("key") or list(conf)
        known = [{"key": k, "readonly": conf[k][1], "value": conf[k][0]} for k in keys if k in conf]
        out: dict[str, Any] = {"configurationKey": known}
        unknown = [k for k in keys if k not in conf]
        if unknown:
            out["unknownKey"] = unknown
        return out

    def change_configuration(self, p: Payload) -> Payload:
        key, value = p["key"], str(p["value"])
        conf = self.config16()
        if key not in conf:
            return {"status": "NotSupported"}
        if conf[key][1]:
            return {"status": "Rejected"}
        try:
            if key == "MeterValueSampleInterval":
                ok = self._set_interval(value)
            elif key == "MeterValuesSampledData":
                ok = self._set_measurands(value)
            else:
                self.heartbeat_s = float(value) or self.heartbeat_s
                self._on_heartbeat()
                ok = True
        except ValueError:
            ok = False
        return {"status": "Accepted" if ok else "Rejected"}

    # --- 2.0.1 variables ------------------------------------------------------------

    def variables(self) -> dict[tuple[str, str], tuple[str, bool]]:
        """(component, variable) → (value, read-only)."""
        return {
            ("SmartChargingCtrlr", "Enabled"): ("true", True),
            ("SmartChargingCtrlr", "Available"): ("true", True),
            ("SmartChargingCtrlr", "ProfileStackLevel"): (str(self.spec.max_stack_level), True),
            ("SmartChargingCtrlr", "PeriodsPerSchedule"): (str(self.spec.max_periods), True),
            ("SmartChargingCtrlr", "RateUnit"): ("W" if self.spec.power_unit_only else "A,W", True),
            ("SmartChargingCtrlr", "Entries"): ("32", True),
            ("SmartChargingCtrlr", "ACPhaseSwitchingSupported"): ("false", True),
            ("SampledDataCtrlr", "TxUpdatedInterval"): (str(int(self.meter_interval_s)), False),
            ("SampledDataCtrlr", "TxUpdatedMeasurands"): (",".join(self.measurands), False),
            ("SampledDataCtrlr", "TxEndedMeasurands"): (",".join(self.measurands), True),
            ("OCPPCommCtrlr", "HeartbeatInterval"): (str(int(self.heartbeat_s)), False),
        }

    def _variable_status(self, item: Mapping[str, Any]) -> tuple[str, tuple[str, bool] | None]:
        comp, var = item["component"]["name"], item["variable"]["name"]
        table = self.variables()
        if item.get("attributeType", "Actual") != "Actual":
            return "NotSupportedAttributeType", None
        if not any(k[0] == comp for k in table):
            return "UnknownComponent", None
        if (comp, var) not in table:
            return "UnknownVariable", None
        return "Accepted", table[(comp, var)]

    def get_variables(self, p: Payload) -> Payload:
        results = []
        for item in p["getVariableData"]:
            status, found = self._variable_status(item)
            r: dict[str, Any] = {
                "attributeStatus": status,
                "component": item["component"],
                "variable": item["variable"],
            }
            if found is not None:
                r["attributeValue"] = found[0]
            results.append(r)
        return {"getVariableResult": results}

    def set_variables(self, p: Payload) -> Payload:
        results = []
        for item in p["setVariableData"]:
            status, found = self._variable_status(item)
            if found is not None:
                var, value = item["variable"]["name"], str(item["attributeValue"])
                ok = not found[1]
                try:
                    if ok and var == "TxUpdatedInterval":
                        ok = self._set_interval(value)
                    elif ok and var == "TxUpdatedMeasurands":
                        ok = self._set_measurands(value)
                    elif ok and var == "HeartbeatInterval":
                        self.heartbeat_s = float(value) or self.heartbeat_s
                except ValueError:
                    ok = False
                status = "Accepted" if ok else "Rejected"
            results.append(
                {
                    "attributeStatus": status,
                    "component": item["component"],
                    "variable": item["variable"],
                }
            )
        return {"setVariableResult": results}
