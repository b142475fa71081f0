"""The simulator as an OCPP client over real sockets, against a small test central system.

Every frame the station sends is checked against the `ocpp` package's JSON
schemas by `FakeCsms`; each test ends by asserting there were no violations.
"""

from __future__ import annotations

import argparse
import asyncio
import json
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from gridshare.commands.stations import run as run_command
from gridshare.config import load_site
from gridshare.peers.ev import EvSpec
from gridshare.peers.fleet import StationFleet, fleet_from_site
from gridshare.peers.specs import SimConnectorSpec, SimStationSpec, specs_from_site
from tests.stations.fake_csms import FakeCsms

SPEED = 10.0
TWO = (SimConnectorSpec(1), SimConnectorSpec(2))


@pytest.fixture
async def csms() -> AsyncIterator[FakeCsms]:
    server = FakeCsms()
    await server.start()
    yield server
    await server.stop()
    assert server.schema_errors == []


async def until(cond: Callable[[], bool], timeout_s: float = 3.0) -> None:
    async with asyncio.timeout(timeout_s):
        while not cond():
            await asyncio.sleep(0.02)


async def fleet_of(csms: FakeCsms, *specs: SimStationSpec, **kw: Any) -> StationFleet:
    fleet = StationFleet(csms.url, list(specs), speed=SPEED, **kw)
    await fleet.start()
    assert await fleet.wait_booted(3.0) == len(specs)
    return fleet


def tx_profile(version: str, tx: str | None, limit: float, unit: str = "A") -> dict[str, Any]:
    period = [{"startPeriod": 0, "limit": limit}]
    if version == "1.6":
        p: dict[str, Any] = {
            "chargingProfileId": 11,
            "stackLevel": 0,
            "chargingProfilePurpose": "TxProfile",
            "chargingProfileKind": "Relative",
            "chargingSchedule": {"chargingRateUnit": unit, "chargingSchedulePeriod": period},
        }
        if tx is not None:
            p["transactionId"] = int(tx)
        return {"connectorId": 1, "csChargingProfiles": p}
    p = {
        "id": 11,
        "stackLevel": 0,
        "chargingProfilePurpose": "TxProfile",
        "chargingProfileKind": "Relative",
        "chargingSchedule": [{"id": 1, "chargingRateUnit": unit, "chargingSchedulePeriod": period}],
    }
    if tx is not None:
        p["transactionId"] = tx
    return {"evseId": 1, "chargingProfile": p}


def station_max(version: str, limit: float) -> dict[str, Any]:
    start = (datetime.now(UTC) - timedelta(hours=1)).isoformat().replace("+00:00", "Z")
    sched = {
        "startSchedule": start,
        "chargingRateUnit": "A",
        "chargingSchedulePeriod": [{"startPeriod": 0, "limit": limit}],
    }
    if version == "1.6":
        return {
            "connectorId": 0,
            "csChargingProfiles": {
                "chargingProfileId": 1,
                "stackLevel": 0,
                "chargingProfilePurpose": "ChargePointMaxProfile",
                "chargingProfileKind": "Absolute",
                "chargingSchedule": sched,
            },
        }
    return {
        "evseId": 0,
        "chargingProfile": {
            "id": 1,
            "stackLevel": 0,
            "chargingProfilePurpose": "ChargingStationMaxProfile",
            "chargingProfileKind": "Absolute",
            "chargingSchedule": [{"id": 1, **sched}],
        },
    }


def sampled(payload: dict[str, Any]) -> list[dict[str, Any]]:
    return [sv for mv in payload.get("meterValue", []) for sv in mv["sampledValue"]]


def currents(payload: dict[str, Any]) -> dict[str, float]:
    return {
        sv["phase"]: float(sv["value"])
        for sv in sampled(payload)
        if sv.get("measurand") == "Current.Import"
    }


def meter_payloads(csms: FakeCsms, version: str) -> list[dict[str, Any]]:
    if version == "1.6":
        return [p for p in csms.of("MeterValues") if "transactionId" in p]
    return [p for p in csms.of("TransactionEvent") if p["eventType"] == "Updated" and sampled(p)]


