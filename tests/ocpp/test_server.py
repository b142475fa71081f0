"""The central system over real sockets on loopback, driven by a hand-written station."""

from __future__ import annotations

import asyncio
import json
import logging
import ssl
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidMessage, InvalidStatus

from gridshare.config import ConfigError
from gridshare.service import ocpp_server_settings
from ocpp_adapter import AdapterSettings, CentralSystem
from ocpp_adapter.events import (
    PROPERTY_CONSTRAINT,
    ChargingLimitSpec,
    CommandOutcome,
    ConnectorStatusChanged,
    DomainEvent,
    EvChargingNeeds,
    EventRefused,
    LimitPeriod,
    LimitPurpose,
    MeterReading,
    SessionEnded,
    SessionStarted,
    StationBooted,
    StationCapabilities,
    StationConnected,
    StationDisconnected,
)
from ocpp_adapter.ports import OcppGateway, StationInfo
from ocpp_adapter.rpc import OcppVersion
from tests.certs import server_certificate, station_certificates
from tests.ocpp.helpers import (
    FAST,
    TS,
    CallFailed,
    Handler,
    Recorder,
    basic,
    make_config,
    running,
    station,
)

V16, V201, V21 = OcppVersion.V16, OcppVersion.V201, OcppVersion.V21
NOW_SPEC = datetime.now(UTC)


def tx_spec(cs: CentralSystem, tx: str, connector: int = 1, *limits: float) -> ChargingLimitSpec:
    periods = tuple(LimitPeriod(i * 900, a, 3) for i, a in enumerate(limits or (16.0, 10.0)))
    return ChargingLimitSpec(
        LimitPurpose.TX, connector, cs.clock() - timedelta(seconds=1), periods, transaction_id=tx
    )


def meter_16(tx: int | None, amps: str = "15.9") -> dict[str, Any]:
    payload: dict[str, Any] = {
        "connectorId": 1,
        "meterValue": [
            {
                "timestamp": TS,
                "sampledValue": [
                    {"value": amps, "measurand": "Current.Import", "phase": f"L{i}", "unit": "A"}
                    for i in (1, 2, 3)
                ]
                + [{"value": "1234.5", "unit": "Wh"}],
            }
        ],
    }
    if tx is not None:
        payload["transactionId"] = tx
    return payload


async def test_v16_end_to_end() -> None:
    async with running() as (cs, rec), station(cs, "CP1", V16) as st:
        boot = await st.boot()
        assert boot["status"] == "Accepted" and boot["interval"] == 300
        assert (
            await st.call(
                "StatusNotification",
                {"connectorId": 1, "errorCode": "NoError", "status": "Preparing"},
            )
        ) == {}
        start = await st.call(
            "StartTransaction",
            {"connectorId": 1, "idTag": "TAG1", "meterStart": 1000, "timestamp": TS},
        )
        tx = start["transactionId"]
        assert start["idTagInfo"] == {"status": "Accepted"}

        result = await cs.set_limit("CP1", tx_spec(cs, str(tx), 1, 16.0, 16.0, 10.0))
        assert result.outcome is CommandOutcome.ACCEPTED
        # capabilities read and sampling configured before the profile
        actions = [a for a, _ in st.received]
        assert actions[0] == "GetConfiguration"
        assert "SetChargingProfile" in actions
        [sent] = st.sent("SetChargingProfile")
        profile = sent["csChargingProfiles"]
        assert sent["connectorId"] == 1
        assert profile["chargingProfilePurpose"] == "TxProfile"
        assert profile["transactionId"] == tx
        schedule = profile["chargingSchedule"]
        assert schedule["chargingRateUnit"] == "A"
        assert [p["limit"] for p in schedule["chargingSchedulePeriod"]] == [16.0, 10.0]

        assert await st.call("MeterValues", meter_16(tx)) == {}
        stop = await st.call(
            "StopTransaction",
            {"transactionId": tx, "meterStop": 5000, "timestamp": TS, "reason": "EVDisconnected"},
        )
        assert stop == {}
        cleared = await cs.clear_limit("CP1", 1)
        assert cleared.outcome is CommandOutcome.ACCEPTED
        assert st.sent("ClearChargingProfile") == [
            {"connectorId": 1, "chargingProfilePurpose": "TxProfile"}
        ]
        await asyncio.sleep(0.05)
        conf = {p["key"]: p["value"] for p in st.sent("ChangeConfiguration")}
        assert conf["MeterValueSampleInterval"] == "10"
        assert "Current.Import" in conf["MeterValuesSampledData"]

    kinds = [type(e) for e in rec.events]
    assert kinds[:2] == [StationConnected, StationBooted]
    [started] = rec.of(SessionStarted)
    assert started.connector_id == "CP1/1" and started.transaction_id == str(tx)
    [reading] = rec.of(MeterReading)
    assert reading.current_a == {"L1": 15.9, "L2": 15.9, "L3": 15.9}
    assert reading.energy_wh == 1234.5 and reading.transaction_id == str(tx)
    [ended] = rec.of(SessionEnded)
    assert ended.meter_stop_wh == 5000 and ended.connector_id == "CP1/1"
    [caps] = rec.of(StationCapabilities)
    assert caps.rate_units == ("A",) and caps.max_periods == 10 and caps.phase_switching is None
    assert rec.of(ConnectorStatusChanged)[0].status == "Preparing"
    assert isinstance(rec.events[-1], StationDisconnected)
    [info] = [i for i in cs.stations() if i.station_id == "CP1"]
    assert info.vendor == "Acme" and not info.connected and info.profiles == {}


