"""The simulator against gridshare's own central system (`ocpp_adapter`), every version."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest

from gridshare.config import parse_config
from gridshare.peers.ev import EvSpec
from gridshare.peers.fleet import StationFleet
from gridshare.peers.specs import SimConnectorSpec, SimStationSpec
from gridshare.service import ocpp_server_settings

cs_module = pytest.importorskip("ocpp_adapter.central_system")
events_module = pytest.importorskip("ocpp_adapter.events")


async def until(cond: Callable[[], bool], timeout_s: float = 5.0) -> None:
    async with asyncio.timeout(timeout_s):
        while not cond():
            await asyncio.sleep(0.02)


@pytest.mark.parametrize(
    ("version", "watts"),
    [("1.6", False), ("2.0.1", False), ("2.1", False), ("1.6", True), ("2.1", True)],
)
async def test_limit_from_the_central_system_is_obeyed(version: str, watts: bool) -> None:
    ev_mod = events_module
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
    cs = cs_module.CentralSystem(
        ocpp_server_settings(config),
        on_event,
        settings=cs_module.AdapterSettings(meter_interval_s=2),
    )
    await cs.start()
    spec = SimStationSpec(
        "CP9",
        (SimConnectorSpec(1), SimConnectorSpec(2)),
        version=version,
        power_unit_only=watts,
    )
    fleet = StationFleet(f"ws://127.0.0.1:{cs.port}/ocpp", [spec], speed=10.0)
    await fleet.start()
    try:
        assert await fleet.wait_booted(3.0) == 1
        fleet.plug_in("CP9/1", EvSpec(lag_s=1.0))
        await until(lambda: any(isinstance(e, ev_mod.SessionStarted) for e in seen))
        started = next(e for e in seen if isinstance(e, ev_mod.SessionStarted))
        assert started.connector_id == "CP9/1"
        # the event is stored before the answer carrying the 1.6 id leaves
        await until(lambda: fleet.transaction_id("CP9/1") is not None)
        assert started.transaction_id == fleet.transaction_id("CP9/1")

        limit = ev_mod.ChargingLimitSpec(
            purpose=ev_mod.LimitPurpose.TX,
            connector=1,
            start=datetime.now(UTC) - timedelta(seconds=5),
            periods=(ev_mod.LimitPeriod(0, 12.0, 3),),
            transaction_id=started.transaction_id,
        )
        result = await cs.set_limit("CP9", limit)
        assert result.outcome == ev_mod.CommandOutcome.ACCEPTED
        assert fleet.limit_in_force("CP9/1") == pytest.approx(12.0, abs=0.05)

        def readings_at_limit() -> bool:
            last = [e for e in seen if isinstance(e, ev_mod.MeterReading)][-1:]
            return bool(last) and abs(last[0].current_a.get("L1", 0.0) - 12.0) < 0.2

        await until(readings_at_limit)
        fleet.unplug("CP9/1")
        await until(lambda: any(isinstance(e, ev_mod.SessionEnded) for e in seen))
    finally:
        await fleet.stop()
        await cs.stop()


async def test_a_21_station_applies_per_phase_limits_and_falls_back_when_cut_off() -> None:
    """A one-phase car under a per-phase profile; then gridshare goes away and the
    station drops to its TxDefault once the profile's offline bound has passed."""
    ev_mod = events_module
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
    # simulated seconds: the station runs 20x faster than the wall clock
    settings = cs_module.AdapterSettings(offline_profile_s=40, randomized_delay_s=0)
    cs = cs_module.CentralSystem(ocpp_server_settings(config), on_event, settings=settings)
    await cs.start()
    spec = SimStationSpec("CP7", (SimConnectorSpec(1), SimConnectorSpec(2)), version="2.1")
    fleet = StationFleet(f"ws://127.0.0.1:{cs.port}/ocpp", [spec], speed=20.0)
    await fleet.start()
    stopped = False
    try:
        assert await fleet.wait_booted(3.0) == 1
        now = datetime.now(UTC) - timedelta(seconds=5)
        default = ev_mod.ChargingLimitSpec(
            ev_mod.LimitPurpose.TX_DEFAULT, 0, now, (ev_mod.LimitPeriod(0, 8.0, 3),)
        )
        assert (await cs.set_limit("CP7", default)).outcome == ev_mod.CommandOutcome.ACCEPTED
        fleet.plug_in("CP7/1", EvSpec(phases=1, lag_s=0.5))
        fleet.plug_in("CP7/2", EvSpec(phases=3, lag_s=0.5))
        await until(lambda: len([e for e in seen if isinstance(e, ev_mod.SessionStarted)]) == 2)
        started = {e.connector_id: e for e in seen if isinstance(e, ev_mod.SessionStarted)}
        for n in (1, 2):
            tx = ev_mod.ChargingLimitSpec(
                ev_mod.LimitPurpose.TX,
                n,
                now,
                (ev_mod.LimitPeriod(0, 16.0, 3),),
                transaction_id=started[f"CP7/{n}"].transaction_id,
                station_phases=(1,),
            )
            assert (await cs.set_limit("CP7", tx)).outcome == ev_mod.CommandOutcome.ACCEPTED
        # L1 has 16 A, L2 and L3 none: the one-phase car charges, the three-phase one may not
        assert fleet.limit_in_force("CP7/1") == pytest.approx(16.0)
        assert fleet.limit_in_force("CP7/2") == 0.0
        await until(lambda: fleet.draw("CP7/1")["L1"] > 15.0)
        assert fleet.draw("CP7/1")["L2"] == fleet.draw("CP7/1")["L3"] == 0.0

        await cs.stop()
        stopped = True
        await until(lambda: fleet.station("CP7").ws is None)
        assert fleet.limit_in_force("CP7/1") == pytest.approx(16.0)  # still within its bound
        # 40 simulated seconds offline: 2 s of wall time at 20x
        await until(lambda: fleet.limit_in_force("CP7/1") == pytest.approx(8.0), 6.0)
        assert fleet.limit_in_force("CP7/2") == pytest.approx(8.0)
    finally:
        await fleet.stop()
        if not stopped:
            await cs.stop()
