"""OCPP 2.1 Dynamic profiles (K28): one profile per transaction, then
UpdateDynamicSchedule; the station's pulls answered. Frames checked against
the official 2.1 schemas as published, and the ``ocpp`` package's own 2.1
ChargePoint taking them over a loopback socket."""

from __future__ import annotations

import asyncio
import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from ocpp.routing import on
from ocpp.v21 import call as call21
from ocpp.v21 import call_result as result21
from ocpp.v21.enums import Action as Action21

from gridshare.service import ocpp_server_settings
from ocpp_adapter.central_system import CentralSystem
from ocpp_adapter.dynamic import (
    DynamicPolicy,
    set_dynamic_profile,
    update_dynamic_schedule,
    window_limit,
)
from ocpp_adapter.events import (
    ChargingLimitSpec,
    CommandOutcome,
    LimitPeriod,
    LimitPurpose,
    StationCapabilities,
)
from ocpp_adapter.profiles import resolve
from ocpp_adapter.rpc import OcppVersion
from tests.ocpp.helpers import FAST, TS, Recorder, Station, make_config, running, station
from tests.ocpp.test_interop import Station21, client
from tests.ocpp.test_v21 import official

V21 = OcppVersion.V21
NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
POLICY = DynamicPolicy(update_interval_s=60, offline_s=300)


def spec(
    *steps: tuple[int, float], used: tuple[int, ...] | None = None, start: datetime = NOW
) -> ChargingLimitSpec:
    return ChargingLimitSpec(
        LimitPurpose.TX,
        1,
        start,
        tuple(LimitPeriod(s, a, 3) for s, a in steps),
        transaction_id="T-1",
        station_phases=used,
    )


def the_period(payload: dict[str, Any]) -> dict[str, Any]:
    [sched] = payload["chargingProfile"]["chargingSchedule"]
    [period] = sched["chargingSchedulePeriod"]
    return dict(period)


# --- payloads ------------------------------------------------------------------------------------


def test_the_value_is_the_lowest_planned_over_interval_plus_offline_bound() -> None:
    # a cut 5 min ahead is inside 60 + 300 s: the station gets it now
    cut_soon = spec((0, 16), (300, 6), (900, 20))
    payload = set_dynamic_profile(cut_soon, resolve(cut_soon, None, NOW), NOW, POLICY)
    official(V21, "SetChargingProfile", payload)
    assert the_period(payload)["limit"] == 6.0
    profile = payload["chargingProfile"]
    assert profile["chargingProfileKind"] == "Dynamic"
    assert profile["dynUpdateInterval"] == 60 and profile["maxOfflineDuration"] == 300
    assert profile["invalidAfterOfflineDuration"] is True
    assert profile["dynUpdateTime"] == "2026-03-02T12:00:00Z"
    # one 10 min ahead is beyond it: the next pull (within 60 s) brings it in time
    cut_later = spec((0, 16), (600, 6))
    assert window_limit(resolve(cut_later, None, NOW), NOW, POLICY.horizon_s) == (16.0, 3)
    assert window_limit(resolve(cut_later, None, NOW), NOW + timedelta(seconds=240), 360)[0] == 6
    # a period already over does not count
    past = spec((0, 4), (60, 16), start=NOW - timedelta(minutes=5))
    assert window_limit(resolve(past, None, NOW), NOW, POLICY.horizon_s)[0] == 16.0


def test_updates_are_per_phase_and_schema_valid_in_amps_and_watts() -> None:
    one_phase = spec((0, 16), used=(1,))
    payload = set_dynamic_profile(one_phase, resolve(one_phase, None, NOW), NOW, POLICY)
    official(V21, "SetChargingProfile", payload)
    p = the_period(payload)
    assert (p["limit"], p["limit_L2"], p["limit_L3"], p["numberPhases"]) == (16.0, 0.0, 0.0, 3)
    watts = StationCapabilities("CP", NOW, ("W",))
    three = spec((0, 16))
    payload = set_dynamic_profile(three, resolve(three, watts, NOW), NOW, POLICY)
    official(V21, "SetChargingProfile", payload)
    # per phase in W: with L2/L3 given, ``limit`` is L1's share
    p = the_period(payload)
    assert (p["limit"], p["limit_L2"], p["limit_L3"]) == (3680.0, 3680.0, 3680.0)
    update = update_dynamic_schedule(3001, {"limit": 10.0, "limit_L2": 0.0, "limit_L3": 0.0})
    official(V21, "UpdateDynamicSchedule", update)


# --- over a socket -------------------------------------------------------------------------------


def _variables_in_amps(p: dict[str, Any]) -> dict[str, Any]:
    results = [
        {
            "attributeStatus": "Accepted",
            "attributeValue": "A" if d["variable"]["name"] == "RateUnit" else "5",
            "component": d["component"],
            "variable": d["variable"],
        }
        for d in p["getVariableData"]
    ]
    return {"getVariableResult": results}