def tx_event(kind: str, seq: int, **extra: Any) -> dict[str, Any]:
    return {
        "eventType": kind,
        "timestamp": TS,
        "triggerReason": "Authorized" if kind == "Started" else "MeterValuePeriodic",
        "seqNo": seq,
        "transactionInfo": {"transactionId": "TX-9", "chargingState": "Charging"},
        **extra,
    }


@pytest.mark.parametrize("version", [V201, V21])
async def test_v2_end_to_end(version: OcppVersion) -> None:
    """2.1 keeps every 2.0.1 message: the same exchange gives the same events."""
    absolute = replace(FAST, dynamic_profiles=False)  # Dynamic ones: test_v21_dynamic
    async with running(settings=absolute) as (cs, rec), station(cs, "CP2", version) as st:
        assert (await st.boot())["status"] == "Accepted"
        started = tx_event(
            "Started",
            0,
            evse={"id": 1, "connectorId": 1},
            idToken={"idToken": "TAG", "type": "ISO14443"},
            meterValue=[
                {
                    "timestamp": TS,
                    "sampledValue": [{"value": 2.5, "unitOfMeasure": {"unit": "kWh"}}],
                }
            ],
        )
        assert await st.call("TransactionEvent", started) == {"idTokenInfo": {"status": "Accepted"}}
        needs = {
            "evseId": 1,
            "chargingNeeds": {
                "requestedEnergyTransfer": "AC_three_phase",
                "departureTime": "2026-03-02T18:00:00Z",
                "acChargingParameters": {
                    "energyAmount": 20000,
                    "evMinCurrent": 6,
                    "evMaxCurrent": 16,
                    "evMaxVoltage": 400,
                },
            },
        }
        assert await st.call("NotifyEVChargingNeeds", needs) == {"status": "Accepted"}

        result = await cs.set_limit("CP2", tx_spec(cs, "TX-9", 1, 16.0))
        assert result.outcome is CommandOutcome.ACCEPTED
        [sent] = st.sent("SetChargingProfile")
        assert sent["evseId"] == 1
        profile = sent["chargingProfile"]
        assert profile["transactionId"] == "TX-9"
        [schedule] = profile["chargingSchedule"]
        # the station said RateUnit W: 16 A × 230 V × 3 phases
        assert schedule["chargingRateUnit"] == "W"
        assert schedule["chargingSchedulePeriod"] == [
            {"startPeriod": 0, "limit": 11040.0, "numberPhases": 3}
        ]
        if version is V21:  # bounded offline life (ocpp_adapter.profiles.OfflinePolicy)
            assert profile["maxOfflineDuration"] == FAST.offline_profile_s
            assert profile["invalidAfterOfflineDuration"] is True
        else:
            assert "maxOfflineDuration" not in profile
        updated = tx_event(
            "Updated",
            1,
            meterValue=[
                {
                    "timestamp": TS,
                    "sampledValue": [
                        {
                            "value": 11.0,
                            "measurand": "Power.Active.Import",
                            "unitOfMeasure": {"unit": "kW"},
                        }
                    ],
                }
            ],
        )
        await st.call("TransactionEvent", updated)
        await st.call("TransactionEvent", updated)  # resent: stored once
        ended = tx_event(
            "Ended",
            2,
            meterValue=[
                {
                    "timestamp": TS,
                    "sampledValue": [{"value": 9500, "unitOfMeasure": {"unit": "Wh"}}],
                }
            ],
        )
        ended["transactionInfo"]["stoppedReason"] = "EVDisconnected"
        await st.call("TransactionEvent", ended)
        assert (await cs.clear_limit("CP2", 1)).outcome is CommandOutcome.ACCEPTED
        assert st.sent("ClearChargingProfile") == [
            {"chargingProfileCriteria": {"evseId": 1, "chargingProfilePurpose": "TxProfile"}}
        ]
        assert st.sent("GetVariables") and st.sent("SetVariables")

    [s] = rec.of(SessionStarted)
    assert (s.connector_id, s.transaction_id, s.id_tag, s.meter_start_wh) == (
        "CP2/1",
        "TX-9",
        "TAG",
        2500.0,
    )
    [n] = rec.of(EvChargingNeeds)
    assert n.energy_wh == 20000 and n.ev_max_current_a == 16 and n.departure is not None
    power = [r.total_power_w for r in rec.of(MeterReading) if r.total_power_w is not None]
    assert power == [11000.0]
    [e] = rec.of(SessionEnded)
    assert (e.meter_stop_wh, e.reason, e.connector_id) == (9500.0, "EVDisconnected", "CP2/1")