@pytest.mark.parametrize("version", ["1.6", "2.0.1", "2.1"])
async def test_session_end_to_end(csms: FakeCsms, version: str) -> None:
    spec = SimStationSpec("CP1", TWO, version=version, meter_interval_s=2.0)
    fleet = await fleet_of(csms, spec)
    try:
        assert csms.of("BootNotification")
        await until(lambda: len(csms.of("StatusNotification")) >= 2)
        departure = datetime.now(UTC) + timedelta(hours=3)
        fleet.plug_in("CP1/1", EvSpec(lag_s=2.0), departure=departure, energy_wh=20_000)
        await until(
            lambda: (
                fleet.transaction_id("CP1/1") is not None and fleet.status("CP1/1") == "Charging"
            )
        )
        await until(lambda: fleet.draw("CP1/1")["L1"] > 30.0)
        tx = fleet.transaction_id("CP1/1")

        reply = await csms.call("CP1", "SetChargingProfile", tx_profile(version, tx, 10.0))
        assert reply[2]["status"] == "Accepted"
        assert fleet.limit_in_force("CP1/1") == 10.0
        # 2 simulated seconds of lag is 0.2 s here; 1.5 s is 7.5 time constants
        await asyncio.sleep(1.5)
        assert fleet.draw("CP1/1") == pytest.approx({"L1": 10.0, "L2": 10.0, "L3": 10.0}, abs=0.1)

        before = len(meter_payloads(csms, version))
        await until(lambda: len(meter_payloads(csms, version)) >= before + 2)
        last = meter_payloads(csms, version)[-1]
        assert currents(last) == pytest.approx({"L1": 10.0, "L2": 10.0, "L3": 10.0}, abs=0.15)
        measurands = {sv.get("measurand") for sv in sampled(last)}
        assert measurands >= {"Power.Active.Import", "Energy.Active.Import.Register", "SoC"}
        energies = [
            float(sv["value"])
            for p in meter_payloads(csms, version)
            for sv in sampled(p)
            if sv.get("measurand") == "Energy.Active.Import.Register"
        ]
        assert energies == sorted(energies) and energies[-1] > 0

        key = "connectorId" if version == "1.6" else "evseId"
        comp = await csms.call("CP1", "GetCompositeSchedule", {key: 1, "duration": 3600})
        sched = comp[2]["chargingSchedule" if version == "1.6" else "schedule"]
        assert sched["chargingSchedulePeriod"][0]["limit"] == 10.0

        if version != "1.6":
            needs = csms.of("NotifyEVChargingNeeds")[0]["chargingNeeds"]
            assert needs["acChargingParameters"]["energyAmount"] == 20_000
            assert needs["departureTime"].startswith(departure.strftime("%Y-%m-%dT%H:%M"))

        fleet.unplug("CP1/1")
        if version == "1.6":
            await csms.wait_for("StopTransaction")
            stop = csms.of("StopTransaction")[0]
            assert stop["transactionId"] == int(tx or 0) and stop["reason"] == "EVDisconnected"
            assert stop["meterStop"] >= int(energies[-1]) - 1
        else:
            await until(lambda: any(p["eventType"] == "Ended" for p in csms.of("TransactionEvent")))
            ended = csms.of("TransactionEvent")[-1]
            assert ended["transactionInfo"]["stoppedReason"] == "EVDisconnected"
            seq = [p["seqNo"] for p in csms.of("TransactionEvent")]
            assert seq == list(range(len(seq)))
        # the TxProfile went with its transaction
        comp = await csms.call("CP1", "GetCompositeSchedule", {key: 1, "duration": 3600})
        sched = comp[2]["chargingSchedule" if version == "1.6" else "schedule"]
        assert sched["chargingSchedulePeriod"][0]["limit"] == 32.0
    finally:
        await fleet.stop()


async def test_frame_taps_see_the_stations_frames(csms: FakeCsms) -> None:
    fleet = StationFleet(csms.url, [SimStationSpec("CP1", TWO)], speed=SPEED)
    seen: list[tuple[str, str, list[Any]]] = []
    fleet.frame_taps.append(lambda sid, way, frame: seen.append((sid, way, json.loads(frame))))
    await fleet.start()
    try:
        assert await fleet.wait_booted(3.0) == 1
        assert ("CP1", "out", ["BootNotification"]) in [(s, w, f[2:3]) for s, w, f in seen]
        reply = await csms.call("CP1", "SetChargingProfile", tx_profile("1.6", None, 10.0))
        assert reply[0] == 3  # answered (accepted or not)
        got = next(
            i for i, f in enumerate(seen) if f[1] == "in" and f[2][2:3] == ["SetChargingProfile"]
        )
        assert any(f[1] == "out" and f[2][:2] == [3, seen[got][2][1]] for f in seen[got:])
    finally:
        await fleet.stop()