def handlers(**extra: Any) -> dict[str, Any]:
    """A station in A that takes dynamic updates (``extra`` overrides)."""
    accept = {"status": "Accepted"}
    return {
        "GetVariables": _variables_in_amps,
        "UpdateDynamicSchedule": lambda p: accept,
        **extra,
    }


async def _started(st: Station) -> None:
    await st.boot()
    await st.call(
        "TransactionEvent",
        {
            "eventType": "Started",
            "timestamp": TS,
            "triggerReason": "Authorized",
            "seqNo": 0,
            "transactionInfo": {"transactionId": "T-1", "chargingState": "Charging"},
            "evse": {"id": 1, "connectorId": 1},
        },
    )


def live(cs: Any, *steps: tuple[int, float], used: tuple[int, ...] | None = None) -> Any:
    return spec(*steps, used=used, start=cs.clock() - timedelta(seconds=2))


async def test_installed_once_then_updated_and_pulls_get_the_plan() -> None:
    async with running() as (cs, _), station(cs, "CP1", V21, handlers=handlers()) as st:
        await _started(st)
        pull = await st.call("PullDynamicScheduleUpdate", {"chargingProfileId": 3001})
        official(V21, "PullDynamicScheduleUpdate", pull, response=True)
        assert pull["status"] == "Rejected"  # nothing installed yet

        ok = CommandOutcome.ACCEPTED
        assert (await cs.set_limit("CP1", live(cs, (0, 16)))).outcome is ok
        assert (await cs.set_limit("CP1", live(cs, (0, 10), used=(1,)))).outcome is ok
        assert (await cs.set_limit("CP1", live(cs, (0, 20), (120, 8)))).outcome is ok
        [installed] = st.sent("SetChargingProfile")
        official(V21, "SetChargingProfile", installed)
        assert installed["chargingProfile"]["chargingProfileKind"] == "Dynamic"
        updates = st.sent("UpdateDynamicSchedule")
        for u in updates:
            official(V21, "UpdateDynamicSchedule", u)
        assert [u["scheduleUpdate"] for u in updates] == [
            {"limit": 10.0, "limit_L2": 0.0, "limit_L3": 0.0},
            # the drop to 8 A in two minutes is inside the window: sent now
            {"limit": 8.0, "limit_L2": 8.0, "limit_L3": 8.0},
        ]
        pull = await st.call("PullDynamicScheduleUpdate", {"chargingProfileId": 3001})
        official(V21, "PullDynamicScheduleUpdate", pull, response=True)
        assert pull == {"status": "Accepted", "scheduleUpdate": updates[-1]["scheduleUpdate"]}
        # a new transaction on the connector gets a profile of its own
        other = replace(live(cs, (0, 12)), transaction_id="T-2")
        assert (await cs.set_limit("CP1", other)).outcome is ok
        assert len(st.sent("SetChargingProfile")) == 2
        # cleared: nothing left to pull
        assert (await cs.clear_limit("CP1", 1)).outcome is ok
        pull = await st.call("PullDynamicScheduleUpdate", {"chargingProfileId": 3001})
        assert pull["status"] == "Rejected"


async def test_a_station_refusing_dynamic_gets_absolute_and_a_lost_profile_is_reinstalled() -> None:
    def refuse_dynamic(p: dict[str, Any]) -> dict[str, Any]:
        dynamic = p["chargingProfile"]["chargingProfileKind"] == "Dynamic"
        return {"status": "Rejected" if dynamic else "Accepted"}

    async with (
        running() as (cs, _),
        station(cs, "CP1", V21, handlers=handlers(SetChargingProfile=refuse_dynamic)) as st,
    ):
        await _started(st)
        for amps in (16, 10):
            result = await cs.set_limit("CP1", live(cs, (0, amps)))
            assert result.outcome is CommandOutcome.ACCEPTED
        kinds = [p["chargingProfile"]["chargingProfileKind"] for p in st.sent("SetChargingProfile")]
        assert kinds == ["Dynamic", "Absolute", "Absolute"]  # asked once, then Absolute
        assert st.sent("UpdateDynamicSchedule") == []

    lost = handlers(UpdateDynamicSchedule=lambda p: {"status": "Rejected"})
    async with running() as (cs, _), station(cs, "CP1", V21, handlers=lost) as st:
        await _started(st)
        for amps in (16, 10):
            result = await cs.set_limit("CP1", live(cs, (0, amps)))
            assert result.outcome is CommandOutcome.ACCEPTED
        kinds = [p["chargingProfile"]["chargingProfileKind"] for p in st.sent("SetChargingProfile")]
        assert kinds == ["Dynamic", "Dynamic"]
        assert the_period(st.sent("SetChargingProfile")[-1])["limit"] == 10.0


