"""Meter values (1.6 ``MeterValues``/``transactionData``, 2.0.1 ``meterValue``) → `MeterReading`.

Lenient about form, exact about numbers: values may be strings ("16.0") or
numbers, units W/kW/Wh/kWh (2.0.1 also a power-of-ten ``multiplier``), phases
"L1" or "L1-N". A value we read that is not a finite number, or a current or
energy register below zero, is impossible: ``parse(strict=True)`` (meter values
on their own) refuses the whole message with `BadReading`, so nothing of it is
stored; otherwise (a transaction's start or end, which must not be lost for one
bad sample) it is logged and skipped, never read as 0. Energy registers
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
    __slots__ = ("context", "current", "energy", "inlet", "offered", "power", "soc", "total_power")

    def __init__(self) -> None:
        self.current: dict[str, float] = {}
        self.inlet: dict[str, float] = {}
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
        *,
        strict: bool = False,
    ) -> list[MeterReading]:
        """Readings grouped by timestamp, in one pass over the samples.

        ``strict``: an impossible value raises `BadReading` before anything is
        remembered; otherwise it is skipped (logged).
        """
        connector_id = f"{self.station_id}/{connector}"
        groups: dict[datetime, _Builder] = {}
        for mv in meter_values:
            at = parse_timestamp(mv.get("timestamp"), now)
            b = groups.get(at)
            if b is None:
                b = groups[at] = _Builder()
            for sv in mv.get("sampledValue") or ():
                self._sample(b, sv, connector_id, strict)
        readings = []
        for at in sorted(groups):
            b = groups[at]
            if b.energy is not None:
                last = self._last_wh.get(connector_id)
                if last is not None and b.energy < last:
                    log.warning(
                        "%r: energy register went down (%.1f Wh < %.1f Wh); value dropped",
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
                    inlet_current_a=b.inlet,
                    power_w=b.power,
                    total_power_w=b.total_power,
                    energy_wh=b.energy,
                    soc_pct=b.soc,
                    context=b.context,
                )
            )
        return readings

    def _sample(self, b: _Builder, sv: dict[str, Any], connector_id: str, strict: bool) -> None:
        measurand = sv.get("measurand", ENERGY)
        raw = sv.get("value")
        value = _number(raw)
        if value is None or (value < 0 and measurand in _NOT_NEGATIVE):
            problem = "is not a number" if value is None else "is below zero"
            # Signed values are not numbers; measurands we do not read are not checked.
            if strict and measurand in _READ and sv.get("format") != "SignedData":
                raise BadReading(f"{measurand} value {raw!r} {problem}")
            log.warning("%r: %r value %r %s; skipped", connector_id, measurand, raw, problem)
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
                log.warning("%r: current in %r ignored", connector_id, unit)
            elif phase is None:
                # No phase: the station's single figure, taken as every line it uses.
                b.current.setdefault("total", value)
            else:
                b.current[phase] = value
            if location == "Inlet" and unit in (None, "A"):
                b.inlet[phase or "total"] = value
        elif measurand == CURRENT_OFFERED:
            if unit in (None, "A") and phase is None:
                b.offered = value
            elif unit in (None, "A"):
                b.offered = value if b.offered is None else max(b.offered, value)
        elif measurand == POWER:
            scale = _POWER_SCALE.get(unit or "W")
            if scale is None:
                log.warning("%r: power in %r ignored", connector_id, unit)
            elif phase is None:
                b.total_power = value * scale
            else:
                b.power[phase] = value * scale
        elif measurand == ENERGY:
            scale = _ENERGY_SCALE.get(unit or "Wh")
            if scale is None:
                log.warning("%r: energy in %r ignored", connector_id, unit)
            elif phase is None:
                b.energy = value * scale


def energy_register_wh(meter_values: Iterable[dict[str, Any]]) -> float | None:
    """The last total Energy.Active.Import.Register in ``meter_values`` (2.0.1 start/stop).

    One below zero is no register (`MeterParser.parse` logs it).
    """
    found: float | None = None
    for mv in meter_values:
        for sv in mv.get("sampledValue") or ():
            if sv.get("measurand", ENERGY) != ENERGY or sv.get("phase") is not None:
                continue
            value = _number(sv.get("value"))
            if value is None or value < 0:
                continue
            uom = sv.get("unitOfMeasure")
            unit = uom.get("unit") if isinstance(uom, dict) else sv.get("unit")
            scale = _ENERGY_SCALE.get(unit or "Wh")
            if scale is not None:
                multiplier = uom.get("multiplier", 0) if isinstance(uom, dict) else 0
                found = value * scale * (10.0**multiplier if isinstance(multiplier, int) else 1)
    return found
