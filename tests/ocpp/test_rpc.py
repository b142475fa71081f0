"""OCPP-J framing: every CALLERROR case, spelled as each version spells it."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ocpp_adapter.rpc import (
    Call,
    CallErrorFrame,
    CallResult,
    Fault,
    OcppVersion,
    RpcError,
    encode_call,
    encode_error,
    error_code,
    known_actions,
    parse_frame,
    validate_request,
    validate_response,
)

V16, V201 = OcppVersion.V16, OcppVersion.V201


def refused(text: str) -> RpcError:
    with pytest.raises(RpcError) as err:
        parse_frame(text)
    return err.value


@pytest.mark.parametrize(
    ("text", "fault", "unique_id"),
    [
        ("{nope", Fault.RPC_FRAMEWORK, "-1"),
        ('{"a": 1}', Fault.RPC_FRAMEWORK, "-1"),
        ("[2]", Fault.RPC_FRAMEWORK, "-1"),
        ('[2, 17, "Heartbeat", {}]', Fault.RPC_FRAMEWORK, "-1"),
        ('[2, "' + "x" * 37 + '", "Heartbeat", {}]', Fault.RPC_FRAMEWORK, "-1"),
        ('["2", "a", "Heartbeat", {}]', Fault.MESSAGE_TYPE, "a"),
        ('[9, "a", {}]', Fault.MESSAGE_TYPE, "a"),
        ('[2, "a", "Heartbeat", []]', Fault.FORMAT, "a"),
        ('[2, "a", "Heartbeat"]', Fault.FORMAT, "a"),
        ('[2, "a", 5, {}]', Fault.FORMAT, "a"),
        ('[3, "a", "x"]', Fault.FORMAT, "a"),
    ],
)
def test_malformed_frames(text: str, fault: Fault, unique_id: str) -> None:
    e = refused(text)
    assert (e.fault, e.unique_id) == (fault, unique_id)


@pytest.mark.parametrize(
    ("fault", "v16", "v201"),
    [
        (Fault.FORMAT, "FormationViolation", "FormatViolation"),
        (Fault.RPC_FRAMEWORK, "FormationViolation", "RpcFrameworkError"),
        (Fault.MESSAGE_TYPE, "FormationViolation", "MessageTypeNotSupported"),
        (Fault.OCCURRENCE, "OccurenceConstraintViolation", "OccurrenceConstraintViolation"),
        (Fault.NOT_IMPLEMENTED, "NotImplemented", "NotImplemented"),
        (Fault.NOT_SUPPORTED, "NotSupported", "NotSupported"),
        (Fault.TYPE, "TypeConstraintViolation", "TypeConstraintViolation"),
        (Fault.PROPERTY, "PropertyConstraintViolation", "PropertyConstraintViolation"),
        (Fault.INTERNAL, "InternalError", "InternalError"),
    ],
)
def test_codes_per_version(fault: Fault, v16: str, v201: str) -> None:
    assert error_code(fault, V16) == v16
    assert error_code(fault, V201) == v201


def test_error_frame_shape() -> None:
    e = refused("{nope")
    assert json.loads(e.frame(V201)) == [4, "-1", "RpcFrameworkError", str(e), {}]
    assert json.loads(e.frame(V16))[2] == "FormationViolation"


def test_parse_good_frames() -> None:
    assert parse_frame('[2, "1", "Heartbeat", {}]') == Call("1", "Heartbeat", {})
    assert parse_frame('[3, "1", {"a": 1}]') == CallResult("1", {"a": 1})
    assert parse_frame('[4, "1", "GenericError", "x", {"k": 2}]') == CallErrorFrame(
        "1", "GenericError", "x", {"k": 2}
    )
    assert parse_frame(encode_call("9", "Heartbeat", {})) == Call("9", "Heartbeat", {})
    assert json.loads(encode_error("1", "InternalError", "y" * 500))[3] == "y" * 255


def schema_fault(version: OcppVersion, action: str, payload: dict[str, object]) -> Fault:
    with pytest.raises(RpcError) as err:
        validate_request(version, Call("u1", action, payload))
    assert err.value.unique_id == "u1"
    return err.value.fault


STATUS_16 = {"connectorId": 1, "errorCode": "NoError", "status": "Available"}


@pytest.mark.parametrize(
    ("version", "action", "payload", "fault"),
    [
        (V16, "StatusNotification", {"connectorId": 1}, Fault.OCCURRENCE),
        (V16, "StatusNotification", {**STATUS_16, "connectorId": "1"}, Fault.TYPE),
        (V16, "StatusNotification", {**STATUS_16, "status": "Sleeping"}, Fault.PROPERTY),
        (V16, "StatusNotification", {**STATUS_16, "info": "x" * 51}, Fault.PROPERTY),
        (V16, "StatusNotification", {**STATUS_16, "colour": "red"}, Fault.FORMAT),
        (V16, "MeterValues", {"connectorId": 1}, Fault.OCCURRENCE),
        (V16, "NoSuchThing", {}, Fault.NOT_IMPLEMENTED),
        (V201, "NoSuchThing", {}, Fault.NOT_IMPLEMENTED),
        (V201, "Heartbeat", {"x": 1}, Fault.FORMAT),
        (V201, "TransactionEvent", {}, Fault.OCCURRENCE),
        (
            V201,
            "StatusNotification",
            {
                "timestamp": "2026-01-01T00:00:00Z",
                "connectorStatus": "Available",
                "evseId": "1",
                "connectorId": 1,
            },
            Fault.TYPE,
        ),
    ],
)
def test_schema_faults(
    version: OcppVersion, action: str, payload: dict[str, object], fault: Fault
) -> None:
    assert schema_fault(version, action, payload) is fault


def test_lenient_on_format_and_property_named_format() -> None:
    # naive timestamp and a sampled value with a "format" property both pass
    validate_request(
        V16,
        Call(
            "1",
            "MeterValues",
            {
                "connectorId": 1,
                "meterValue": [
                    {
                        "timestamp": "2026-01-01T00:00:00",
                        "sampledValue": [{"value": "1", "format": "Raw"}],
                    }
                ],
            },
        ),
    )


def test_response_validation() -> None:
    validate_response(V16, "SetChargingProfile", {"status": "Accepted"})
    with pytest.raises(RpcError) as err:
        validate_response(V16, "SetChargingProfile", {"status": "Fine"})
    assert err.value.fault is Fault.PROPERTY


def test_known_actions() -> None:
    assert {"BootNotification", "StartTransaction", "SetChargingProfile"} <= known_actions(V16)
    assert "TransactionEvent" not in known_actions(V16)
    assert {"TransactionEvent", "NotifyEVChargingNeeds"} <= known_actions(V201)
    assert not any(a.endswith(("Request", "Response")) for a in known_actions(V201))


@pytest.mark.parametrize(
    ("action", "payload"),
    [
        ("StatusNotification", {"connectorId": 1}),
        ("StatusNotification", {**STATUS_16, "connectorId": "1"}),
        ("StatusNotification", {**STATUS_16, "status": "Sleeping"}),
        ("StatusNotification", {**STATUS_16, "colour": "red"}),
    ],
)
def test_jsonschema_fallback_classifies_alike(action: str, payload: dict[str, object]) -> None:
    from ocpp_adapter import rpc

    fast = schema_fault(V16, action, payload)
    slow = rpc._compile_jsonschema(rpc._lenient(rpc.load_schema(V16, action, False)), V16)
    with pytest.raises(rpc._Invalid) as err:
        slow(payload)
    assert rpc._KEYWORD_FAULT.get(err.value.keyword, Fault.PROPERTY) is fast


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=20,
)


@settings(deadline=None)  # no timed assertion on a shared machine
@given(st.one_of(st.text(max_size=60), json_values.map(json.dumps)))
def test_any_input_is_a_message_or_an_rpc_error(text: str) -> None:
    try:
        parse_frame(text)
    except RpcError as e:
        assert json.loads(e.frame(V201))[0] == 4


@settings(deadline=None)  # the first call of an action compiles its validator
@given(
    st.sampled_from([(v, a) for v in (V16, V201) for a in sorted(known_actions(v))]),
    st.dictionaries(st.text(max_size=12), json_values, max_size=4),
)
def test_any_call_is_answered_without_crashing(
    target: tuple[OcppVersion, str], payload: dict[str, object]
) -> None:
    version, action = target
    from datetime import UTC, datetime

    from ocpp_adapter.station import (
        Handled,
        Refused,
        SessionSettings,
        StationSession,
        TransactionIds,
    )

    session = StationSession(
        "CP1", version, SessionSettings(), TransactionIds(1), lambda: datetime.now(UTC)
    )
    out = session.receive(json.dumps([2, "id", action, payload]))
    assert isinstance(out, Handled | Refused)
