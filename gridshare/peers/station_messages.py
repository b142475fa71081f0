"""What a simulated station writes, per OCPP version: payloads built from the
state of its connectors, with no state of their own and no I/O.

`MESSAGES` gives each version's builder; the flows that decide when to send
them live in `station_protocol`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Protocol

from gridshare.peers import v2x
from gridshare.peers.connectors import Connector
from gridshare.peers.specs import SimStationSpec
from gridshare.peers.wire import Payload, iso, one_decimal

# 2.0.1 connector status for a 1.6 status (anything else is Occupied)
CONNECTOR_STATUS_201 = {"Available": "Available", "Unavailable": "Unavailable"}


class Messages(Protocol):
    def boot(self, spec: SimStationSpec) -> Payload: ...

    def authorize(self, id_tag: str) -> Payload: ...

    def sampled_value(
        self, measurand: str, value: float, unit: str, context: str, extra: dict[str, str]
    ) -> Payload: ...

    def composite_reply(
        self, n: int, duration: int, unit: str, start: datetime, periods: list[Payload]
    ) -> Payload: ...


class Messages16:
    def boot(self, spec: SimStationSpec) -> Payload:
        return {
            "chargePointVendor": spec.vendor,
            "chargePointModel": spec.model,
            "chargePointSerialNumber": spec.id[:25],
            "firmwareVersion": "sim-1",
        }

    def authorize(self, id_tag: str) -> Payload:
        return {"idTag": id_tag}

    def sampled_value(
        self, measurand: str, value: float, unit: str, context: str, extra: dict[str, str]
    ) -> Payload:
        sv: dict[str, Any] = {"measurand": measurand, "context": context, **extra}
        sv["value"] = f"{value:.1f}" if unit != "Percent" else f"{value:.0f}"
        sv["unit"] = unit
        return sv

    def composite_reply(
        self, n: int, duration: int, unit: str, start: datetime, periods: list[Payload]
    ) -> Payload:
        return {
            "status": "Accepted",
            "connectorId": n,
            "scheduleStart": iso(start),
            "chargingSchedule": {
                "duration": duration,
                "startSchedule": iso(start),
                "chargingRateUnit": unit,
                "chargingSchedulePeriod": periods,
            },
        }


class Messages201:
    def boot(self, spec: SimStationSpec) -> Payload:
        return {
            "reason": "PowerUp",
            "chargingStation": {
                "vendorName": spec.vendor,
                "model": spec.model,
                "serialNumber": spec.id[:25],
                "firmwareVersion": "sim-1",
            },
        }

    def authorize(self, id_tag: str) -> Payload:
        return {"idToken": {"idToken": id_tag, "type": "ISO14443"}}

    def sampled_value(
        self, measurand: str, value: float, unit: str, context: str, extra: dict[str, str]
    ) -> Payload:
        sv: dict[str, Any] = {"measurand": measurand, "context": context, **extra}
        sv["value"] = round(value, 1)
        sv["unitOfMeasure"] = {"unit": unit}
        return sv

    def composite_reply(
        self, n: int, duration: int, unit: str, start: datetime, periods: list[Payload]
    ) -> Payload:
        return {
            "status": "Accepted",
            "schedule": {
                "evseId": n,
                "duration": duration,
                "scheduleStart": iso(start),
                "chargingRateUnit": unit,
                "chargingSchedulePeriod": periods,
            },
        }


# 2.1 writes what 2.0.1 does: its additions are optional fields
MESSAGES: dict[str, Messages] = {"1.6": Messages16(), "2.0.1": Messages201(), "2.1": Messages201()}


def sampled_values(
    msgs: Messages, c: Connector, measurands: list[str], context: str
) -> list[Payload]:
    """The connector's sampled values now, one per measurand (and per line for currents)."""
    draw = {line: max(a, 0.0) for line, a in c.draw().items()}  # import: 0 while discharging
    out: list[Payload] = []

    def add(measurand: str, value: float, unit: str, **extra: str) -> None:
        out.append(msgs.sampled_value(measurand, value, unit, context, extra))

    for m in measurands:
        if m == "Current.Import":
            # the station's own phases, in wiring order: its meter knows not the site's lines
            for k, amps in enumerate(draw.values(), start=1):
                add(m, amps, "A", phase=f"L{k}", location="Outlet")
        elif m == "Power.Active.Import":
            amps = next(iter(draw.values()), 0.0)
            add(m, amps * c.spec.voltage_v * c.power_phases, "W", location="Outlet")
        elif m == "Energy.Active.Import.Register":
            add(m, one_decimal(c.energy_wh), "Wh", location="Outlet")
        elif m == "SoC" and c.ev is not None:
            add(m, c.ev.soc * 100, "Percent", location="EV")
        elif m == "Current.Offered":
            add(m, c.limit_a, "A", location="Outlet")
    return out


def charging_needs(c: Connector, version: str = "2.0.1") -> Payload:
    """2.0.1 NotifyEVChargingNeeds of the EV plugged into c (2.1: a bidirectional
    car's announces BPT, `gridshare.peers.v2x`)."""
    assert c.ev is not None
    if version == "2.1" and v2x.bidirectional(c.ev):
        return v2x.needs(c)
    ev = c.ev.spec
    mode = {3: "AC_three_phase", 2: "AC_two_phase"}.get(c.phases_used, "AC_single_phase")
    needs: dict[str, Any] = {"requestedEnergyTransfer": mode}
    if c.departure is not None:
        needs["departureTime"] = iso(c.departure)
    room = max(ev.soc_target - c.ev.soc, 0.0) * ev.battery_kwh * 1000
    needs["acChargingParameters"] = {
        "energyAmount": round(c.energy_need_wh if c.energy_need_wh is not None else room),
        "evMinCurrent": round(ev.min_current_a),
        "evMaxCurrent": round(ev.max_current_a),
        "evMaxVoltage": round(c.spec.voltage_v * 1.1),
    }
    return {"evseId": c.spec.id, "chargingNeeds": needs}


def transaction_event(
    c: Connector,
    now: datetime,
    event: str,
    trigger: str,
    *,
    offline: bool,
    charging_state: str | None = None,
    meter_value: list[Payload] | None = None,
    id_tag: str | None = None,
    stopped_reason: str | None = None,
) -> Payload:
    """2.0.1 TransactionEvent of c's transaction with c's next seqNo (counts it)."""
    info: dict[str, Any] = {"transactionId": c.tx_id}
    if charging_state is not None:
        info["chargingState"] = charging_state
    if stopped_reason is not None:
        info["stoppedReason"] = stopped_reason
    payload: dict[str, Any] = {
        "eventType": event,
        "timestamp": iso(now),
        "triggerReason": trigger,
        "seqNo": c.seq_no,
        "transactionInfo": info,
    }
    c.seq_no += 1
    if event == "Started":
        payload["evse"] = {"id": c.spec.id, "connectorId": 1}
    if id_tag is not None:
        payload["idToken"] = {"idToken": id_tag, "type": "ISO14443"}
    if meter_value:
        payload["meterValue"] = meter_value
    if offline:
        payload["offline"] = True
    return payload