async def test_operator_commands_both_versions() -> None:
    async with running() as (cs, _), station(cs, "CP1", V16) as a, station(cs, "CP2", V201) as b:
        await a.boot()
        await b.boot()
        for sid in ("CP1", "CP2"):
            spec = ChargingLimitSpec(LimitPurpose.TX, 1, cs.clock(), (LimitPeriod(0, 8.0, 1),))
            assert (await cs.remote_start(sid, 1, "OP", spec)).outcome is CommandOutcome.ACCEPTED
            assert (await cs.remote_stop(sid, "77")).outcome is CommandOutcome.ACCEPTED
            r = await cs.trigger_message(sid, "MeterValues", 1)
            assert r.outcome is CommandOutcome.ACCEPTED
            assert (await cs.reset(sid, hard=True)).outcome is CommandOutcome.ACCEPTED
            r = await cs.change_availability(sid, 1, operative=False)
            assert r.outcome is CommandOutcome.ACCEPTED
            r, payload = await cs.get_composite_schedule(sid, 1, 3600)
            assert r.outcome is CommandOutcome.ACCEPTED and payload is not None
        assert a.sent("RemoteStartTransaction")[0]["chargingProfile"]["chargingProfilePurpose"] == (
            "TxProfile"
        )
        assert "transactionId" not in a.sent("RemoteStartTransaction")[0]["chargingProfile"]
        assert a.sent("Reset") == [{"type": "Hard"}]
        assert b.sent("Reset") == [{"type": "Immediate"}]
        assert b.sent("RequestStopTransaction") == [{"transactionId": "77"}]
        assert a.sent("RemoteStopTransaction") == [{"transactionId": 77}]
        assert b.sent("RequestStartTransaction")[0]["idToken"] == {
            "idToken": "OP",
            "type": "Central",
        }


async def test_station_refusals_map_to_outcomes() -> None:
    handlers: dict[str, Handler] = {
        "SetChargingProfile": lambda p: {
            "status": "Rejected",
            "statusInfo": {"reasonCode": "RateLimitExceeded", "additionalInfo": "30"},
        },
        "ClearChargingProfile": lambda p: {"status": "Unknown"},
        "Reset": lambda p: {"status": "Rejected"},
    }
    async with running() as (cs, _), station(cs, "CP2", V201, handlers=handlers) as st:
        await st.boot()
        r = await cs.set_limit("CP2", tx_spec(cs, "T", 1, 10.0))
        assert r.outcome is CommandOutcome.RATE_LIMITED and r.retry_after_s == 30.0
        assert (await cs.clear_limit("CP2", 1)).outcome is CommandOutcome.ACCEPTED
        assert (await cs.reset("CP2")).outcome is CommandOutcome.REJECTED
        assert (await cs.reset("CP9")).outcome is CommandOutcome.NOT_CONNECTED
        # a spec that cannot be a valid profile never reaches the station
        bad = ChargingLimitSpec(LimitPurpose.TX, 0, cs.clock(), (LimitPeriod(0, 6, 3),), "T")
        assert (await cs.set_limit("CP2", bad)).outcome is CommandOutcome.REJECTED
        assert len(st.sent("SetChargingProfile")) == 1


async def test_station_callerror_is_error() -> None:
    async with running() as (cs, _), station(cs, "CP1", V16) as st:
        del st.handlers["TriggerMessage"]
        await st.boot()
        r = await cs.trigger_message("CP1", "StatusNotification")
        assert r.outcome is CommandOutcome.ERROR and "NotImplemented" in r.detail


# --- connections and security -------------------------------------------------------------


async def test_auth_cases() -> None:
    config = make_config(station_passwords={"CP1": "correct-horse-battery"})
    async with running(config) as (cs, rec):
        for headers in (
            None,
            basic("CP1", "wrong-password-123"),
            basic("CP2", "correct-horse-battery"),
        ):
            with pytest.raises(InvalidStatus) as err:
                async with station(cs, "CP1", headers=headers):
                    pass
            assert err.value.response.status_code == 401
        assert rec.events == []  # nothing happens for a refused station
        async with station(cs, "CP1", headers=basic("CP1", "correct-horse-battery")) as st:
            assert (await st.boot())["status"] == "Accepted"


