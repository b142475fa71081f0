"""Input that is not what OCPP allows: the version's own CALLERROR, nothing
changed, and the connection carries on."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ocpp_adapter.datetimes import parse_datetime
from ocpp_adapter.events import (
    ConnectorStatusChanged,
    MeterReading,
    SessionEnded,
    SessionStarted,
)
from ocpp_adapter.rpc import MAX_DEPTH, Fault, OcppVersion, RpcError, parse_frame
from ocpp_adapter.station import Handled, Refused, SessionSettings, StationSession, TransactionIds
from tests.ocpp.helpers import running, station

NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
TS = "2026-03-02T11:00:00Z"
V16, V201 = OcppVersion.V16, OcppVersion.V201


def session(version: OcppVersion) -> StationSession:
    return StationSession(
        "CP1", version, SessionSettings(validate_replies=True), TransactionIds(500), lambda: NOW
    )


def refused(s: StationSession, frame: str) -> list[Any]:
    out = s.receive(frame)
    assert isinstance(out, Refused), out
    return list(json.loads(out.reply or ""))


DEEP = '[2,"x","Heartbeat",' + "[" * 5000


# --- nesting ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("version", "code"), [(V16, "FormationViolation"), (V201, "FormatViolation")]
)
def test_frame_nested_beyond_the_cap_is_a_format_fault_with_its_id(
    version: OcppVersion, code: str
) -> None:
    assert refused(session(version), DEEP)[:3] == [4, "x", code]
    # closed brackets too: valid JSON, just too deep
    closed = '[2,"y","DataTransfer",{"vendorId":"v","data":' + "[" * 100 + "]" * 100 + "}]"
    assert refused(session(version), closed)[:3] == [4, "y", code]


def test_nesting_inside_strings_does_not_count() -> None:
    text = json.dumps([2, "z", "DataTransfer", {"vendorId": "v", "data": "[{" * 5000 + '\\"['}])
    assert parse_frame(text).payload["data"].startswith("[{[{")  # type: ignore[union-attr]


def test_nesting_up_to_the_cap_is_parsed() -> None:
    inner = "[" * (MAX_DEPTH - 2) + "]" * (MAX_DEPTH - 2)  # with the frame and payload: the cap
    msg = parse_frame(f'[2,"a","DataTransfer",{{"vendorId":"v","data":{inner}}}]')
    assert msg.unique_id == "a"
    with pytest.raises(RpcError) as err:
        parse_frame(f'[2,"a","DataTransfer",{{"vendorId":"v","data":[{inner}]}}]')
    assert err.value.fault is Fault.FORMAT


@settings(deadline=None)
@given(
    st.integers(min_value=MAX_DEPTH - 6, max_value=MAX_DEPTH + 4),
    st.lists(st.sampled_from(["[", "]", "{", "}", '"', "\\", "x", "é", "\n"]), max_size=12),
    st.booleans(),
)
def test_depth_is_counted_outside_strings_only(depth: int, noise: list[str], objects: bool) -> None:
    # a ladder of `depth` containers whose every level also holds a string of brackets
    value: Any = "".join(noise)
    for _ in range(depth):
        value = {"k": value, "s": "".join(noise)} if objects else ["".join(noise), value]
    text = json.dumps(
        [2, "d", "DataTransfer", {"vendorId": "v", "data": value}], ensure_ascii=False
    )
    if depth + 2 > MAX_DEPTH:
        with pytest.raises(RpcError) as err:
            parse_frame(text)
        assert (err.value.fault, err.value.unique_id) == (Fault.FORMAT, "d")
    else:
        assert parse_frame(text).unique_id == "d"


async def test_deep_frame_over_the_wire_keeps_the_connection() -> None:
    async with running() as (cs, _), station(cs, "CP1", V201) as st:
        await st.boot()
        await st.send_raw(DEEP)
        error = await asyncio.wait_for(st.raw.get(), 2)
        assert error[:3] == [4, "x", "FormatViolation"]
        assert "currentTime" in await st.call("Heartbeat", {})


# --- NaN and Infinity ---------------------------------------------------------------------


def _mv_201(value: str) -> str:
    return (
        '[2,"n","MeterValues",{"evseId":1,"meterValue":[{"timestamp":"2026-03-02T11:00:00Z",'
        '"sampledValue":[{"value":' + value + ',"measurand":"Current.Import"}]}]}]'
    )


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity"])
def test_non_json_number_literals_are_refused(literal: str) -> None:
    assert refused(session(V201), _mv_201(literal))[:3] == [4, "n", "FormatViolation"]
    frame_16 = '[2,"m","DataTransfer",{"vendorId":"v","data":' + literal + "}]"
    assert refused(session(V16), frame_16)[:3] == [4, "m", "FormationViolation"]


async def test_nan_meter_value_over_the_wire_changes_nothing() -> None:
    async with running() as (cs, rec), station(cs, "CP1", V201) as st:
        await st.boot()
        await st.send_raw(_mv_201("NaN"))
        error = await asyncio.wait_for(st.raw.get(), 2)
        assert error[:3] == [4, "n", "FormatViolation"]
        await st.call("Heartbeat", {})
        assert rec.of(MeterReading) == []


# --- dateTime -----------------------------------------------------------------------------

ZONELESS, GARBAGE = "2026-01-01T10:00:00", "yesterday"


def _sv(ts: str) -> list[dict[str, Any]]:
    return [{"timestamp": ts, "sampledValue": [{"value": "5", "measurand": "Current.Import"}]}]


def _sv201(ts: str) -> list[dict[str, Any]]:
    return [{"timestamp": ts, "sampledValue": [{"value": 5, "measurand": "Current.Import"}]}]


# (action, payload with the time put in one of its dateTime fields)
DATE_FIELDS_16 = [
    (
        "StatusNotification",
        lambda t: {"connectorId": 1, "errorCode": "NoError", "status": "Available", "timestamp": t},
    ),
    (
        "StartTransaction",
        lambda t: {"connectorId": 1, "idTag": "T", "meterStart": 0, "timestamp": t},
    ),
    ("StopTransaction", lambda t: {"transactionId": 1, "meterStop": 5, "timestamp": t}),
    (
        "StopTransaction",
        lambda t: {"transactionId": 1, "meterStop": 5, "timestamp": TS, "transactionData": _sv(t)},
    ),
    ("MeterValues", lambda t: {"connectorId": 1, "meterValue": _sv(t)}),
    ("SecurityEventNotification", lambda t: {"type": "X", "timestamp": t}),
]
DATE_FIELDS_201 = [
    (
        "StatusNotification",
        lambda t: {"timestamp": t, "connectorStatus": "Available", "evseId": 1, "connectorId": 1},
    ),
    (
        "TransactionEvent",
        lambda t: {
            "eventType": "Started",
            "timestamp": t,
            "triggerReason": "CablePluggedIn",
            "seqNo": 0,
            "transactionInfo": {"transactionId": "A"},
            "evse": {"id": 1},
        },
    ),
    (
        "TransactionEvent",
        lambda t: {
            "eventType": "Updated",
            "timestamp": TS,
            "triggerReason": "MeterValuePeriodic",
            "seqNo": 1,
            "transactionInfo": {"transactionId": "A"},
            "evse": {"id": 1},
            "meterValue": _sv201(t),
        },
    ),
    ("MeterValues", lambda t: {"evseId": 1, "meterValue": _sv201(t)}),
    (
        "NotifyEVChargingNeeds",
        lambda t: {
            "evseId": 1,
            "chargingNeeds": {"requestedEnergyTransfer": "AC_single_phase", "departureTime": t},
        },
    ),
    ("SecurityEventNotification", lambda t: {"type": "X", "timestamp": t}),
]


@pytest.mark.parametrize(("action", "payload"), DATE_FIELDS_201)
@pytest.mark.parametrize("bad", [ZONELESS, GARBAGE, "2026-13-01T10:00:00Z", "2026-01-01"])
def test_v201_datetime_without_offset_or_unreadable_is_a_format_violation(
    action: str, payload: Any, bad: str
) -> None:
    s = session(V201)
    assert refused(s, json.dumps([2, "t", action, payload(bad)]))[:3] == [4, "t", "FormatViolation"]
    assert s.state.tx_connector == {}
    out = s.receive(json.dumps([2, "u", action, payload("2026-03-02T13:00:00.123+02:00")]))
    assert isinstance(out, Handled), out


@pytest.mark.parametrize(("action", "payload"), DATE_FIELDS_16)
@pytest.mark.parametrize("bad", [GARBAGE, "2026-02-30T10:00:00Z", "10:00:00"])
def test_v16_unreadable_datetime_is_a_property_constraint_violation(
    action: str, payload: Any, bad: str
) -> None:
    s = session(V16)
    frame = json.dumps([2, "t", action, payload(bad)])
    assert refused(s, frame)[:3] == [4, "t", "PropertyConstraintViolation"]
    assert s.state.tx_connector == {}
    out = s.receive(json.dumps([2, "u", action, payload(ZONELESS)]))
    assert isinstance(out, Handled), out


def test_v16_zoneless_time_is_read_as_utc() -> None:
    out = session(V16).receive(
        json.dumps([2, "s", *DATE_FIELDS_16[0][:1], DATE_FIELDS_16[0][1](ZONELESS)])
    )
    assert isinstance(out, Handled)
    [event] = out.events
    assert isinstance(event, ConnectorStatusChanged)
    assert event.at == datetime(2026, 1, 1, 10, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-03-02T12:00:00Z", datetime(2026, 3, 2, 12, tzinfo=UTC)),
        ("2026-03-02t13:00:00.5+01:00", datetime(2026, 3, 2, 12, 0, 0, 500000, tzinfo=UTC)),
        ("2026-03-02 12:00:00.123456789z", datetime(2026, 3, 2, 12, 0, 0, 123456, tzinfo=UTC)),
        ("20260302T120000Z", None),
        ("2026-W10-1T12:00:00Z", None),
        ("2026-03-02T12:00Z", None),
        ("2026-03-02T23:59:60Z", None),
    ],
)
def test_rfc3339_reading(text: str, expected: datetime | None) -> None:
    assert parse_datetime(text, zone_required=True) == expected


# --- impossible meter values --------------------------------------------------------------


def _mv_16(*sampled: dict[str, Any]) -> dict[str, Any]:
    return {"connectorId": 1, "meterValue": [{"timestamp": TS, "sampledValue": list(sampled)}]}


@pytest.mark.parametrize(
    "sample",
    [
        {"value": "NaN", "measurand": "Current.Import", "phase": "L1"},
        {"value": "inf", "measurand": "Current.Import"},
        {"value": "-5", "measurand": "Current.Import", "phase": "L2"},
        {"value": "16 A", "measurand": "Current.Import"},
        {"value": "-100"},  # the default measurand: Energy.Active.Import.Register
        {"value": "-0.1", "measurand": "Energy.Active.Import.Register", "unit": "kWh"},
        {"value": "-Infinity", "measurand": "Power.Active.Import"},
    ],
)
def test_v16_impossible_meter_value_refuses_the_message(sample: dict[str, Any]) -> None:
    s = session(V16)
    ok = {"value": "7", "measurand": "Current.Import", "phase": "L3"}
    frame = json.dumps([2, "v", "MeterValues", _mv_16(ok, sample)])
    assert refused(s, frame)[:3] == [4, "v", "PropertyConstraintViolation"]


def test_values_we_do_not_read_as_numbers_are_left_alone() -> None:
    out = session(V16).receive(
        json.dumps(
            [
                2,
                "w",
                "MeterValues",
                _mv_16(
                    {"value": "0A1B", "format": "SignedData"},
                    {"value": "n/a", "measurand": "Voltage"},
                    {"value": "-2", "measurand": "Power.Active.Import"},  # a meter's noise
                ),
            ]
        )
    )
    assert isinstance(out, Handled), out


def test_v16_negative_registers_and_samples_do_not_lose_the_start_or_stop(
    caplog: pytest.LogCaptureFixture,
) -> None:
    s = session(V16)
    start = {"connectorId": 1, "idTag": "T", "meterStart": -5, "timestamp": TS}
    started = s.receive(json.dumps([2, "a", "StartTransaction", start]))
    assert isinstance(started, Handled) and started.commit is not None, started
    assert isinstance(started.events[0], SessionStarted)
    assert started.events[0].meter_start_wh is None
    started.commit()
    tx = json.loads(started.reply)[2]["transactionId"]
    data = [
        {
            "timestamp": TS,
            "sampledValue": [
                {"value": "-3", "measurand": "Current.Import", "phase": "L1"},
                {"value": "NaN", "measurand": "Current.Import", "phase": "L2"},
                {"value": "6", "measurand": "Current.Import", "phase": "L3"},
            ],
        }
    ]
    stop = {"transactionId": tx, "meterStop": -1, "timestamp": TS, "transactionData": data}
    with caplog.at_level("WARNING"):
        stopped = s.receive(json.dumps([2, "b", "StopTransaction", stop]))
    assert isinstance(stopped, Handled) and stopped.commit is not None, stopped
    reading, ended = stopped.events
    assert isinstance(reading, MeterReading) and reading.current_a == {"L3": 6.0}
    assert isinstance(ended, SessionEnded) and ended.meter_stop_wh is None
    stopped.commit()
    assert s.state.tx_connector == {}
    assert "'-3'" in caplog.text and "'NaN'" in caplog.text


def test_v201_impossible_sample_refuses_an_update_but_not_a_start_or_end() -> None:
    s = session(V201)
    event: dict[str, Any] = {
        "eventType": "Started",
        "timestamp": TS,
        "triggerReason": "CablePluggedIn",
        "seqNo": 0,
        "transactionInfo": {"transactionId": "A"},
        "evse": {"id": 1},
        "meterValue": [
            {
                "timestamp": TS,
                "sampledValue": [
                    {"value": -1000, "measurand": "Energy.Active.Import.Register"},
                    {"value": -3, "measurand": "Current.Import", "phase": "L1"},
                ],
            }
        ],
    }
    started = s.receive(json.dumps([2, "s", "TransactionEvent", event]))
    assert isinstance(started, Handled) and started.commit is not None, started
    assert isinstance(started.events[0], SessionStarted)
    assert started.events[0].meter_start_wh is None
    assert not any(isinstance(e, MeterReading) for e in started.events)
    started.commit()
    updated = {**event, "eventType": "Updated", "seqNo": 1, "triggerReason": "MeterValuePeriodic"}
    frame = json.dumps([2, "e", "TransactionEvent", updated])
    assert refused(s, frame)[:3] == [4, "e", "PropertyConstraintViolation"]
    ended = {**event, "eventType": "Ended", "seqNo": 2, "triggerReason": "EVDeparted"}
    out = s.receive(json.dumps([2, "f", "TransactionEvent", ended]))
    assert isinstance(out, Handled) and out.commit is not None, out
    [end] = [e for e in out.events if isinstance(e, SessionEnded)]
    assert end.meter_stop_wh is None
    out.commit()
    assert s.state.tx_connector == {}


def test_v201_refused_update_leaves_the_register_baseline() -> None:
    s = session(V201)
    event: dict[str, Any] = {
        "eventType": "Started",
        "timestamp": TS,
        "triggerReason": "CablePluggedIn",
        "seqNo": 0,
        "transactionInfo": {"transactionId": "A"},
        "evse": {"id": 1},
    }
    started = s.receive(json.dumps([2, "s", "TransactionEvent", event]))
    assert isinstance(started, Handled) and started.commit is not None
    started.commit()
    event = {
        **event,
        "eventType": "Updated",
        "seqNo": 1,
        "triggerReason": "MeterValuePeriodic",
        "meterValue": [
            {
                "timestamp": TS,
                "sampledValue": [
                    {"value": 1000, "measurand": "Energy.Active.Import.Register"},
                    {"value": -3, "measurand": "Current.Import", "phase": "L1"},
                ],
            }
        ],
    }
    frame = json.dumps([2, "e", "TransactionEvent", event])
    assert refused(s, frame)[:3] == [4, "e", "PropertyConstraintViolation"]
    # the register baseline was not moved by the refused message
    event["meterValue"][0]["sampledValue"] = [
        {"value": 500, "measurand": "Energy.Active.Import.Register"}
    ]
    mv = {"evseId": 1, "meterValue": event["meterValue"]}
    out = s.receive(json.dumps([2, "g", "MeterValues", mv]))
    assert isinstance(out, Handled)
    [reading] = out.events
    assert isinstance(reading, MeterReading) and reading.energy_wh == 500


async def test_zoneless_time_over_the_wire_v201_changes_nothing() -> None:
    async with running() as (cs, rec), station(cs, "CP1", V201) as st:
        await st.boot()
        status = DATE_FIELDS_201[0][1](ZONELESS)
        await st.send_raw(json.dumps([2, "z", "StatusNotification", status]))
        error = await asyncio.wait_for(st.raw.get(), 2)
        assert error[:3] == [4, "z", "FormatViolation"]
        await st.call("Heartbeat", {})
        assert rec.of(ConnectorStatusChanged) == []