async def test_one_phase_car_on_three_phase_connector(csms: FakeCsms) -> None:
    fleet = await fleet_of(csms, SimStationSpec("CP1", TWO, meter_interval_s=1.0))
    try:
        fleet.plug_in("CP1/2", EvSpec(phases=1, max_current_a=16.0, lag_s=0.5))
        await until(lambda: fleet.draw("CP1/2")["L1"] > 15.9)
        assert fleet.draw("CP1/2") == {"L1": pytest.approx(16.0, abs=0.1), "L2": 0.0, "L3": 0.0}
        await until(lambda: bool(meter_payloads(csms, "1.6")))
        assert currents(meter_payloads(csms, "1.6")[-1])["L2"] == 0.0
    finally:
        await fleet.stop()


async def test_station_max_profile_is_shared_by_running_sessions(csms: FakeCsms) -> None:
    fleet = await fleet_of(csms, SimStationSpec("CP1", TWO, version="2.0.1"))
    try:
        reply = await csms.call("CP1", "SetChargingProfile", station_max("2.0.1", 20.0))
        assert reply[2]["status"] == "Accepted"
        fleet.plug_in("CP1/1", EvSpec())
        await until(lambda: fleet.transaction_id("CP1/1") is not None)
        assert fleet.limit_in_force("CP1/1") == 20.0
        fleet.plug_in("CP1/2", EvSpec())
        await until(lambda: fleet.transaction_id("CP1/2") is not None)
        assert fleet.limit_in_force("CP1/1") == fleet.limit_in_force("CP1/2") == 10.0
    finally:
        await fleet.stop()


async def test_configuration_keys_1_6(csms: FakeCsms) -> None:
    fleet = await fleet_of(csms, SimStationSpec("CP1", TWO, meter_interval_s=60.0))
    try:
        got = await csms.call(
            "CP1", "GetConfiguration", {"key": ["ChargeProfileMaxStackLevel", "Nope"]}
        )
        assert got[2]["configurationKey"][0]["value"] == "8"
        assert got[2]["unknownKey"] == ["Nope"]
        change = [
            ("MeterValueSampleInterval", "3", "Accepted"),
            ("MeterValuesSampledData", "Energy.Active.Import.Register", "Accepted"),
            ("MeterValuesSampledData", "Voltage.Bogus", "Rejected"),
            ("ChargeProfileMaxStackLevel", "99", "Rejected"),
            ("SomethingElse", "1", "NotSupported"),
        ]
        for key, value, status in change:
            reply = await csms.call("CP1", "ChangeConfiguration", {"key": key, "value": value})
            assert reply[2]["status"] == status, key
        fleet.plug_in("CP1/1", EvSpec())
        # 3 simulated seconds at speed 10: several samples within a second
        await until(lambda: len(meter_payloads(csms, "1.6")) >= 2)
        last = meter_payloads(csms, "1.6")[-1]
        assert {sv["measurand"] for sv in sampled(last)} == {"Energy.Active.Import.Register"}
    finally:
        await fleet.stop()


async def test_device_model_variables_2_0_1(csms: FakeCsms) -> None:
    fleet = await fleet_of(csms, SimStationSpec("CP1", TWO, version="2.0.1", meter_interval_s=60))
    try:
        get = await csms.call(
            "CP1",
            "GetVariables",
            {
                "getVariableData": [
                    {"component": {"name": "SmartChargingCtrlr"}, "variable": {"name": "RateUnit"}},
                    {"component": {"name": "SmartChargingCtrlr"}, "variable": {"name": "Nope"}},
                    {"component": {"name": "NoSuchCtrlr"}, "variable": {"name": "Enabled"}},
                ]
            },
        )
        statuses = [r["attributeStatus"] for r in get[2]["getVariableResult"]]
        assert statuses == ["Accepted", "UnknownVariable", "UnknownComponent"]
        assert get[2]["getVariableResult"][0]["attributeValue"] == "A,W"
        set_ = await csms.call(
            "CP1",
            "SetVariables",
            {
                "setVariableData": [
                    {
                        "attributeValue": "2",
                        "component": {"name": "SampledDataCtrlr"},
                        "variable": {"name": "TxUpdatedInterval"},
                    },
                    {
                        "attributeValue": "99",
                        "component": {"name": "SmartChargingCtrlr"},
                        "variable": {"name": "ProfileStackLevel"},
                    },
                ]
            },
        )
        assert [r["attributeStatus"] for r in set_[2]["setVariableResult"]] == [
            "Accepted",
            "Rejected",
        ]
        fleet.plug_in("CP1/1", EvSpec())
        await until(lambda: len(meter_payloads(csms, "2.0.1")) >= 2)
    finally:
        await fleet.stop()