async def test_unknown_station_404_unless_allowed() -> None:
    async with running() as (cs, rec):
        with pytest.raises(InvalidStatus) as err:
            async with station(cs, "STRANGER"):
                pass
        assert err.value.response.status_code == 404
        with pytest.raises(InvalidStatus) as err:
            await connect(f"ws://127.0.0.1:{cs.port}/other/CP1", subprotocols=["ocpp1.6"])  # type: ignore[list-item]
        assert err.value.response.status_code == 404
        assert rec.events == []
    async with running(make_config(allow_unknown_stations=True)) as (cs, rec):
        async with station(cs, "STRANGER") as st:
            assert (await st.boot())["status"] == "Accepted"
        assert [s.station_id for s in cs.stations()] == ["CP1", "CP2", "STRANGER"]


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return server_certificate(tmp_path_factory.mktemp("tls"))


async def test_tls_with_basic_auth(tls_files: tuple[Path, Path]) -> None:
    cert, key = tls_files
    config = make_config(
        tls_cert=str(cert), tls_key=str(key), station_passwords={"CP1": "s3cret-s3cret-s3cret"}
    )
    client_tls = ssl.create_default_context(cafile=str(cert))
    async with running(config) as (cs, _):
        async with station(
            cs, "CP1", headers=basic("CP1", "s3cret-s3cret-s3cret"), scheme="wss", ssl=client_tls
        ) as st:
            assert (await st.boot())["status"] == "Accepted"
        with pytest.raises(InvalidStatus):
            async with station(
                cs, "CP1", headers=basic("CP1", "nope-nope-nope-nope"), scheme="wss", ssl=client_tls
            ):
                pass
        with pytest.raises(InvalidMessage):
            async with station(cs, "CP1", headers=basic("CP1", "s3cret-s3cret-s3cret")):
                pass  # plain ws to a TLS port


@pytest.fixture(scope="module")
def station_certs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, Path]]:
    return station_certificates(tmp_path_factory.mktemp("station-certs"), ("CP1", "CP2"))


async def test_security_profile_3_client_certificates(
    tls_files: tuple[Path, Path], station_certs: dict[str, tuple[Path, Path]]
) -> None:
    cert, key = tls_files
    config = make_config(
        tls_cert=str(cert), tls_key=str(key), tls_client_ca=str(station_certs["ca"][0])
    )

    def client(name: str | None) -> ssl.SSLContext:
        ctx = ssl.create_default_context(cafile=str(cert))
        if name is not None:
            ctx.load_cert_chain(*map(str, station_certs[name]))
        return ctx

    async with running(config) as (cs, _):
        async with station(cs, "CP1", scheme="wss", ssl=client("CP1")) as st:
            assert (await st.boot())["status"] == "Accepted"
        with pytest.raises(InvalidStatus) as refused:
            async with station(cs, "CP1", scheme="wss", ssl=client("CP2")):
                pass  # CP2's certificate for CP1's id
        assert refused.value.response.status_code == 403
        for ctx in (client(None), client("rogue")):  # no certificate; one the CA did not sign
            with pytest.raises((ssl.SSLError, InvalidMessage, ConnectionClosed, OSError)):
                async with station(cs, "CP1", scheme="wss", ssl=ctx) as st:
                    await st.boot()
        async with station(cs, "CP2", scheme="wss", ssl=client("CP2")) as st:
            assert (await st.boot())["status"] == "Accepted"


def test_security_profile_3_needs_a_server_certificate() -> None:
    with pytest.raises(ConfigError, match="tls_client_ca"):
        make_config(tls_client_ca="ca.pem")
    with pytest.raises(ConfigError, match="go together"):
        make_config(tls_cert="cert.pem")


async def test_subprotocol_negotiation() -> None:
    async with running() as (cs, rec):
        url = f"ws://127.0.0.1:{cs.port}/ocpp/CP1"
        # the newest both offer, whatever the order the station lists them in
        for offered, chosen in (
            (["ocpp1.6", "ocpp2.0.1"], "ocpp2.0.1"),
            (["ocpp1.6", "ocpp2.1", "ocpp2.0.1"], "ocpp2.1"),
            (["ocpp2.1"], "ocpp2.1"),
            (["ocpp1.6"], "ocpp1.6"),
        ):
            async with connect(url, subprotocols=offered) as ws:  # type: ignore[arg-type]
                assert ws.subprotocol == chosen
        for refused in (["ocpp2.2", "ocpp1.5"], None):
            async with connect(url, subprotocols=refused) as ws:  # type: ignore[arg-type]
                assert ws.subprotocol is None
                with pytest.raises(ConnectionClosed) as closed:
                    await asyncio.wait_for(ws.recv(), 2)
                assert closed.value.rcvd is not None and closed.value.rcvd.code == 1002
        await asyncio.sleep(0.05)
    assert len(rec.of(StationConnected)) == 4


