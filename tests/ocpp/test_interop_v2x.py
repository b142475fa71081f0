"""V2X with an independent 2.1 client: the `ocpp` package's v21 ChargePoint, which
validates every message against its 2.1 schemas both ways, announces a
bidirectional car and takes a discharge as a CentralSetpoint."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

from ocpp.v21 import call as call21

from ocpp_adapter.events import (
    ChargingLimitSpec,
    CommandOutcome,
    EvChargingNeeds,
    LimitPeriod,
    LimitPurpose,
)
from ocpp_adapter.rpc import OcppVersion
from tests.ocpp.helpers import FAST, TS, running
from tests.ocpp.test_interop import Station21, client
from tests.ocpp.test_v21 import official


async def test_a_v2x_discharge_with_the_ocpp_package_s_21_chargepoint() -> None:
    absolute = replace(FAST, dynamic_profiles=False)
    async with (
        running(settings=absolute) as (cs, rec),
        client(cs, "CP1", "ocpp2.1", Station21) as cp,
    ):
        boot = await cp.call(
            call21.BootNotification(
                charging_station={"model": "M", "vendor_name": "V"}, reason="PowerUp"
            )
        )
        assert boot.status == "Accepted"
        await cp.call(
            call21.TransactionEvent(
                event_type="Started",
                timestamp=TS,
                trigger_reason="Authorized",
                seq_no=0,
                transaction_info={"transaction_id": "T-21", "charging_state": "Charging"},
                evse={"id": 1, "connector_id": 1},
                id_token={"id_token": "TAG", "type": "ISO14443"},
            )
        )
        needs = await cp.call(
            call21.NotifyEVChargingNeeds(
                evse_id=1,
                charging_needs={
                    "requested_energy_transfer": "AC_BPT",
                    "available_energy_transfer": ["AC_three_phase", "AC_BPT"],
                    "control_mode": "DynamicControl",
                    "v2x_charging_parameters": {
                        "max_charge_current": 32,
                        "max_discharge_current": 16,
                        "ev_target_energy_request": 8000,
                        "ev_min_v2x_energy_request": -12000,
                        "ev_max_v2x_energy_request": 20000,
                    },
                },
            )
        )
        assert needs.status == "Accepted"
        spec = ChargingLimitSpec(
            LimitPurpose.TX,
            1,
            cs.clock() - timedelta(seconds=2),
            (LimitPeriod(0, -16.0, 3), LimitPeriod(900, 0.0, 3), LimitPeriod(1800, 24.0, 3)),
            transaction_id="T-21",
        )
        result = await cs.set_limit("CP1", spec)
        # the package checked the frame against its own 2.1 schema before taking it
        assert result.outcome is CommandOutcome.ACCEPTED, result
        [frame] = [f for f in cp.wire if f[2] == "SetChargingProfile"]
        official(OcppVersion.V21, "SetChargingProfile", frame[3])
        [profile] = cp.profiles
        discharge, idle, charge = profile["charging_schedule"][0]["charging_schedule_period"]
        assert discharge["operation_mode"] == "CentralSetpoint"
        assert discharge["setpoint"] == discharge["discharge_limit"] == -16.0
        assert discharge["limit"] == 0.0
        assert "operation_mode" not in idle and charge["limit"] == 24.0
        # while it discharges its meter shows no import
        await cp.call(
            call21.TransactionEvent(
                event_type="Updated",
                timestamp=TS,
                trigger_reason="MeterValuePeriodic",
                seq_no=1,
                transaction_info={"transaction_id": "T-21", "charging_state": "Charging"},
                meter_value=[
                    {
                        "timestamp": TS,
                        "sampled_value": [
                            {"value": 0.0, "measurand": "Current.Import", "phase": "L1"},
                            {"value": 16.0, "measurand": "Current.Export", "phase": "L1"},
                        ],
                    }
                ],
            )
        )
    [n] = rec.of(EvChargingNeeds)
    assert n.v2x is not None
    assert (n.v2x.max_discharge_a, n.v2x.min_v2x_energy_wh) == (16.0, -12000.0)
    assert n.energy_wh == 8000