@pytest.mark.parametrize(
    ("version", "action", "payload", "code"),
    [
        ("1.6", "Frobnicate", {}, "NotImplemented"),
        ("1.6", "GetDiagnostics", {"location": "ftp://x/"}, "NotSupported"),
        ("1.6", "SetChargingProfile", {}, "FormationViolation"),
        ("2.0.1", "Frobnicate", {}, "NotImplemented"),
        ("2.0.1", "GetLog", {}, "NotSupported"),
        ("2.0.1", "SetChargingProfile", {}, "FormatViolation"),
        ("2.1", "Frobnicate", {}, "NotImplemented"),
        ("2.1", "SetChargingProfile", {}, "FormatViolation"),
    ],
)
async def test_call_errors(
    csms: FakeCsms, version: str, action: str, payload: dict[str, Any], code: str
) -> None:
    fleet = await fleet_of(csms, SimStationSpec("CP1", TWO, version=version))
    try:
        reply = await csms.call("CP1", action, payload)
        assert reply[0] == 4 and reply[2] == code
    finally:
        await fleet.stop()


async def test_profile_misbehaviour(csms: FakeCsms) -> None:
    fleet = await fleet_of(
        csms,
        SimStationSpec("SILENT", TWO, never_answers_profiles=True),
        SimStationSpec("NO", TWO, rejects_profiles=True),
        SimStationSpec("GREEDY", TWO, ignores_limits=True),
        SimStationSpec("WATTS", TWO, power_unit_only=True),
    )
    try:
        with pytest.raises(TimeoutError):
            await csms.call("SILENT", "SetChargingProfile", station_max("1.6", 10.0), timeout_s=0.5)
        reply = await csms.call("NO", "SetChargingProfile", station_max("1.6", 10.0))
        assert reply[2]["status"] == "Rejected"

        fleet.plug_in("GREEDY/1", EvSpec(lag_s=0.5))
        reply = await csms.call("GREEDY", "SetChargingProfile", station_max("1.6", 10.0))
        assert reply[2]["status"] == "Accepted"
        await asyncio.sleep(0.5)
        assert fleet.draw("GREEDY/1")["L1"] > 31.0

        conf = await csms.call(
            "WATTS", "GetConfiguration", {"key": ["ChargingScheduleAllowedChargingRateUnit"]}
        )
        assert conf[2]["configurationKey"][0]["value"] == "Power"
        fleet.plug_in("WATTS/1", EvSpec())
        await until(lambda: fleet.transaction_id("WATTS/1") is not None)
        tx = fleet.transaction_id("WATTS/1")
        amps = await csms.call("WATTS", "SetChargingProfile", tx_profile("1.6", tx, 10.0))
        assert amps[2]["status"] == "Rejected"
        watts = await csms.call("WATTS", "SetChargingProfile", tx_profile("1.6", tx, 6900.0, "W"))
        assert watts[2]["status"] == "Accepted"
        assert fleet.limit_in_force("WATTS/1") == pytest.approx(10.0)
    finally:
        await fleet.stop()