async def test_reconnect_replaces_old_connection() -> None:
    answer_later = asyncio.Event()

    async def slow(p: dict[str, Any]) -> dict[str, Any]:
        await answer_later.wait()
        return {"status": "Accepted"}

    async with running() as (cs, rec):
        async with station(cs, "CP1", handlers={"SetChargingProfile": slow}) as old:
            await old.boot()
            pending = asyncio.create_task(cs.set_limit("CP1", tx_spec(cs, "5", 1, 10.0)))
            while not old.sent("SetChargingProfile"):
                await asyncio.sleep(0.01)
            async with station(cs, "CP1") as new:
                result = await asyncio.wait_for(pending, 2)
                assert result.outcome is CommandOutcome.NOT_CONNECTED
                await asyncio.wait_for(old.ws.wait_closed(), 2)
                assert old.ws.close_code == 1000
                # the new connection works without a new BootNotification
                r = await cs.set_limit("CP1", tx_spec(cs, "5", 1, 12.0))
                assert r.outcome is CommandOutcome.ACCEPTED
                assert new.sent("SetChargingProfile")
                assert not rec.of(StationDisconnected)
                assert [i.connected for i in cs.stations() if i.station_id == "CP1"] == [True]
        await rec.wait_for(StationDisconnected)
    assert len(rec.of(StationConnected)) == 2
    assert len(rec.of(StationDisconnected)) == 1


async def test_set_limit_pending_while_station_sends_meter_values() -> None:
    """The station answers our CALL only after we answered its MeterValues."""
    async with running() as (cs, rec):
        holder: dict[str, Any] = {}

        async def answer_after_meter(p: dict[str, Any]) -> dict[str, Any]:
            holder["meter"] = await holder["st"].call("MeterValues", meter_16(None))
            return {"status": "Accepted"}

        async with station(cs, "CP1", handlers={"SetChargingProfile": answer_after_meter}) as st:
            holder["st"] = st
            await st.boot()
            spec = ChargingLimitSpec(
                LimitPurpose.TX_DEFAULT, 0, cs.clock(), (LimitPeriod(0, 20, 3),)
            )
            result = await asyncio.wait_for(cs.set_limit("CP1", spec), 3)
            assert result.outcome is CommandOutcome.ACCEPTED
            assert holder["meter"] == {}
    assert rec.of(MeterReading)


class BootInstaller(Recorder):
    """An application that installs the fallback profile from inside on_event."""

    cs: CentralSystem | None = None
    result: Any = None

    async def __call__(self, event: DomainEvent) -> None:
        await super().__call__(event)
        if isinstance(event, StationBooted) and self.cs is not None:
            spec = ChargingLimitSpec(
                LimitPurpose.TX_DEFAULT, 0, self.cs.clock(), (LimitPeriod(0, 6.0, 3),)
            )
            self.result = await self.cs.set_limit(event.station_id, spec)


async def test_set_limit_awaited_inside_on_event_for_boot() -> None:
    sink = BootInstaller()
    async with running(sink=sink) as (cs, _):
        sink.cs = cs
        async with station(cs, "CP1", V201) as st:
            boot = await asyncio.wait_for(st.boot(), 3)
            assert boot["status"] == "Accepted"
            await sink.wait_for(StationCapabilities)
            for _ in range(100):
                if sink.result is not None:
                    break
                await asyncio.sleep(0.01)
            assert sink.result.outcome is CommandOutcome.ACCEPTED
            [p] = st.sent("SetChargingProfile")
            assert p["evseId"] == 0
            assert p["chargingProfile"]["chargingProfilePurpose"] == "TxDefaultProfile"
            # the boot answer came before any CALL of ours
            assert st.received[0][0] == "GetVariables"


async def test_commands_wait_for_boot() -> None:
    async with running() as (cs, _), station(cs, "CP1") as st:
        spec = ChargingLimitSpec(LimitPurpose.TX_DEFAULT, 0, cs.clock(), (LimitPeriod(0, 6, 3),))
        task = asyncio.create_task(cs.set_limit("CP1", spec))
        await asyncio.sleep(0.1)
        assert st.received == []  # nothing before BootNotification is accepted
        await st.boot()
        assert (await asyncio.wait_for(task, 3)).outcome is CommandOutcome.ACCEPTED
    fast = AdapterSettings(boot_wait_s=0.2)
    async with running(settings=fast) as (cs, _), station(cs, "CP1"):
        r = await cs.set_limit("CP1", spec)
        assert r.outcome is CommandOutcome.NOT_CONNECTED and "booted" in r.detail


