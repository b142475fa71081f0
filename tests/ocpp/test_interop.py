"""Interop: the mobilityhouse ``ocpp`` package's own ChargePoint clients against our server."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any

from ocpp.routing import on
from ocpp.v16 import ChargePoint as ChargePoint16
from ocpp.v16 import call as call16
from ocpp.v16 import call_result as result16
from ocpp.v16.enums import Action as Action16
from ocpp.v201 import ChargePoint as ChargePoint201
from ocpp.v201 import call as call201
from ocpp.v201 import call_result as result201
from ocpp.v201.enums import Action as Action201
from websockets.asyncio.client import connect

from ocpp_adapter import CentralSystem
from ocpp_adapter.events import (
    ChargingLimitSpec,
    CommandOutcome,
    LimitPeriod,
    LimitPurpose,
    MeterReading,
    SessionEnded,
    SessionStarted,
    StationCapabilities,
)
from tests.ocpp.helpers import TS, running


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


@asynccontextmanager
async def client(
    cs: CentralSystem, sid: str, proto: str, cls: Callable[..., Any]
) -> AsyncIterator[Any]:
    async with connect(f"ws://127.0.0.1:{cs.port}/ocpp/{sid}", subprotocols=[proto]) as ws:  # type: ignore[list-item]
        cp = cls(sid, ws, response_timeout=5)
        cp.profiles, cp.cleared = [], []
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
