"""Meter values (1.6 ``MeterValues``/``transactionData``, 2.0.1 ``meterValue``) → `MeterReading`.

Lenient about form, exact about numbers: values may be strings ("16.0") or
numbers, units W/kW/Wh/kWh (2.0.1 also a power-of-ten ``multiplier``), phases
"L1" or "L1-N". `check_readings` runs before a message is handled: a value we
read that is not a finite number, or a current or energy register below zero,
refuses the whole message (`BadReading`), so nothing of it is stored. `parse`
still skips and logs such a value rather than read it as 0. Energy registers
only grow: a reading whose register is below the last one of the connector
loses its ``energy_wh`` (logged); the rest of the reading is kept.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from ocpp_adapter.datetimes import parse_datetime
from ocpp_adapter.events import MeterReading

log = logging.getLogger(__name__)

_PHASES = {"L1": "L1", "L2": "L2", "L3": "L3", "L1-N": "L1", "L2-N": "L2", "L3-N": "L3"}
_POWER_SCALE = {"W": 1.0, "kW": 1000.0}
_ENERGY_SCALE = {"Wh": 1.0, "kWh": 1000.0}
# Locations where current and power are what the connector draws; "EV" only for SoC.
_SUPPLY_LOCATIONS = (None, "Outlet", "Inlet")

CURRENT = "Current.Import"
CURRENT_OFFERED = "Current.Offered"
POWER = "Power.Active.Import"
ENERGY = "Energy.Active.Import.Register"
SOC = "SoC"


def parse_timestamp(value: object, default: datetime) -> datetime:
    """RFC 3339 → aware UTC datetime; naive means UTC; absent → ``default``.

    Inbound payloads have had their dateTime fields checked by then
    (`ocpp_adapter.rpc`); ``default`` covers the optional ones left out.
    """
    at = parse_datetime(value, zone_required=False)
    if at is None:
        if value is not None:
            log.warning("unreadable timestamp %r", value)
        return default
    return at


class BadReading(ValueError):
    """A meter value no meter can give; the message carrying it is refused."""


# Measurands whose values we read, and those of them that cannot be negative
# (an import current or register; export has measurands of its own).
_READ = frozenset({CURRENT, CURRENT_OFFERED, POWER, ENERGY, SOC})
_NOT_NEGATIVE = frozenset({CURRENT, CURRENT_OFFERED, ENERGY})


def check_readings(payload: dict[str, Any]) -> None:
    """Raise `BadReading` for an impossible value anywhere in an inbound payload.

    Looks at 1.6 ``meterStart``/``meterStop`` (Wh registers), 1.6
    ``meterValue``/``transactionData`` and 2.0.1 ``meterValue``. Signed values
    (1.6 ``format: SignedData``) are not numbers and are left alone, as are
    measurands we do not read.
    """
    for key in ("meterStart", "meterStop"):
        register = payload.get(key)
        if isinstance(register, int | float) and register < 0:
            raise BadReading(f"{key} {register!r} is below zero")
    for key in ("meterValue", "transactionData"):
        meter_values = payload.get(key)
        for mv in meter_values if isinstance(meter_values, list) else ():
            for sv in mv.get("sampledValue") or () if isinstance(mv, dict) else ():
                if isinstance(sv, dict):
                    _check_sample(sv)


def _check_sample(sv: dict[str, Any]) -> None:
    measurand = sv.get("measurand", ENERGY)
    if measurand not in _READ or sv.get("format") == "SignedData":
        return
    raw = sv.get("value")
    value = _number(raw)
    if value is None:
        raise BadReading(f"{measurand} value {raw!r} is not a finite number")
    if value < 0 and measurand in _NOT_NEGATIVE:
        raise BadReading(f"{measurand} value {raw!r} is below zero")


def _number(raw: object) -> float | None:
    if isinstance(raw, bool):
        return None
    if isinstance(raw, int | float):
        value = float(raw)
    elif isinstance(raw, str):
        try:
            value = float(raw.strip())
        except ValueError:
            return None
    else:
        return None
    return value if math.isfinite(value) else None


class _Builder:
    __slots__ = ("context", "current", "energy", "offered", "power", "soc", "total_power")

    def __init__(self) -> None:
        self.current: dict[str, float] = {}
        self.power: dict[str, float] = {}
        self.total_power: float | None = None
        self.energy: float | None = None
        self.offered: float | None = None
        self.soc: float | None = None
        self.context: str | None = None

    def empty(self) -> bool:
        return not (self.current or self.power) and (
            self.total_power is None
            and self.energy is None
            and self.offered is None
            and self.soc is None
        )


class MeterParser:
    """Parses meter values for one station and remembers each connector's last register."""

    def __init__(self, station_id: str) -> None:
        self.station_id = station_id
        self._last_wh: dict[str, float] = {}

    def reset_register(self, connector_id: str, wh: float | None) -> None:
        """A new transaction started: its meterStart is the new baseline.

        Some stations restart their register per transaction; without this every
        value of the new session would look like a decrease and be dropped.
        """
        if wh is None:
            self._last_wh.pop(connector_id, None)
        else:
            self._last_wh[connector_id] = wh

    def parse(
        self,
        connector: int,
        meter_values: Iterable[dict[str, Any]],
        transaction_id: str | None,
        now: datetime,
    ) -> list[MeterReading]:
        connector_id = f"{self.station_id}/{connector}"
        groups: dict[datetime, _Builder] = {}
        for mv in meter_values:
            at = parse_timestamp(mv.get("timestamp"), now)
            b = groups.get(at)
            if b is None:
                b = groups[at] = _Builder()
            for sv in mv.get("sampledValue") or ():
                self._sample(b, sv, connector_id)
        readings = []
        for at in sorted(groups):
            b = groups[at]
            if b.energy is not None:
                last = self._last_wh.get(connector_id)
                if last is not None and b.energy < last:
                    log.warning(
                        "%s: energy register went down (%.1f Wh < %.1f Wh); value dropped",
                        connector_id,
                        b.energy,
                        last,
                    )
                    b.energy = None
                else:
                    self._last_wh[connector_id] = b.energy
            if b.empty():
                continue
            readings.append(
                MeterReading(
                    connector_id=connector_id,
                    at=at,
                    transaction_id=transaction_id,
                    current_a=b.current,
                    current_offered_a=b.offered,
                    power_w=b.power,
                    total_power_w=b.total_power,
                    energy_wh=b.energy,
                    soc_pct=b.soc,
                    context=b.context,
                )
            )
        return readings

    def _sample(self, b: _Builder, sv: dict[str, Any], connector_id: str) -> None:
        measurand = sv.get("measurand", ENERGY)
        raw = sv.get("value")
        value = _number(raw)
        if value is None:
            log.warning("%s: %s value %r is not a number; skipped", connector_id, measurand, raw)
            return
        unit_of_measure = sv.get("unitOfMeasure")  # 2.0.1
        if isinstance(unit_of_measure, dict):
            unit = unit_of_measure.get("unit")
            multiplier = unit_of_measure.get("multiplier", 0)
            if isinstance(multiplier, int) and multiplier:
                value *= 10.0**multiplier
        else:
            unit = sv.get("unit")
        if b.context is None:
            b.context = sv.get("context", "Sample.Periodic")
        location = sv.get("location")
        if measurand == SOC:
            b.soc = value
            return
        if location not in _SUPPLY_LOCATIONS:
            return
        phase_raw = sv.get("phase")
        phase = _PHASES.get(phase_raw) if phase_raw is not None else None
        if phase_raw is not None and phase is None:
            return  # line-to-line or neutral: not a line current/power we plan with
        if measurand == CURRENT:
            if unit not in (None, "A"):
                log.warning("%s: current in %r ignored", connector_id, unit)
            elif phase is None:
                # No phase: the station's single figure, taken as every line it uses.
                b.current.setdefault("total", value)
            else:
                b.current[phase] = value
        elif measurand == CURRENT_OFFERED:
            if unit in (None, "A") and phase is None:
                b.offered = value
            elif unit in (None, "A"):
                b.offered = value if b.offered is None else max(b.offered, value)
        elif measurand == POWER:
            scale = _POWER_SCALE.get(unit or "W")
            if scale is None:
                log.warning("%s: power in %r ignored", connector_id, unit)
            elif phase is None:
                b.total_power = value * scale
            else:
                b.power[phase] = value * scale
        elif measurand == ENERGY:
            scale = _ENERGY_SCALE.get(unit or "Wh")
            if scale is None:
                log.warning("%s: energy in %r ignored", connector_id, unit)
            elif phase is None:
                b.energy = value * scale


def energy_register_wh(meter_values: Iterable[dict[str, Any]]) -> float | None:
    """The last total Energy.Active.Import.Register in ``meter_values`` (2.0.1 start/stop)."""
    found: float | None = None
    for mv in meter_values:
        for sv in mv.get("sampledValue") or ():
            if sv.get("measurand", ENERGY) != ENERGY or sv.get("phase") is not None:
                continue
            value = _number(sv.get("value"))
            if value is None:
                continue
            uom = sv.get("unitOfMeasure")
            unit = uom.get("unit") if isinstance(uom, dict) else sv.get("unit")
            scale = _ENERGY_SCALE.get(unit or "Wh")
            if scale is not None:
                multiplier = uom.get("multiplier", 0) if isinstance(uom, dict) else 0
                found = value * scale * (10.0**multiplier if isinstance(multiplier, int) else 1)
    return found
