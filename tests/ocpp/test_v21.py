"""OCPP 2.1: its profiles checked against the official 2.1 schemas as published, and a
2.1 station over a real socket (the 2.0.1 exchange itself is in test_server)."""

from __future__ import annotations

import asyncio
import decimal
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import jsonschema
import pytest
from ocpp.charge_point import snake_to_camel_case

from ocpp_adapter.events import (
    ChargingLimitSpec,
    CommandOutcome,
    EvChargingNeeds,
    LimitPeriod,
    LimitPurpose,
    SessionStarted,
    StationCapabilities,
)
from ocpp_adapter.profiles import (
    OfflinePolicy,
    charging_profile_21,
    resolve,
    set_profile_21,
    set_profile_201,
)
from ocpp_adapter.rpc import OcppVersion, load_schema
from tests.ocpp.helpers import TS, running, station

V201, V21 = OcppVersion.V201, OcppVersion.V21
NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
POLICY = OfflinePolicy(max_offline_s=300, randomized_delay_s=30)


def official(
    version: OcppVersion, action: str, payload: dict[str, Any], response: bool = False
) -> None:
    """The schema as published: no relaxation, multipleOf and date-time checked,
    decimals read exactly."""
    schema = json.loads(
        json.dumps(load_schema(version, action, response)), parse_float=decimal.Decimal
    )
    exact = json.loads(json.dumps(payload), parse_float=decimal.Decimal)
    cls = jsonschema.validators.validator_for(schema)
    cls(schema, format_checker=cls.FORMAT_CHECKER).validate(exact)


def spec(
    *limits: float,
    purpose: LimitPurpose = LimitPurpose.TX,
    phases: int = 3,
    used: tuple[int, ...] | None = None,
) -> ChargingLimitSpec:
    return ChargingLimitSpec(
        purpose,
        1 if purpose is not LimitPurpose.STATION_MAX else 0,
        NOW,
        tuple(LimitPeriod(i * 900, a, phases) for i, a in enumerate(limits)),
        transaction_id="T-1" if purpose is LimitPurpose.TX else None,
        station_phases=used,
    )


def periods(payload: dict[str, Any]) -> list[dict[str, Any]]:
    [schedule] = payload["chargingProfile"]["chargingSchedule"]
    return list(schedule["chargingSchedulePeriod"])


# --- profiles ------------------------------------------------------------------------------------


def test_a_one_phase_car_gets_its_phase_and_zero_on_the_others() -> None:
    s = spec(16, 10, used=(1,))
    payload = set_profile_21(s, resolve(s, None, NOW), POLICY)
    official(V21, "SetChargingProfile", payload)
    assert [(p["limit"], p["limit_L2"], p["limit_L3"]) for p in periods(payload)] == [
        (16.0, 0.0, 0.0),
        (10.0, 0.0, 0.0),
    ]
    # a car on the station's second and third phases (e.g. a two-phase car wired so)
    s = spec(16, used=(2, 3))
    [p] = periods(set_profile_21(s, resolve(s, None, NOW), POLICY))
    assert (p["limit"], p["limit_L2"], p["limit_L3"], p["numberPhases"]) == (0.0, 16.0, 16.0, 3)


def test_per_phase_in_watts_is_each_phases_share() -> None:
    s = spec(16, used=(1,))
    payload = set_profile_21(s, resolve(s, StationCapabilities("CP", NOW, ("W",)), NOW), POLICY)
    official(V21, "SetChargingProfile", payload)
    [p] = periods(payload)
    # the period's total is 16 A × 230 V × 3; with L2/L3 given, limit is L1's alone
    assert (p["limit"], p["limit_L2"], p["limit_L3"]) == (3680.0, 0.0, 0.0)


def test_every_phase_used_sends_one_figure_and_201_never_gets_per_phase() -> None:
    for s in (spec(16), spec(16, used=(1, 2, 3)), spec(16, phases=1, used=(1,))):
        [p] = periods(set_profile_21(s, resolve(s, None, NOW), POLICY))
        assert "limit_L2" not in p and "limit_L3" not in p
    s = spec(16, used=(1,))
    payload = set_profile_201(s, resolve(s, None, NOW))
    official(V201, "SetChargingProfile", payload)
    assert "limit_L2" not in periods(payload)[0]
    # and 2.0.1's schema would refuse the 2.1 names: the version decides the payload
    with pytest.raises(jsonschema.ValidationError):
        official(V201, "SetChargingProfile", set_profile_21(s, resolve(s, None, NOW), POLICY))