async def test_timeout_then_retry() -> None:
    calls = 0

    async def drop_first(p: dict[str, Any]) -> dict[str, Any]:
        nonlocal calls
        calls += 1
        if calls == 1:
            await asyncio.sleep(10)  # never answered in time
        return {"status": "Accepted"}

    settings = AdapterSettings(call_timeout_s=0.5, call_retries=1, validate_replies=True)
    async with running(settings=settings) as (cs, _):
        async with station(cs, "CP1", handlers={"SetChargingProfile": drop_first}) as st:
            await st.boot()
            r = await cs.set_limit("CP1", tx_spec(cs, "1", 1, 10.0))
            assert r.outcome is CommandOutcome.ACCEPTED
            ids = [
                p["csChargingProfiles"]["chargingProfileId"] for p in st.sent("SetChargingProfile")
            ]
            assert len(ids) == 2 and ids[0] == ids[1]  # same profile resent

        async def never(p: dict[str, Any]) -> dict[str, Any]:
            await asyncio.sleep(10)
            return {}

        async with station(cs, "CP1", handlers={"SetChargingProfile": never}) as st:
            await st.boot()
            r = await cs.set_limit("CP1", tx_spec(cs, "1", 1, 10.0))
            assert r.outcome is CommandOutcome.TIMEOUT
            assert len(st.sent("SetChargingProfile")) == 2
            # non-idempotent commands are not resent
            st.handlers["Reset"] = never
            assert (await cs.reset("CP1")).outcome is CommandOutcome.TIMEOUT
            assert len(st.sent("Reset")) == 1


async def test_flood_is_closed_others_keep_working() -> None:
    settings = AdapterSettings(bad_frame_limit=5, validate_replies=True)
    async with (
        running(settings=settings) as (cs, _),
        station(cs, "CP1") as bad,
        station(cs, "CP2") as good,
    ):
        await good.boot()
        for i in range(20):
            try:
                await bad.send_raw("garbage")
            except ConnectionClosed:
                break
            if i % 4 == 0:
                assert (await good.call("Heartbeat", {}))["currentTime"]
        await asyncio.wait_for(bad.ws.wait_closed(), 2)
        assert bad.ws.close_code == 1008
        errors = []
        while not bad.raw.empty():
            errors.append(bad.raw.get_nowait())
        assert len(errors) == 5 and all(e[:3] == [4, "-1", "FormationViolation"] for e in errors)
        assert (await good.call("Heartbeat", {}))["currentTime"]


async def test_unknown_callresult_ignored() -> None:
    async with running() as (cs, _), station(cs, "CP1", V201) as st:
        await st.boot()
        await st.send_raw(json.dumps([3, "not-ours", {"status": "Accepted"}]))
        await st.send_raw(json.dumps([4, "not-ours-either", "GenericError", "", {}]))
        assert (await st.call("Heartbeat", {}))["currentTime"]
        assert st.raw.empty()


@pytest.mark.parametrize(
    ("version", "frame", "code"),
    [
        (V16, "{not json", "FormationViolation"),
        (V201, "{not json", "RpcFrameworkError"),
        (V201, '[7, "x", {}]', "MessageTypeNotSupported"),
        (V16, '[2, "x", "Bogus", {}]', "NotImplemented"),
        (V201, '[2, "x", "Reset", {"type": "Immediate"}]', "NotSupported"),
        (V16, '[2, "x", "Heartbeat", {"extra": 1}]', "FormationViolation"),
        (V201, '[2, "x", "Heartbeat", {"extra": 1}]', "FormatViolation"),
        (V16, '[2, "x", "StatusNotification", {"connectorId": 1}]', "OccurenceConstraintViolation"),
        (V21, "{not json", "RpcFrameworkError"),
        (V21, '[7, "x", {}]', "MessageTypeNotSupported"),
        (V21, '[2, "x", "Bogus", {}]', "NotImplemented"),
        (V21, '[2, "x", "Reset", {"type": "Immediate"}]', "NotSupported"),
        (V21, '[2, "x", "Heartbeat", {"extra": 1}]', "FormatViolation"),
        (V21, '[2, "x", "StatusNotification", {"evseId": 1}]', "OccurrenceConstraintViolation"),
        (
            V21,
            '[2, "x", "UsePriorityCharging", {"transactionId": "t", "activate": true}]',
            "NotSupported",
        ),
    ],
)
async def test_callerror_over_the_wire(version: OcppVersion, frame: str, code: str) -> None:
    async with running() as (cs, _), station(cs, "CP1", version) as st:
        await st.send_raw(frame)
        error = await asyncio.wait_for(st.raw.get(), 2)
        assert error[0] == 4 and error[2] == code