@pytest.mark.parametrize("version", ["1.6", "2.0.1", "2.1"])
async def test_remote_stop_and_trigger(csms: FakeCsms, version: str) -> None:
    fleet = await fleet_of(csms, SimStationSpec("CP1", TWO, version=version))
    try:
        fleet.plug_in("CP1/1", EvSpec())
        await until(lambda: fleet.transaction_id("CP1/1") is not None)
        tx = fleet.transaction_id("CP1/1")
        assert tx is not None
        if version == "1.6":
            trig = {"requestedMessage": "MeterValues", "connectorId": 1}
            reply = await csms.call("CP1", "TriggerMessage", trig)
            assert reply[2]["status"] == "Accepted"
            await until(
                lambda: any(
                    sv["context"] == "Trigger" for p in csms.of("MeterValues") for sv in sampled(p)
                )
            )
            reply = await csms.call("CP1", "RemoteStopTransaction", {"transactionId": int(tx)})
            assert reply[2]["status"] == "Accepted"
            await csms.wait_for("StopTransaction")
            assert csms.of("StopTransaction")[0]["reason"] == "Remote"
            await until(lambda: csms.of("StatusNotification")[-1]["status"] == "Finishing")
        else:
            trig = {"requestedMessage": "MeterValues", "evse": {"id": 1}}
            reply = await csms.call("CP1", "TriggerMessage", trig)
            assert reply[2]["status"] == "Accepted"
            await csms.wait_for("MeterValues")
            reply = await csms.call("CP1", "RequestStopTransaction", {"transactionId": tx})
            assert reply[2]["status"] == "Accepted"
            await until(lambda: csms.of("TransactionEvent")[-1]["eventType"] == "Ended")
            assert csms.of("TransactionEvent")[-1]["transactionInfo"]["stoppedReason"] == "Remote"
        assert fleet.transaction_id("CP1/1") is None
        assert fleet.status("CP1/1") == "Finishing"
    finally:
        await fleet.stop()


async def test_basic_auth(csms: FakeCsms) -> None:
    csms.passwords = {"GOOD": "0123456789abcdef", "BAD": "0123456789abcdef"}
    fleet = StationFleet(
        csms.url,
        [
            SimStationSpec("GOOD", TWO, password="0123456789abcdef"),
            SimStationSpec("BAD", TWO, password="wrong-password-xx"),
        ],
        speed=SPEED,
    )
    await fleet.start()
    try:
        assert await fleet.wait_booted(1.5) == 1
        assert fleet.station("GOOD").booted and not fleet.station("BAD").booted
        assert fleet.stats.connect_failures >= 1
        assert "401" in (fleet.station("BAD").last_error or "")
    finally:
        await fleet.stop()


async def test_reconnects_and_keeps_profiles_while_offline(csms: FakeCsms) -> None:
    fleet = await fleet_of(csms, SimStationSpec("CP1", TWO))
    try:
        default = station_max("1.6", 8.0)
        default["csChargingProfiles"]["chargingProfilePurpose"] = "TxDefaultProfile"
        assert (await csms.call("CP1", "SetChargingProfile", default))[2]["status"] == "Accepted"
        await csms.connections["CP1"].close()
        await until(lambda: not fleet.station("CP1").booted)
        # offline: a new session starts locally under the stored TxDefaultProfile
        fleet.plug_in("CP1/2", EvSpec())
        assert fleet.transaction_id("CP1/2") is None and fleet.status("CP1/2") == "Charging"
        assert fleet.limit_in_force("CP1/2") == 8.0
        await until(lambda: len(csms.of("BootNotification")) == 2, timeout_s=4.0)
        # queued StartTransaction goes out after the new boot
        await csms.wait_for("StartTransaction")
        await until(lambda: fleet.transaction_id("CP1/2") is not None)
        assert fleet.limit_in_force("CP1/2") == 8.0
    finally:
        await fleet.stop()


def test_specs_from_a_site() -> None:
    site = load_site(Path(__file__).parents[2] / "examples" / "depot.toml")
    specs = specs_from_site(site, version="2.0.1", passwords={site.chargers[0].id: "pw"})
    assert [s.id for s in specs] == [c.id for c in site.chargers]
    first = site.chargers[0].connectors[0]
    assert specs[0].password == "pw" and specs[1].password is None
    assert specs[0].connectors[0].phases == tuple(str(p) for p in first.phases)
    assert specs[0].connectors[0].voltage_v == site.connector_voltage(first)
    assert all(s.version == "2.0.1" for s in specs)


async def test_fleet_from_site_boots_every_charger(csms: FakeCsms) -> None:
    site = load_site(Path(__file__).parents[2] / "examples" / "depot.toml")
    fleet = fleet_from_site(site, csms.url, speed=SPEED)
    await fleet.start()
    try:
        assert await fleet.wait_booted(5.0) == len(site.chargers)
    finally:
        await fleet.stop()