def test_the_packages_own_key_conversion_is_not_what_the_schema_names() -> None:
    """Why the adapter writes the schema's names itself: ``ocpp``'s conversion of its
    own dataclass field ``limit_l2`` gives ``limitL2``, which its 2.1 schema refuses."""
    converted = snake_to_camel_case({"start_period": 0, "limit": 16.0, "limit_l2": 0.0})
    assert "limitL2" in converted
    s = spec(16)
    payload = set_profile_21(s, resolve(s, None, NOW), POLICY)
    periods(payload)[0].update(converted)
    with pytest.raises(jsonschema.ValidationError, match="limitL2"):
        official(V21, "SetChargingProfile", payload)


def test_a_tx_profile_is_bounded_offline_and_a_default_is_not() -> None:
    tx = spec(16)
    profile = charging_profile_21(tx, resolve(tx, None, NOW), POLICY)
    assert profile["maxOfflineDuration"] == 300 and profile["invalidAfterOfflineDuration"] is True
    default = spec(16, purpose=LimitPurpose.TX_DEFAULT)
    profile = charging_profile_21(default, resolve(default, None, NOW), POLICY)
    # the TxDefault is what the station falls back to: it must outlive any cut
    assert "maxOfflineDuration" not in profile and "invalidAfterOfflineDuration" not in profile
    unbounded = charging_profile_21(tx, resolve(tx, None, NOW), OfflinePolicy(None, 0))
    assert "maxOfflineDuration" not in unbounded
    official(V21, "SetChargingProfile", {"evseId": 1, "chargingProfile": profile})


def test_randomized_delay_only_postpones_raisings() -> None:
    rising = spec(10, 16)
    schedule = resolve(rising, None, NOW)
    profile = charging_profile_21(rising, schedule, POLICY)
    [sched] = profile["chargingSchedule"]
    assert sched["randomizedDelay"] == 30
    start = datetime.fromisoformat(sched["startSchedule"])
    # the first period is in force on receipt even if delayed by the full 30 s ...
    assert start + timedelta(seconds=30) <= schedule.start
    # ... and the raising comes no earlier than planned, at most 30 s late
    raise_at = start + timedelta(seconds=sched["chargingSchedulePeriod"][1]["startPeriod"])
    planned = schedule.start + timedelta(seconds=schedule.periods[1][0])
    assert raise_at == planned
    falling = spec(16, 10)
    [sched] = charging_profile_21(falling, resolve(falling, None, NOW), POLICY)["chargingSchedule"]
    # a delayed lowering would keep the higher limit past its end: no delay at all
    assert "randomizedDelay" not in sched
    assert sched["startSchedule"] == "2026-03-02T11:59:55Z"
    station_max = spec(40, purpose=LimitPurpose.STATION_MAX)
    [sched] = charging_profile_21(station_max, resolve(station_max, None, NOW), POLICY)[
        "chargingSchedule"
    ]
    assert "randomizedDelay" not in sched  # only allowed on TxProfile and TxDefaultProfile


# --- over a socket -------------------------------------------------------------------------------


def needs_21() -> dict[str, Any]:
    """NotifyEVChargingNeeds as a 2.1 station sends it (ISO 15118-20 fields)."""
    return {
        "evseId": 1,
        "timestamp": TS,
        "chargingNeeds": {
            "requestedEnergyTransfer": "AC_single_phase",
            "availableEnergyTransfer": ["AC_single_phase"],
            "controlMode": "DynamicControl",
            "departureTime": "2026-03-02T17:00:00Z",
            "acChargingParameters": {
                "energyAmount": 12000,
                "evMinCurrent": 6,
                "evMaxCurrent": 32,
                "evMaxVoltage": 230,
            },
        },
    }