async def test_on_event_failure_answers_internal_error_and_resend_works() -> None:
    async with running() as (cs, rec), station(cs, "CP1") as st:
        await st.boot()
        start = {"connectorId": 1, "idTag": "T", "meterStart": 0, "timestamp": TS}
        rec.fail = True
        with pytest.raises(CallFailed) as err:
            await st.call("StartTransaction", start)
        assert err.value.code == "InternalError"
        rec.fail = False
        assert (await st.call("StartTransaction", start))["transactionId"]
        assert len(rec.of(SessionStarted)) == 1


@pytest.mark.parametrize("version", [V16, V201, V21])
async def test_a_refused_event_is_the_protocols_error_without_a_traceback(
    version: OcppVersion, caplog: pytest.LogCaptureFixture
) -> None:
    async with running() as (cs, rec), station(cs, "CP1", version) as st:
        await st.boot()
        rec.refuse = EventRefused(PROPERTY_CONSTRAINT, "session CP1/7: another start")
        status = (
            {"connectorId": 1, "errorCode": "NoError", "status": "Available"}
            if version is V16
            else {"timestamp": TS, "connectorStatus": "Available", "evseId": 1, "connectorId": 1}
        )
        with caplog.at_level(logging.WARNING), pytest.raises(CallFailed) as err:
            await st.call("StatusNotification", status)
        assert err.value.code == "PropertyConstraintViolation"
        assert "another start" in str(err.value)
        assert not [r for r in caplog.records if r.exc_info]
        refused = [r.getMessage() for r in caplog.records if "refused" in r.getMessage()]
        assert "'CP1': StatusNotification refused: PropertyConstraintViolation" in "\n".join(
            refused
        )
        rec.refuse = None
        assert "currentTime" in await st.call("Heartbeat", {})


async def test_v16_transaction_ids_are_asked_for_by_the_central_system() -> None:
    asked: list[int] = []

    def source() -> int:  # the store's sequence
        asked.append(7000 + len(asked))
        return asked[-1]

    cs = CentralSystem(
        ocpp_server_settings(make_config()), Recorder(), settings=FAST, transaction_ids=source
    )
    await cs.start()
    try:
        async with station(cs, "CP1") as st:
            await st.boot()
            for tag in ("A", "B"):
                start = {"connectorId": 1, "idTag": tag, "meterStart": 0, "timestamp": TS}
                tx = (await st.call("StartTransaction", start))["transactionId"]
                assert tx == asked[-1]
        assert asked == [7000, 7001]
    finally:
        await cs.stop()


async def test_stop_closes_stations_going_away() -> None:
    async with running() as (cs, rec), station(cs, "CP1") as st:
        await st.boot()
        await cs.stop()
        await asyncio.wait_for(st.ws.wait_closed(), 2)
        assert st.ws.close_code == 1001
    assert rec.of(StationDisconnected)


async def test_queued_commands_are_bounded() -> None:
    settings = AdapterSettings(max_queued_calls=1, boot_wait_s=1.0)
    spec = ChargingLimitSpec(LimitPurpose.TX_DEFAULT, 0, NOW_SPEC, (LimitPeriod(0, 6, 3),))
    async with running(settings=settings) as (cs, _), station(cs, "CP1") as st:
        first = asyncio.create_task(cs.set_limit("CP1", spec))
        await asyncio.sleep(0.05)
        second = await cs.set_limit("CP1", spec)
        assert second.outcome is CommandOutcome.REJECTED and "queued" in second.detail
        await st.boot()
        assert (await first).outcome is CommandOutcome.ACCEPTED
        [info] = [i for i in cs.stations() if i.station_id == "CP1"]
        assert info.profiles == {(0, LimitPurpose.TX_DEFAULT): spec}
        assert info.connected and info.protocol == "ocpp1.6" and info.capabilities is not None


async def test_station_flooding_calls_gets_errors() -> None:
    gate = asyncio.Event()

    class Slow(Recorder):
        async def __call__(self, event: DomainEvent) -> None:
            if isinstance(event, ConnectorStatusChanged):
                await gate.wait()
            await super().__call__(event)

    settings = AdapterSettings(max_inbound_calls=2, validate_replies=True)
    status = {"connectorId": 1, "errorCode": "NoError", "status": "Available"}
    async with running(settings=settings, sink=Slow()) as (cs, _), station(cs, "CP1") as st:
        for i in range(6):
            await st.send_raw(json.dumps([2, f"f{i}", "StatusNotification", status]))
        # at most one being handled and two waiting: the rest are refused at once
        errors = [await asyncio.wait_for(st.raw.get(), 2) for _ in range(3)]
        assert all(e[0] == 4 and e[2] == "FormationViolation" for e in errors)
        gate.set()
        frames = errors + [await asyncio.wait_for(st.raw.get(), 2) for _ in range(3)]
        answered = [f[1] for f in frames if f[0] == 3]
        refused = [f[1] for f in frames if f[0] == 4]
        assert 2 <= len(answered) <= 3 and len(answered) + len(refused) == 6
        assert answered == [f"f{i}" for i in range(len(answered))]  # in order