async def test_stations_command_runs_for_its_duration(
    csms: FakeCsms, capsys: pytest.CaptureFixture[str]
) -> None:
    args = argparse.Namespace(
        url=csms.url,
        config=None,
        count=3,
        connectors=2,
        prefix="CMD",
        password=None,
        version="2.0.1",
        meter_interval=10.0,
        speed=60.0,
        arrivals=60.0,
        initial_evs=1.0,
        dwell_h=4.0,
        seed=3,
        duration=1.5,
        report_s=10.0,
        concurrency=10,
    )
    assert await run_command(args) == 0
    assert {r.station_id for r in csms.received} == {"CMD00001", "CMD00002", "CMD00003"}
    assert len([p for p in csms.of("TransactionEvent") if p["eventType"] == "Started"]) == 6
    assert "3/3 booted" in capsys.readouterr().out


def test_the_schema_check_catches_a_numeric_1_6_meter_value() -> None:
    import jsonschema

    from tests.stations.fake_csms import validate

    bad = '{"connectorId": 1, "meterValue": [{"timestamp": "2026-01-01T00:00:00Z",'
    bad += ' "sampledValue": [{"value": 10.5}]}]}'
    with pytest.raises(jsonschema.ValidationError):
        validate("1.6", "MeterValues", bad, response=False)


async def test_reset_ends_sessions_and_boots_again(csms: FakeCsms) -> None:
    fleet = await fleet_of(csms, SimStationSpec("CP1", TWO, version="2.0.1"))
    try:
        fleet.plug_in("CP1/1", EvSpec())
        await until(lambda: fleet.transaction_id("CP1/1") is not None)
        reply = await csms.call("CP1", "Reset", {"type": "Immediate"})
        assert reply[2]["status"] == "Accepted"
        await until(lambda: len(csms.of("BootNotification")) == 2, timeout_s=4.0)
        ended = [p for p in csms.of("TransactionEvent") if p["eventType"] == "Ended"]
        assert ended[0]["transactionInfo"]["stoppedReason"] == "ImmediateReset"
        assert ended[0]["triggerReason"] == "ResetCommand"
    finally:
        await fleet.stop()


async def test_change_availability(csms: FakeCsms) -> None:
    fleet = await fleet_of(csms, SimStationSpec("CP1", TWO))
    try:
        reply = await csms.call(
            "CP1", "ChangeAvailability", {"connectorId": 2, "type": "Inoperative"}
        )
        assert reply[2]["status"] == "Accepted"
        await until(lambda: csms.of("StatusNotification")[-1]["status"] == "Unavailable")
        fleet.plug_in("CP1/2", EvSpec())
        await asyncio.sleep(0.2)
        assert fleet.transaction_id("CP1/2") is None and not csms.of("Authorize")
        reply = await csms.call(
            "CP1", "ChangeAvailability", {"connectorId": 0, "type": "Operative"}
        )
        assert reply[2]["status"] == "Accepted"
        assert fleet.status("CP1/2") == "Preparing"
    finally:
        await fleet.stop()


async def test_garbage_from_the_server_does_not_kill_the_station(csms: FakeCsms) -> None:
    csms.overrides["StartTransaction"] = {"idTagInfo": {"status": "Accepted"}}  # no id
    fleet = await fleet_of(csms, SimStationSpec("CP1", TWO))
    try:
        for junk in ("not json", "{}", "[3]", '[3, "999", {}]', "[9, 1]", '[2, "x"]'):
            await csms.send_raw("CP1", junk)
        fleet.plug_in("CP1/1", EvSpec())
        await csms.wait_for("StartTransaction")
        reply = await csms.call("CP1", "GetConfiguration", {})
        task = fleet.station("CP1").task
        assert reply[0] == 3 and task is not None and not task.done()
    finally:
        await fleet.stop()


async def test_a_line_pair_connector_draws_on_both_lines_at_line_to_line_voltage() -> None:
    pair = SimConnectorSpec(1, max_current_a=30.0, phases=("L1", "L2"), voltage_v=208.0)
    fleet = StationFleet("ws://127.0.0.1:9/ocpp", [SimStationSpec("US1", (pair,))], speed=3600.0)
    # never started: the station is offline and starts the session locally
    fleet.plug_in("US1/1", EvSpec(lag_s=0.0, battery_kwh=500.0))
    e0 = fleet.energy_wh("US1/1")
    await asyncio.sleep(0.5)  # half an hour simulated
    assert fleet.draw("US1/1") == {"L1": 30.0, "L2": 30.0}
    wh = fleet.energy_wh("US1/1") - e0
    hours = wh / (30.0 * 208.0)
    assert 0.4 < hours < 0.6


def test_unknown_version_is_refused() -> None:
    with pytest.raises(ValueError, match="version"):
        SimStationSpec("X", version="1.5")