async def test_while_an_update_is_unanswered_a_pull_gets_the_lower_value() -> None:
    answer = asyncio.Event()

    async def slow(p: dict[str, Any]) -> dict[str, Any]:
        await answer.wait()
        return {"status": "Accepted"}

    async with (
        running() as (cs, _),
        station(cs, "CP1", V21, handlers=handlers(UpdateDynamicSchedule=slow)) as st,
    ):
        await _started(st)
        assert (await cs.set_limit("CP1", live(cs, (0, 16)))).outcome is CommandOutcome.ACCEPTED
        raising = asyncio.create_task(cs.set_limit("CP1", live(cs, (0, 32))))
        while not st.sent("UpdateDynamicSchedule"):
            await asyncio.sleep(0.01)
        pull = await st.call("PullDynamicScheduleUpdate", {"chargingProfileId": 3001})
        assert pull["scheduleUpdate"]["limit"] == 16.0  # the raising may not be in force yet
        answer.set()
        assert (await raising).outcome is CommandOutcome.ACCEPTED
        pull = await st.call("PullDynamicScheduleUpdate", {"chargingProfileId": 3001})
        assert pull["scheduleUpdate"]["limit"] == 32.0


# --- the ``ocpp`` package's 2.1 ChargePoint ------------------------------------------------------


class DynamicStation21(Station21):
    updates: list[dict[str, Any]]

    @on(Action21.update_dynamic_schedule)
    def on_update(self, charging_profile_id: int, schedule_update: dict[str, Any]) -> Any:
        self.updates.append({"id": charging_profile_id, **schedule_update})
        return result21.UpdateDynamicSchedule(status="Accepted")


async def test_the_ocpp_package_21_chargepoint_takes_a_dynamic_profile_and_its_update() -> None:
    async with running() as (cs, _), client(cs, "CP1", "ocpp2.1", DynamicStation21) as cp:
        cp.updates = []
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
                transaction_info={"transaction_id": "T-1", "charging_state": "Charging"},
                evse={"id": 1, "connector_id": 1},
            )
        )
        for s in (live(cs, (0, 16)), live(cs, (0, 11), (200, 9))):
            assert (await cs.set_limit("CP1", s)).outcome is CommandOutcome.ACCEPTED
        # the package checked each CALL against its 2.1 schema before its handler ran
        [install] = [f for f in cp.wire if f[2] == "SetChargingProfile"]
        official(V21, "SetChargingProfile", install[3])
        assert install[3]["chargingProfile"]["chargingProfileKind"] == "Dynamic"
        [update] = [f for f in cp.wire if f[2] == "UpdateDynamicSchedule"]
        official(V21, "UpdateDynamicSchedule", update[3])
        assert update[3] == {
            "chargingProfileId": install[3]["chargingProfile"]["id"],
            "scheduleUpdate": {"limit": 9.0, "limit_L2": 9.0, "limit_L3": 9.0},
        }
        assert [u["id"] for u in cp.updates] == [3001]
        pulled = await cp.call(call21.PullDynamicScheduleUpdate(charging_profile_id=3001))
        assert pulled.status == "Accepted"
        assert json.loads(json.dumps(pulled.schedule_update))["limit"] == 9.0


async def test_a_cut_coming_into_the_window_is_pushed_to_a_station_that_does_not_pull() -> None:
    now = [datetime.now(UTC).replace(microsecond=0)]
    cs = CentralSystem(
        ocpp_server_settings(make_config()), Recorder(), settings=FAST, clock=lambda: now[0]
    )
    await cs.start()
    try:
        async with station(cs, "CP1", V21, handlers=handlers()) as st:
            await _started(st)
            # 16 A, then a cut to 6 A in 400 s: beyond the 60 + 300 s a value covers
            plan = spec((0, 16), (400, 6), start=now[0])
            assert (await cs.set_limit("CP1", plan)).outcome is CommandOutcome.ACCEPTED
            assert the_period(st.sent("SetChargingProfile")[0])["limit"] == 16.0
            assert await cs._dynamic.check() == 0  # nothing lower in the window yet
            now[0] += timedelta(seconds=30)
            assert await cs._dynamic.check() == 0
            now[0] += timedelta(seconds=20)  # the cut is 350 s ahead: inside
            assert await cs._dynamic.check() == 1
            [pushed] = st.sent("UpdateDynamicSchedule")
            official(V21, "UpdateDynamicSchedule", pushed)
            assert pushed["scheduleUpdate"]["limit"] == 6.0
            assert await cs._dynamic.check() == 0  # taken: not pushed again
    finally:
        await cs.stop()