async def test_percent_encoded_station_id() -> None:
    async with running() as (cs, rec), station(cs, "CP%31") as st:
        await st.boot()
        assert rec.of(StationBooted)[0].station_id == "CP1"


async def test_gc_keeper_freezes_and_releases() -> None:
    import gc

    settings = AdapterSettings(gc_freeze_interval_s=0.05)
    async with running(settings=settings) as (cs, _), station(cs, "CP1") as st:
        await st.boot()
        for _ in range(100):
            if gc.get_freeze_count():
                break
            await asyncio.sleep(0.02)
        assert gc.get_freeze_count() > 0
    assert gc.get_freeze_count() == 0


class BootSpawner(Recorder):
    """Like the controller: spawns the fallback profile when a station boots."""

    cs: CentralSystem | None = None
    tasks: list[asyncio.Task[Any]]

    async def __call__(self, event: DomainEvent) -> None:
        await super().__call__(event)
        if isinstance(event, StationBooted) and self.cs is not None:
            spec = ChargingLimitSpec(
                LimitPurpose.TX_DEFAULT, 0, self.cs.clock(), (LimitPeriod(0, 6.0, 3),)
            )
            self.tasks.append(asyncio.create_task(self.cs.set_limit(event.station_id, spec)))


async def test_fallback_goes_before_sampling_configuration() -> None:
    sink = BootSpawner()
    sink.tasks = []
    async with running(sink=sink) as (cs, _), station(cs, "CP1") as st:
        sink.cs = cs
        await st.boot()
        [task] = sink.tasks
        assert (await asyncio.wait_for(task, 3)).outcome is CommandOutcome.ACCEPTED
        for _ in range(100):
            if len(st.received) >= 4:
                break
            await asyncio.sleep(0.01)
        assert [a for a, _ in st.received] == [
            "GetConfiguration",
            "SetChargingProfile",
            "ChangeConfiguration",
            "ChangeConfiguration",
        ]


async def test_frame_tap_and_frame_log_see_every_frame(caplog: pytest.LogCaptureFixture) -> None:
    seen: list[tuple[str, str, Any]] = []

    def tap(sid: str, way: str, frame: str | bytes) -> None:
        seen.append((sid, way, json.loads(frame)))  # fails on the bad frame: must not matter

    async with running() as (cs, _):
        cs.add_frame_tap(tap)
        with caplog.at_level(logging.DEBUG, logger="ocpp_adapter.frames"):
            async with station(cs, "CP1", V201) as st:
                await st.boot()
                await st.send_raw("{not json")
                await asyncio.wait_for(st.raw.get(), 2)
                await cs.set_limit("CP1", tx_spec(cs, "tx-1", 1, 16.0))
    boot = next(i for i, f in enumerate(seen) if f[1] == "in" and f[2][2] == "BootNotification")
    assert seen[boot + 1][1] == "out" and seen[boot + 1][2][0] == 3  # its answer, right after
    assert ("CP1", "out") in {(s, w) for s, w, f in seen if f[0] == 4}  # the CALLERROR
    assert any(w == "out" and f[0] == 2 and f[2] == "SetChargingProfile" for _, w, f in seen)
    assert any(w == "in" and f[0] == 3 for _, w, f in seen)  # the station's answers
    logged = [r.getMessage() for r in caplog.records if r.name == "ocpp_adapter.frames"]
    assert len(logged) >= len(seen) - 1 and any("BootNotification" in m for m in logged)


async def test_station_details_as_the_application_sees_them() -> None:
    """`stations()` as the port gives it: capabilities as short names, vendor and
    model as the boot said, and a configured station never seen by its id only."""
    config_16 = {
        "ChargingScheduleAllowedChargingRateUnit": "Current,Power",
        "ConnectorSwitch3to1PhaseSupported": "true",
    }
    handlers: dict[str, Handler] = {
        "GetConfiguration": lambda p: {
            "configurationKey": [
                {"key": k, "readonly": True, "value": v} for k, v in config_16.items()
            ]
        },
    }
    async with running() as (cs, rec):
        gateway: OcppGateway = cs  # the central system is the port itself
        async with station(cs, "CP1", V16, handlers=handlers) as st:
            await st.boot()
            await rec.wait_for(StationCapabilities)
            cp1, cp2 = gateway.stations()
            assert cp1 == StationInfo(
                "CP1",
                connected=True,
                protocol="ocpp1.6",
                vendor="Acme",
                model="W1",
                firmware=None,
                last_seen=cp1.last_seen,
                capabilities=("SmartCharging", "rate:A", "rate:W", "PhaseSwitching"),
            )
            assert cp1.last_seen is not None
            assert cp2 == StationInfo("CP2", connected=False)
