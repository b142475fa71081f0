"""What a simulated 2.1 station makes of a Dynamic profile (K28): the limit an
update or a pull puts in force, when it pulls, and its fall-back when nothing
comes within ``dynUpdateInterval`` + ``maxOfflineDuration``; then the same
over OCPP with the central system's own frames."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from gridshare.config import parse_config
from gridshare.peers.ev import EvSpec
from gridshare.peers.fleet import StationFleet
from gridshare.peers.limits import ProfileError, profile_from_v21, profile_from_v201
from gridshare.peers.specs import SimConnectorSpec, SimStationSpec
from gridshare.service import ocpp_server_settings
from ocpp_adapter.central_system import AdapterSettings, CentralSystem
from ocpp_adapter.dynamic import (
    DynamicPolicy,
    schedule_update,
    set_dynamic_profile,
    update_dynamic_schedule,
)
from ocpp_adapter.events import (
    ChargingLimitSpec,
    CommandOutcome,
    LimitPeriod,
    LimitPurpose,
    SessionStarted,
)
from ocpp_adapter.profiles import resolve
from tests.stations.test_limits_21 import MAX_A, T0, ctx, profile, store_with

DEFAULT_A = 6.0


def dynamic(limit: float, interval: int = 60, offline: int = 300, **extra: Any) -> dict[str, Any]:
    raw = profile(
        3001,
        "TxProfile",
        [{"startPeriod": 0, "limit": limit}],
        maxOfflineDuration=offline,
        invalidAfterOfflineDuration=True,
        dynUpdateInterval=interval,
        dynUpdateTime=T0.isoformat().replace("+00:00", "Z"),
        **extra,
    )
    raw["chargingProfileKind"] = "Dynamic"
    return raw


def store(limit: float = 16.0, **kw: Any) -> Any:
    default = profile(2001, "TxDefaultProfile", [{"startPeriod": 0, "limit": DEFAULT_A}])
    return store_with(dynamic(limit, **kw), default)


def at(s: int) -> Any:
    return T0 + timedelta(seconds=s)


def test_an_update_changes_the_limit_in_force_at_once() -> None:
    st = store(16.0)
    assert st.limit_a(1, at(1), ctx(3), MAX_A) == 16.0
    st.update_dynamic(3001, {"limit": 10.0}, at(30))
    assert st.limit_a(1, at(30), ctx(3), MAX_A) == 10.0
    st.update_dynamic(3001, {"limit": 20.0, "limit_L2": 0.0, "limit_L3": 0.0}, at(40))
    assert st.limit_a(1, at(40), ctx(1), MAX_A) == 20.0  # a one-phase car: L1
    assert st.limit_a(1, at(40), ctx(3), MAX_A) == 0.0
    with pytest.raises(ProfileError):
        st.update_dynamic(2001, {"limit": 32.0}, at(50))  # not a Dynamic profile
    with pytest.raises(ProfileError):
        st.update_dynamic(3001, {"setpoint": 3.0}, at(50))  # no limit


def test_without_an_update_within_interval_and_offline_bound_it_falls_back() -> None:
    st = store(16.0, interval=60, offline=300)
    assert st.limit_a(1, at(359), ctx(3), MAX_A) == 16.0
    assert st.limit_a(1, at(360), ctx(3), MAX_A) == DEFAULT_A  # the TxDefault
    # an update restarts the count
    st.update_dynamic(3001, {"limit": 12.0}, at(361))
    assert st.limit_a(1, at(700), ctx(3), MAX_A) == 12.0
    assert st.limit_a(1, at(721), ctx(3), MAX_A) == DEFAULT_A
    # and GetCompositeSchedule shows the fall-back where it happens
    st.update_dynamic(3001, {"limit": 12.0}, at(1000))
    [first, second] = st.composite(1, at(1000), 600, ctx(3), MAX_A)
    assert (first.start_s, first.limit) == (0, 12.0)
    assert (second.start_s, second.limit) == (360, DEFAULT_A)


def test_it_pulls_each_interval_after_the_last_update_until_answered() -> None:
    st = store(16.0, interval=60)
    assert st.next_pull() == at(60)
    assert st.pulls_due(at(59)) == []
    assert st.pulls_due(at(60)) == [3001]
    assert st.pulls_due(at(61)) == []  # asked once
    assert st.pulls_due(at(120)) == [3001]  # unanswered: again an interval later
    st.update_dynamic(3001, {"limit": 8.0}, at(130))
    assert st.next_pull() == at(190)
    no_interval = store(16.0, interval=0)
    assert no_interval.next_pull() is None and no_interval.pulls_due(at(10_000)) == []


def test_a_dynamic_profile_has_one_period_and_is_2_1s() -> None:
    raw = dynamic(16.0)
    two = {**raw, "chargingSchedule": [dict(raw["chargingSchedule"][0])]}
    two["chargingSchedule"][0]["chargingSchedulePeriod"] = [
        {"startPeriod": 0, "limit": 16.0},
        {"startPeriod": 60, "limit": 8.0},
    ]
    with pytest.raises(ProfileError, match="one period"):
        profile_from_v21(1, two)
    with pytest.raises(ProfileError, match=r"2\.1"):
        profile_from_v201(1, raw)


def test_what_gridshare_sends_is_never_above_the_plan_while_in_force() -> None:
    """The central system's own Dynamic profile and updates, evaluated by the
    station second by second against the plan they came from."""
    pol = DynamicPolicy(update_interval_s=60, offline_s=300)
    plan = ChargingLimitSpec(
        LimitPurpose.TX,
        1,
        T0,
        (LimitPeriod(0, 16, 3), LimitPeriod(200, 6, 3), LimitPeriod(900, 24, 3)),
        transaction_id="T-1",
    )

    def planned(t: Any) -> float:
        s = (t - T0).total_seconds()
        return 16.0 if s < 200 else 6.0 if s < 900 else 24.0

    payload = set_dynamic_profile(plan, resolve(plan, None, T0), T0, pol)
    st = store_with(payload["chargingProfile"])
    seen = set()
    for s in range(0, 1500):
        t = at(s)
        for pid in st.pulls_due(t):  # answered as the central system answers a pull
            schedule = resolve(plan, None, t)
            st.update_dynamic(pid, schedule_update(plan, schedule, t, pol.horizon_s), t)
        got = st.limit_a(1, t, ctx(3), MAX_A)
        seen.add(got)
        assert got <= planned(t) + 1e-9, (s, got)
    assert seen == {6.0, 24.0}  # the cut ahead first, the raising once it is the lowest
    assert update_dynamic_schedule(3001, {"limit": 6.0})["chargingProfileId"] == 3001


# --- over OCPP -----------------------------------------------------------------------------------


async def until(cond: Callable[[], bool], timeout_s: float = 5.0) -> None:
    async with asyncio.timeout(timeout_s):
        while not cond():
            await asyncio.sleep(0.02)


async def test_a_simulated_21_station_takes_updates_and_pulls_to_keep_its_limit() -> None:
    seen: list[object] = []

    async def on_event(event: object) -> None:
        seen.append(event)

    config = parse_config(
        {
            "site": {"name": "t"},
            "groups": [{"id": "g", "limit_a": 100}],
            "server": {"host": "127.0.0.1", "ocpp_port": 0, "allow_unknown_stations": True},
        }
    )
    # a value stays in force 1 s + 2 s without news
    settings = AdapterSettings(meter_interval_s=5, dyn_update_interval_s=1, offline_profile_s=2)
    cs = CentralSystem(ocpp_server_settings(config), on_event, settings=settings)
    await cs.start()
    spec = SimStationSpec("CP9", (SimConnectorSpec(1),), version="2.1")
    fleet = StationFleet(f"ws://127.0.0.1:{cs.port}/ocpp", [spec])
    frames: list[list[Any]] = []
    fleet.frame_taps.append(lambda sid, way, raw: frames.append([way, *json.loads(raw)]))

    def sent(action: str, way: str) -> list[dict[str, Any]]:
        return [f[4] for f in frames if f[0] == way and f[1] == 2 and f[3] == action]

    await fleet.start()
    try:
        assert await fleet.wait_booted(3.0) == 1
        fleet.plug_in("CP9/1", EvSpec(lag_s=0.1))
        await until(lambda: any(isinstance(e, SessionStarted) for e in seen))
        started = next(e for e in seen if isinstance(e, SessionStarted))

        def plan(amps: float) -> ChargingLimitSpec:
            return ChargingLimitSpec(
                LimitPurpose.TX,
                1,
                datetime.now(UTC) - timedelta(seconds=2),
                (LimitPeriod(0, amps, 3),),
                transaction_id=started.transaction_id,
            )

        assert (await cs.set_limit("CP9", plan(12.0))).outcome is CommandOutcome.ACCEPTED
        assert fleet.limit_in_force("CP9/1") == 12.0
        assert (await cs.set_limit("CP9", plan(8.0))).outcome is CommandOutcome.ACCEPTED
        assert fleet.limit_in_force("CP9/1") == 8.0
        assert [
            p["chargingProfile"]["chargingProfileKind"] for p in sent("SetChargingProfile", "in")
        ] == ["Dynamic"]
        assert sent("UpdateDynamicSchedule", "in")[0]["scheduleUpdate"]["limit"] == 8.0
        # past 1 s + 2 s the value holds only because the station pulled it again
        await asyncio.sleep(4.0)
        assert len(sent("PullDynamicScheduleUpdate", "out")) >= 3
        assert fleet.limit_in_force("CP9/1") == 8.0
    finally:
        await fleet.stop()
        await cs.stop()
