"""Bidirectional EVs in the simulated stations (OCPP 2.1, ISO 15118-20 BPT).

A car whose `EvSpec.max_discharge_a` is above 0 announces BPT in its
``NotifyEVChargingNeeds`` (``AC_BPT``, its ``v2xChargingParameters``: the most
it may be discharged at, and the energy to its lowest and highest state of
charge for cycling) and follows a ``CentralSetpoint``: where the TxProfile in
force gives a negative ``setpoint`` it feeds back that current, within the
period's ``dischargeLimit`` and its own maximum, its battery going down, never
below `EvSpec.v2x_min_soc`. Its meter reports what it imports (0 while it
discharges); what it fed back is kept apart (`Connector.export_wh`). While it
is discharged it sends its needs again with each meter sample, as a car in
ISO 15118-20 Dynamic mode does when they change.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Protocol

from gridshare.peers.ev import Ev
from gridshare.peers.limits import ConnectorContext, Period, ProfileStore, Purpose, to_amps
from gridshare.peers.wire import iso


class Fleet(Protocol):
    """What the views below read of `gridshare.peers.fleet.StationFleet`."""

    def station(self, station_id: str) -> Any: ...


def setpoint_a(
    store: ProfileStore, connector: int, t: datetime, ctx: ConnectorContext
) -> float | None:
    """The running transaction's setpoint at ``t`` (A per phase, negative:
    discharge, bounded by the discharge limit), None where none is in force."""
    if ctx.transaction_id is None:
        return None
    tx = [
        p
        for p in store.profiles.values()
        if p.purpose is Purpose.TX
        and p.connector == connector
        and p.transaction_id in (None, ctx.transaction_id)
        and p.is_valid(t, store.offline_since)
    ]
    for p in sorted(tx, key=lambda p: -p.stack_level):
        v: Period | None = p.value_at(t, ctx.tx_start, store.offline_since)
        if v is None:
            continue
        if v.setpoint is None:
            return None
        unit, phases = p.schedule.rate_unit, min(ctx.phases, v.number_phases or 3)
        amps = to_amps(v.setpoint, unit, ctx.voltage_v, 1 if v.phase_limits else phases)
        if v.discharge_limit is not None:
            floor = to_amps(v.discharge_limit, unit, ctx.voltage_v, 1 if v.phase_limits else phases)
            amps = max(amps, floor)
        return amps
    return None


def discharge(ev: Ev, dt_s: float, amps: float, volts_x_phases: float) -> float:
    """Feed back ``amps`` (per phase, within the car's maximum) for ``dt_s``
    seconds down to its lowest state of charge for cycling; the Wh fed back."""
    s = ev.spec
    amps = min(amps, s.max_discharge_a)
    room_wh = max(ev.soc - s.v2x_min_soc, 0.0) * s.battery_kwh * 1000.0
    wh = min(amps * volts_x_phases * dt_s / 3600.0, room_wh)
    ev.soc -= wh / (s.battery_kwh * 1000.0)
    ev.current_a = -amps if wh < room_wh else 0.0
    return wh


def bidirectional(ev: Ev | None) -> bool:
    return ev is not None and ev.spec.max_discharge_a > 0


def discharging(ev: Ev | None) -> bool:
    return ev is not None and ev.current_a < 0


def net_limit_in_force(fleet: Fleet, connector_id: str) -> float:
    """What a simulated station lets the connector take now, per phase (A): its
    setpoint where one is in force (negative: discharge), else its limit."""
    sid, n = connector_id.rsplit("/", 1)
    st = fleet.station(sid).protocol
    st.advance()
    c = st.connector(int(n))
    sp = setpoint_a(st.bank.store, c.spec.id, st.clock(), st.bank.context(c))
    return c.limit_a if sp is None or not bidirectional(c.ev) else min(sp, c.limit_a)


def exported_wh(fleet: Fleet, connector_id: str) -> float:
    sid, n = connector_id.rsplit("/", 1)
    return fleet.station(sid).protocol.connector(int(n)).export_wh


def needs(c: Any) -> dict[str, Any]:
    """2.1 NotifyEVChargingNeeds of a bidirectional car at connector ``c``."""
    ev = c.ev
    s = ev.spec
    wh = s.battery_kwh * 1000.0
    level = s.soc_target * wh  # what it wants to hold at departure
    if c.energy_need_wh is not None:  # stated at plug-in, from its level then
        level = min(level, s.soc_start * wh + c.energy_need_wh)
    out: dict[str, Any] = {
        "requestedEnergyTransfer": "AC_BPT",
        "availableEnergyTransfer": ["AC_BPT"],
        "controlMode": "DynamicControl",
        "v2xChargingParameters": {
            "minChargeCurrent": s.min_current_a,
            "maxChargeCurrent": s.max_current_a,
            "maxDischargeCurrent": s.max_discharge_a,
            "evTargetEnergyRequest": round(max(level - ev.soc * wh, 0.0)),
            "evMinV2XEnergyRequest": round((s.v2x_min_soc - ev.soc) * wh),
            "evMaxV2XEnergyRequest": round((1.0 - ev.soc) * wh),
        },
    }
    if c.departure is not None:
        out["departureTime"] = iso(c.departure)
    return {"evseId": c.spec.id, "chargingNeeds": out}