async def test_a_21_station_boots_charges_and_gets_per_phase_limits() -> None:
    async with running() as (cs, rec), station(cs, "CP1", V21) as st:
        assert st.ws.subprotocol == "ocpp2.1"
        boot = await st.boot()
        official(V21, "BootNotification", boot, response=True)
        started = {
            "eventType": "Started",
            "timestamp": TS,
            "triggerReason": "Authorized",
            "seqNo": 0,
            "transactionInfo": {"transactionId": "T-1", "chargingState": "Charging"},
            "evse": {"id": 1, "connectorId": 1},
            "idToken": {"idToken": "TAG", "type": "ISO14443"},
        }
        official(V21, "TransactionEvent", started)
        reply = await st.call("TransactionEvent", started)
        official(V21, "TransactionEvent", reply, response=True)
        official(V21, "NotifyEVChargingNeeds", needs_21())
        assert await st.call("NotifyEVChargingNeeds", needs_21()) == {"status": "Accepted"}

        one_phase = ChargingLimitSpec(
            LimitPurpose.TX,
            1,
            cs.clock(),
            (LimitPeriod(0, 16.0, 3),),
            transaction_id="T-1",
            station_phases=(1,),
        )
        assert (await cs.set_limit("CP1", one_phase)).outcome is CommandOutcome.ACCEPTED
        [sent] = st.sent("SetChargingProfile")
        official(V21, "SetChargingProfile", sent)
        [p] = sent["chargingProfile"]["chargingSchedule"][0]["chargingSchedulePeriod"]
        # the test station answers RateUnit W (helpers): 16 A × 230 V on L1 only
        assert (p["limit"], p["limit_L2"], p["limit_L3"]) == (3680.0, 0.0, 0.0)
        # what the central system asked after boot is 2.1-valid as well
        for action in ("GetVariables", "SetVariables"):
            for payload in st.sent(action):
                official(V21, action, payload)

    [needs] = rec.of(EvChargingNeeds)
    assert needs.energy_wh == 12000 and needs.ev_max_current_a == 32
    assert needs.departure == datetime(2026, 3, 2, 17, 0, tzinfo=UTC)
    [started_event] = rec.of(SessionStarted)
    assert started_event.connector_id == "CP1/1" and started_event.transaction_id == "T-1"


async def test_send_and_callresulterror_are_taken_and_never_answered() -> None:
    stream = {"id": 1, "pending": 0, "basetime": TS, "data": [{"t": 0, "v": "16.0"}]}
    async with running() as (cs, _), station(cs, "CP1", V21) as st:
        await st.boot()
        await st.send_raw(json.dumps([6, "s-1", "NotifyPeriodicEventStream", stream]))
        await st.send_raw(json.dumps([6, "s-2", "NotifyPeriodicEventStream", {"id": 1}]))
        await st.send_raw(json.dumps([6, "s-3", "Heartbeat", {}]))
        await st.send_raw(json.dumps([5, "1", "FormatViolation", "bad result", {}]))
        # the next CALL is answered and nothing else came back
        assert "currentTime" in await st.call("Heartbeat", {})
        assert st.raw.empty()
    async with running() as (cs, _), station(cs, "CP1", V201) as st:
        # 2.0.1 knows neither message type
        for frame in ([6, "s-1", "NotifyPeriodicEventStream", stream], [5, "x", "E", "", {}]):
            await st.send_raw(json.dumps(frame))
            error = await asyncio.wait_for(st.raw.get(), 2)
            assert error[:3] == [4, frame[1], "MessageTypeNotSupported"]


async def test_21_messages_without_a_plan_of_their_own_get_their_answers() -> None:
    async with running() as (cs, rec), station(cs, "CP1", V21) as st:
        await st.boot()
        reply = await st.call("NotifyPriorityCharging", {"transactionId": "T-1", "activated": True})
        assert reply == {}
        reply = await st.call("PullDynamicScheduleUpdate", {"chargingProfileId": 3001})
        official(V21, "PullDynamicScheduleUpdate", reply, response=True)
        assert reply["status"] == "Rejected"
        # ISO 15118-20 needs carried in v2xChargingParameters only
        needs = {
            "evseId": 1,
            "chargingNeeds": {
                "requestedEnergyTransfer": "AC_three_phase",
                "controlMode": "DynamicControl",
                "v2xChargingParameters": {
                    "evTargetEnergyRequest": 15000,
                    "minChargeCurrent": 6,
                    "maxChargeCurrent": 20,
                },
            },
        }
        official(V21, "NotifyEVChargingNeeds", needs)
        assert await st.call("NotifyEVChargingNeeds", needs) == {"status": "Accepted"}
    [n] = rec.of(EvChargingNeeds)
    assert (n.energy_wh, n.ev_min_current_a, n.ev_max_current_a) == (15000.0, 6.0, 20.0)
