"""The per-station protocol state machine, without sockets: frames in, events and frames out."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from ocpp_adapter.events import (
    ConnectorStatusChanged,
    ExternalLimitNotified,
    MeterReading,
    SessionEnded,
    SessionStarted,
    StationBooted,
)
from ocpp_adapter.rpc import OcppVersion, RpcError
from ocpp_adapter.station import (
    Answer,
    Handled,
    Refused,
    SessionSettings,
    StationSession,
    TransactionIds,
)

NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
TS = "2026-03-02T11:00:00Z"
V16, V201 = OcppVersion.V16, OcppVersion.V201


def session(version: OcppVersion = V16, **settings: Any) -> StationSession:
    return StationSession(
        "CP1",
        version,
        SessionSettings(validate_replies=True, **settings),
        TransactionIds(500),
        lambda: NOW,
    )


_ids = iter(range(10**6))


def call(s: StationSession, action: str, payload: dict[str, Any]) -> Handled:
    out = s.receive(json.dumps([2, f"m{next(_ids)}", action, payload]))
    assert isinstance(out, Handled), out
    return out


def reply(h: Handled) -> Any:
    frame = json.loads(h.reply)
    assert frame[0] == 3
    return frame[2]


def done(h: Handled) -> Handled:
    if h.commit is not None:
        h.commit()
    return h


def test_boot_v16() -> None:
    s = session()
    h = call(
        s,
        "BootNotification",
        {"chargePointVendor": "V", "chargePointModel": "M", "firmwareVersion": "1.2"},
    )
    assert h.boot_accepted
    assert reply(h) == {
        "status": "Accepted",
        "currentTime": "2026-03-02T12:00:00Z",
        "interval": 300,
    }
    assert h.events == [StationBooted("CP1", "V", "M", NOW, "1.2")]
    assert not s.state.booted  # only once the event is stored
    done(h)
    assert s.state.booted


def test_any_other_call_means_booted_before() -> None:
    s = session()
    call(s, "Heartbeat", {})
    assert s.state.booted


def test_status_and_authorize_allow_list() -> None:
    s = session(authorize_id_tags=frozenset({"GOOD"}))
    h = call(
        s,
        "StatusNotification",
        {"connectorId": 2, "errorCode": "GroundFailure", "status": "Faulted", "timestamp": TS},
    )
    assert h.events == [
        ConnectorStatusChanged(
            "CP1/2", "Faulted", datetime(2026, 3, 2, 11, tzinfo=UTC), "GroundFailure"
        )
    ]
    assert reply(call(s, "Authorize", {"idTag": "GOOD"})) == {"idTagInfo": {"status": "Accepted"}}
    assert reply(call(s, "Authorize", {"idTag": "BAD"})) == {"idTagInfo": {"status": "Invalid"}}


def test_v16_transaction_flow() -> None:
    s = session()
    start = {"connectorId": 1, "idTag": "T", "meterStart": 100, "timestamp": TS}
    h = done(call(s, "StartTransaction", start))
    tx = reply(h)["transactionId"]
    assert tx == 500
    assert h.events == [
        SessionStarted("CP1/1", "500", "T", 100.0, datetime(2026, 3, 2, 11, tzinfo=UTC))
    ]
    # a resend of the same StartTransaction gets the same id and no second session
    again = done(call(s, "StartTransaction", start))
    assert reply(again)["transactionId"] == 500 and again.events == []

    stop = {
        "transactionId": tx,
        "meterStop": 900,
        "timestamp": TS,
        "idTag": "T",
        "transactionData": [{"timestamp": TS, "sampledValue": [{"value": "900"}]}],
    }
    h = done(call(s, "StopTransaction", stop))
    assert reply(h) == {"idTagInfo": {"status": "Accepted"}}
    reading, ended = h.events
    assert isinstance(reading, MeterReading) and reading.energy_wh == 900.0
    assert ended == SessionEnded(
        "500", 900.0, datetime(2026, 3, 2, 11, tzinfo=UTC), "Local", "CP1/1", "CP1"
    )
    assert s.state.tx_connector == {}


def test_v16_misc_actions() -> None:
    s = session()
    assert reply(call(s, "DataTransfer", {"vendorId": "x"})) == {"status": "UnknownVendorId"}
    assert reply(call(s, "DiagnosticsStatusNotification", {"status": "Idle"})) == {}
    assert reply(call(s, "FirmwareStatusNotification", {"status": "Installed"})) == {}
    mv = call(
        s,
        "MeterValues",
        {
            "connectorId": 0,
            "meterValue": [
                {
                    "timestamp": TS,
                    "sampledValue": [{"value": "5", "measurand": "Current.Import", "phase": "L1"}],
                }
            ],
        },
    )
    [r] = mv.events
    assert isinstance(r, MeterReading) and r.connector_id == "CP1/0"


def test_callerror_for_action_a_station_may_not_send() -> None:
    out = session().receive(json.dumps([2, "q", "RemoteStartTransaction", {"idTag": "x"}]))
    assert isinstance(out, Refused)
    assert json.loads(out.reply or "")[:3] == [4, "q", "NotSupported"]


def started(tx: str, seq: int, kind: str = "Started", **extra: Any) -> dict[str, Any]:
    return {
        "eventType": kind,
        "timestamp": TS,
        "triggerReason": "CablePluggedIn",
        "seqNo": seq,
        "transactionInfo": {"transactionId": tx},
        **extra,
    }


def test_v201_an_ended_transactions_sequence_numbers_are_kept_compact() -> None:
    s = session(V201)
    for seq, kind in enumerate(("Started", *["Updated"] * 40, "Ended")):
        done(call(s, "TransactionEvent", started("A", seq, kind, evse={"id": 1})))
    assert s._seen_seq["A"] == range(0, 42)
    # resends after the end are still known; a late message with a new number is not
    assert call(s, "TransactionEvent", started("A", 17, "Updated")).events == []
    assert call(s, "TransactionEvent", started("A", 41, "Ended")).events == []
    done(call(s, "TransactionEvent", started("A", 50, "Updated", evse={"id": 1})))
    assert s._seen_seq["A"] == set(range(0, 42)) | {50}


def test_v201_transaction_event_dedup_only_after_commit() -> None:
    s = session(V201)
    first = started("A", 0, evse={"id": 2}, offline=True)
    h = call(s, "TransactionEvent", first)
    [ev] = h.events
    assert isinstance(ev, SessionStarted) and ev.offline and ev.connector_id == "CP1/2"
    # not committed (storing failed): the resend must produce the event again
    h = done(call(s, "TransactionEvent", first))
    assert len(h.events) == 1
    assert call(s, "TransactionEvent", first).events == []
    upd = started(
        "A",
        1,
        "Updated",
        meterValue=[
            {
                "timestamp": TS,
                "sampledValue": [{"value": 16, "measurand": "Current.Import", "phase": "L1"}],
            }
        ],
        transactionInfo={"transactionId": "A", "chargingState": "SuspendedEVSE"},
    )
    h = done(call(s, "TransactionEvent", upd))
    reading, status = h.events
    assert isinstance(reading, MeterReading) and reading.connector_id == "CP1/2"
    assert reading.transaction_id == "A"
    assert status == ConnectorStatusChanged("CP1/2", "SuspendedEVSE", reading.at)
    h = done(call(s, "TransactionEvent", started("A", 2, "Ended")))
    [end] = h.events
    assert isinstance(end, SessionEnded) and end.connector_id == "CP1/2"


PROFILE = {
    "id": 1,
    "stackLevel": 0,
    "chargingProfilePurpose": "TxDefaultProfile",
    "chargingProfileKind": "Absolute",
    "chargingSchedule": [
        {
            "id": 1,
            "startSchedule": TS,
            "chargingRateUnit": "A",
            "chargingSchedulePeriod": [{"startPeriod": 0, "limit": 6}],
        }
    ],
}
EVENT = {
    "eventId": 1,
    "timestamp": TS,
    "trigger": "Delta",
    "actualValue": "x",
    "eventNotificationType": "HardWiredNotification",
    "component": {"name": "EVSE"},
    "variable": {"name": "Power"},
}


def test_v201_notifications() -> None:
    s = session(V201)
    h = call(
        s,
        "NotifyChargingLimit",
        {
            "evseId": 1,
            "chargingLimit": {"chargingLimitSource": "SO"},
            "chargingSchedule": [
                {
                    "id": 1,
                    "chargingRateUnit": "A",
                    "chargingSchedulePeriod": [{"startPeriod": 0, "limit": 10.0}],
                }
            ],
        },
    )
    assert h.events == [ExternalLimitNotified("CP1", NOW, "SO", "CP1/1", 10.0)]
    for action, payload in [
        (
            "ReportChargingProfiles",
            {
                "requestId": 1,
                "chargingLimitSource": "CSO",
                "evseId": 1,
                "chargingProfile": [PROFILE],
            },
        ),
        ("SecurityEventNotification", {"type": "X", "timestamp": TS}),
        ("NotifyEvent", {"generatedAt": TS, "seqNo": 0, "eventData": [EVENT]}),
        ("NotifyReport", {"requestId": 1, "generatedAt": TS, "seqNo": 0}),
    ]:
        out = session(V201).receive(json.dumps([2, "n", action, payload]))
        if isinstance(out, Refused):
            # a payload the schema refuses; adjust it rather than the code
            pytest.fail(f"{action}: {out.reason}")
        assert isinstance(out, Handled) and reply(out) == {}
    assert reply(call(s, "DataTransfer", {"vendorId": "x"})) == {"status": "UnknownVendorId"}


def test_results_matched_to_the_outstanding_call() -> None:
    s = session(V201)
    assert s.receive(json.dumps([3, "zzz", {}])) is None  # nobody asked
    uid, frame = s.call("Reset", {"type": "Immediate"})
    assert json.loads(frame) == [2, uid, "Reset", {"type": "Immediate"}]
    out = s.receive(json.dumps([3, uid, {"status": "Accepted"}]))
    assert out == Answer(uid, "Reset", {"status": "Accepted"})
    assert s.receive(json.dumps([3, uid, {"status": "Accepted"}])) is None  # only once
    uid, _ = s.call("Reset", {"type": "Immediate"})
    out = s.receive(json.dumps([4, uid, "NotSupported", "no", {}]))
    assert isinstance(out, Answer) and out.error_code == "NotSupported"
    uid, _ = s.call("Reset", {"type": "Immediate"})
    out = s.receive(json.dumps([3, uid, {"status": "Whatever"}]))
    assert isinstance(out, Answer) and out.error_code == "InvalidResult"
    uid, _ = s.call("Reset", {"type": "Immediate"})
    s.forget(uid)
    assert s.receive(json.dumps([3, uid, {"status": "Accepted"}])) is None


def test_our_invalid_payload_is_refused_before_sending() -> None:
    with pytest.raises(RpcError):
        session().call("Reset", {"type": "Sometimes"})


def test_capabilities_v16() -> None:
    s = session()
    action, payload = s.capability_request()
    assert action == "GetConfiguration" and "ChargingScheduleMaxPeriods" in payload["key"]
    caps = s.apply_capabilities(
        {
            "configurationKey": [
                {
                    "key": "ChargingScheduleAllowedChargingRateUnit",
                    "readonly": True,
                    "value": "Current,Power",
                },
                {"key": "ChargingScheduleMaxPeriods", "readonly": True, "value": " 48 "},
                {"key": "ChargeProfileMaxStackLevel", "readonly": True, "value": "3"},
                {"key": "ConnectorSwitch3to1PhaseSupported", "readonly": True, "value": "TRUE"},
            ]
        }
    )
    assert (caps.rate_units, caps.max_periods, caps.max_stack_level, caps.phase_switching) == (
        ("A", "W"),
        48,
        3,
        True,
    )
    assert s.state.capabilities is caps
    fallback = s.apply_capabilities(None)
    assert fallback.rate_units == ("A",) and fallback.max_periods is None


def test_capabilities_v201() -> None:
    s = session(V201)
    _, payload = s.capability_request()
    names = [d["variable"]["name"] for d in payload["getVariableData"]]
    assert names == ["RateUnit", "PeriodsPerSchedule", "ProfileStackLevel", "Phases3to1"]
    result = {
        "getVariableResult": [
            {
                "attributeStatus": "Accepted",
                "attributeValue": "W",
                "component": {"name": "x"},
                "variable": {"name": "RateUnit"},
            },
            {
                "attributeStatus": "UnknownVariable",
                "component": {"name": "x"},
                "variable": {"name": "PeriodsPerSchedule"},
            },
        ]
    }
    caps = s.apply_capabilities(result)
    assert caps.rate_units == ("W",) and caps.max_periods is None


@pytest.mark.parametrize("version", [V16, V201])
def test_sampling_requests_are_valid(version: OcppVersion) -> None:
    s = session(version)
    requests = list(s.sampling_requests())
    assert requests
    for action, payload in requests:
        s.call(action, payload)  # validates against the schema
    assert list(session(version, meter_interval_s=None).sampling_requests()) == []


def test_bad_frame_gives_refused_with_error() -> None:
    out = session(V201).receive("[2, 1]")
    assert isinstance(out, Refused) and json.loads(out.reply or "")[2] == "RpcFrameworkError"
