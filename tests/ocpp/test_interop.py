"""Interop: the mobilityhouse ``ocpp`` package's own ChargePoint clients against our server.

The package checks every CALL it receives against its own copy of the schemas
(the official files for 2.0.1 and 2.1) before its handler runs: a command
that comes back Accepted passed that check."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import replace
from datetime import timedelta
from typing import Any

from ocpp.routing import on
from ocpp.v16 import ChargePoint as ChargePoint16
from ocpp.v16 import call as call16
from ocpp.v16 import call_result as result16
from ocpp.v16.enums import Action as Action16
from ocpp.v21 import ChargePoint as ChargePoint21
from ocpp.v21 import call as call21
from ocpp.v21 import call_result as result21
from ocpp.v21.enums import Action as Action21
from ocpp.v201 import ChargePoint as ChargePoint201
from ocpp.v201 import call as call201
from ocpp.v201 import call_result as result201
from ocpp.v201.enums import Action as Action201
from websockets.asyncio.client import connect

from ocpp_adapter import CentralSystem
from ocpp_adapter.events import (
    ChargingLimitSpec,
    CommandOutcome,
    EvChargingNeeds,
    LimitPeriod,
    LimitPurpose,
    MeterReading,
    SessionEnded,
    SessionStarted,
    StationCapabilities,
)
from ocpp_adapter.rpc import OcppVersion
from tests.ocpp.helpers import FAST, TS, running
from tests.ocpp.test_v21 import official


class Station16(ChargePoint16):
    profiles: list[dict[str, Any]]
    cleared: list[dict[str, Any]]

    @on(Action16.get_configuration)
    def on_get_configuration(self, **kwargs: Any) -> result16.GetConfiguration:
        return result16.GetConfiguration(
            configuration_key=[
                {"key": "ChargingScheduleMaxPeriods", "readonly": True, "value": "4"},
                {
                    "key": "ChargingScheduleAllowedChargingRateUnit",
                    "readonly": True,
                    "value": "Power",
                },
            ]
        )

    @on(Action16.set_charging_profile)
    def on_set_charging_profile(
        self, connector_id: int, cs_charging_profiles: dict[str, Any]
    ) -> result16.SetChargingProfile:
        self.profiles.append({"connector_id": connector_id, **cs_charging_profiles})
        return result16.SetChargingProfile(status="Accepted")

    @on(Action16.clear_charging_profile)
    def on_clear(self, **kwargs: Any) -> result16.ClearChargingProfile:
        self.cleared.append(kwargs)
        return result16.ClearChargingProfile(status="Accepted")


class Station201(ChargePoint201):
    profiles: list[dict[str, Any]]
    cleared: list[dict[str, Any]]

    @on(Action201.set_charging_profile)
    def on_set_charging_profile(
        self, evse_id: int, charging_profile: dict[str, Any]
    ) -> result201.SetChargingProfile:
        self.profiles.append({"evse_id": evse_id, **charging_profile})
        return result201.SetChargingProfile(status="Accepted")

    @on(Action201.clear_charging_profile)
    def on_clear(self, **kwargs: Any) -> result201.ClearChargingProfile:
        self.cleared.append(kwargs)
        return result201.ClearChargingProfile(status="Accepted")


class Station21(ChargePoint21):
    """A 2.1 station that keeps the CALLs it received as they came over the wire."""

    profiles: list[dict[str, Any]]
    cleared: list[dict[str, Any]]
    wire: list[list[Any]]

    async def route_message(self, raw_msg: str | bytes) -> None:
        frame = json.loads(raw_msg)
        if frame[0] == 2:
            self.wire.append(frame)
        await super().route_message(raw_msg)

    @on(Action21.get_variables)
    def on_get_variables(self, get_variable_data: list[dict[str, Any]]) -> Any:
        return result21.GetVariables(
            get_variable_result=[
                {
                    "attribute_status": "Accepted",
                    "attribute_value": {"RateUnit": "A", "PeriodsPerSchedule": "8"}.get(
                        d["variable"]["name"], "3"
                    ),
                    "component": d["component"],
                    "variable": d["variable"],
                }
                for d in get_variable_data
            ]
        )

    @on(Action21.set_variables)
    def on_set_variables(self, set_variable_data: list[dict[str, Any]]) -> Any:
        return result21.SetVariables(
            set_variable_result=[
                {
                    "attribute_status": "Accepted",
                    "component": d["component"],
                    "variable": d["variable"],
                }
                for d in set_variable_data
            ]
        )

    @on(Action21.set_charging_profile)
    def on_set_charging_profile(self, evse_id: int, charging_profile: dict[str, Any]) -> Any:
        self.profiles.append({"evse_id": evse_id, **charging_profile})
        return result21.SetChargingProfile(status="Accepted")


@asynccontextmanager
async def client(
    cs: CentralSystem, sid: str, proto: str, cls: Callable[..., Any]
) -> AsyncIterator[Any]:
    async with connect(f"ws://127.0.0.1:{cs.port}/ocpp/{sid}", subprotocols=[proto]) as ws:  # type: ignore[list-item]
        cp = cls(sid, ws, response_timeout=5)
        cp.profiles, cp.cleared, cp.wire = [], [], []
        runner = asyncio.create_task(cp.start())
        try:
            yield cp
        finally:
            runner.cancel()
            await asyncio.gather(runner, return_exceptions=True)


def limit(cs: CentralSystem, tx: str, *amps: float) -> ChargingLimitSpec:
    return ChargingLimitSpec(
        LimitPurpose.TX,
        1,
        cs.clock() - timedelta(seconds=2),
        tuple(LimitPeriod(i * 600, a, 3) for i, a in enumerate(amps)),
        transaction_id=tx,
    )


async def test_ocpp16_chargepoint_client() -> None:
    async with running() as (cs, rec), client(cs, "CP1", "ocpp1.6", Station16) as cp:
        boot = await cp.call(
            call16.BootNotification(charge_point_model="M", charge_point_vendor="V")
        )
        assert boot.status == "Accepted"
        start = await cp.call(
            call16.StartTransaction(connector_id=1, id_tag="TAG", meter_start=10, timestamp=TS)
        )
        tx = start.transaction_id
        result = await cs.set_limit("CP1", limit(cs, str(tx), 16, 16, 8))
        assert result.outcome is CommandOutcome.ACCEPTED, result
        [profile] = cp.profiles
        assert profile["transaction_id"] == tx
        schedule = profile["charging_schedule"]
        # the station said it takes W only: 16 A × 230 V × 3
        assert schedule["charging_rate_unit"] == "W"
        assert [p["limit"] for p in schedule["charging_schedule_period"]] == [11040.0, 5520.0]
        await cp.call(
            call16.MeterValues(
                connector_id=1,
                transaction_id=tx,
                meter_value=[
                    {
                        "timestamp": TS,
                        "sampledValue": [
                            {
                                "value": "15.5",
                                "measurand": "Current.Import",
                                "phase": "L1",
                                "unit": "A",
                            },
                            {"value": "2000", "measurand": "Energy.Active.Import.Register"},
                        ],
                    }
                ],
            )
        )
        await cp.call(call16.StopTransaction(meter_stop=3000, timestamp=TS, transaction_id=tx))
        assert (await cs.clear_limit("CP1", 1)).outcome is CommandOutcome.ACCEPTED
        assert cp.cleared == [{"connector_id": 1, "charging_profile_purpose": "TxProfile"}]
        [caps] = await rec.wait_for(StationCapabilities)
        assert caps.max_periods == 4 and caps.rate_units == ("W",)

    [reading] = rec.of(MeterReading)
    assert reading.current_a == {"L1": 15.5} and reading.energy_wh == 2000.0
    assert rec.of(SessionStarted)[0].transaction_id == str(tx)
    assert rec.of(SessionEnded)[0].meter_stop_wh == 3000.0


async def test_ocpp201_chargepoint_client() -> None:
    async with running() as (cs, rec), client(cs, "CP2", "ocpp2.0.1", Station201) as cp:
        boot = await cp.call(
            call201.BootNotification(
                charging_station={"model": "M", "vendor_name": "V"}, reason="PowerUp"
            )
        )
        assert boot.status == "Accepted"
        await cp.call(
            call201.TransactionEvent(
                event_type="Started",
                timestamp=TS,
                trigger_reason="Authorized",
                seq_no=0,
                transaction_info={"transaction_id": "T-1"},
                evse={"id": 1, "connector_id": 1},
                id_token={"id_token": "TAG", "type": "ISO14443"},
            )
        )
        result = await cs.set_limit("CP2", limit(cs, "T-1", 10))
        assert result.outcome is CommandOutcome.ACCEPTED, result
        [profile] = cp.profiles
        assert profile["evse_id"] == 1 and profile["transaction_id"] == "T-1"
        assert profile["charging_schedule"][0]["charging_rate_unit"] == "A"
        await cp.call(
            call201.MeterValues(
                evse_id=1,
                meter_value=[
                    {
                        "timestamp": TS,
                        "sampled_value": [
                            {"value": 9.8, "measurand": "Current.Import", "phase": "L2"}
                        ],
                    }
                ],
            )
        )
        await cp.call(
            call201.TransactionEvent(
                event_type="Ended",
                timestamp=TS,
                trigger_reason="EVDeparted",
                seq_no=1,
                transaction_info={"transaction_id": "T-1", "stopped_reason": "EVDisconnected"},
            )
        )
        assert (await cs.clear_limit("CP2", 1)).outcome is CommandOutcome.ACCEPTED
        assert cp.cleared

    [reading] = rec.of(MeterReading)
    assert reading.current_a == {"L2": 9.8} and reading.transaction_id == "T-1"
    [ended] = rec.of(SessionEnded)
    assert ended.connector_id == "CP2/1" and ended.reason == "EVDisconnected"
    # GetVariables went unanswered by this client (it has no handler): defaults apply
    [caps] = rec.of(StationCapabilities)
    assert caps.rate_units == ("A",)


async def test_ocpp21_chargepoint_client() -> None:
    # Absolute profiles here (their periods); Dynamic ones: test_v21_dynamic
    absolute = replace(FAST, dynamic_profiles=False)
    async with (
        running(settings=absolute) as (cs, rec),
        client(cs, "CP1", "ocpp2.1", Station21) as cp,
    ):
        assert cp._connection.subprotocol == "ocpp2.1"
        boot = await cp.call(
            call21.BootNotification(
                charging_station={"model": "M", "vendor_name": "V"}, reason="PowerUp"
            )
        )
        assert boot.status == "Accepted"
        for seq, kind, trigger in (
            (0, "Started", "Authorized"),
            (1, "Updated", "MeterValuePeriodic"),
        ):
            await cp.call(
                call21.TransactionEvent(
                    event_type=kind,
                    timestamp=TS,
                    trigger_reason=trigger,
                    seq_no=seq,
                    transaction_info={"transaction_id": "T-21", "charging_state": "Charging"},
                    evse={"id": 1, "connector_id": 1},
                    id_token={"id_token": "TAG", "type": "ISO14443"} if seq == 0 else None,
                    meter_value=[
                        {
                            "timestamp": TS,
                            "sampled_value": [
                                {"value": 15.8, "measurand": "Current.Import", "phase": "L1"}
                            ],
                        }
                    ],
                )
            )
        needs = await cp.call(
            call21.NotifyEVChargingNeeds(
                evse_id=1,
                charging_needs={
                    "requested_energy_transfer": "AC_single_phase",
                    "control_mode": "ScheduledControl",
                    "ac_charging_parameters": {
                        "energy_amount": 9000,
                        "ev_min_current": 6,
                        "ev_max_current": 16,
                        "ev_max_voltage": 230,
                    },
                },
            )
        )
        assert needs.status == "Accepted"
        [caps] = await rec.wait_for(StationCapabilities)
        assert caps.rate_units == ("A",) and caps.max_periods == 8
        one_phase = ChargingLimitSpec(
            LimitPurpose.TX,
            1,
            cs.clock() - timedelta(seconds=2),
            (LimitPeriod(0, 16.0, 3), LimitPeriod(600, 10.0, 3)),
            transaction_id="T-21",
            station_phases=(1,),
        )
        result = await cs.set_limit("CP1", one_phase)
        assert result.outcome is CommandOutcome.ACCEPTED, result
        [frame] = [f for f in cp.wire if f[2] == "SetChargingProfile"]
        official(OcppVersion.V21, "SetChargingProfile", frame[3])
        sent = frame[3]["chargingProfile"]
        assert sent["maxOfflineDuration"] > 0 and sent["invalidAfterOfflineDuration"] is True
        wire_periods = sent["chargingSchedule"][0]["chargingSchedulePeriod"]
        assert [(p["limit"], p["limit_L2"], p["limit_L3"]) for p in wire_periods] == [
            (16.0, 0.0, 0.0),
            (10.0, 0.0, 0.0),
        ]
        # what the package's dataclasses made of it: its own snake case, same figures
        [profile] = cp.profiles
        assert profile["charging_schedule"][0]["charging_schedule_period"][0]["limit_l2"] == 0.0

    [n] = rec.of(EvChargingNeeds)
    assert n.energy_wh == 9000 and n.ev_max_current_a == 16
    [reading, *_] = rec.of(MeterReading)
    assert reading.current_a == {"L1": 15.8} and reading.transaction_id == "T-21"
    assert rec.of(SessionStarted)[0].connector_id == "CP1/1"
