"""OCPP-J framing without I/O: text frames in and out, payloads checked against schemas.

Errors::

    AdapterError                  root of the adapter's own exceptions
    ├── RpcError                  a frame we must answer with a CALLERROR; knows its
    │                             `Fault`, which `error_code` turns into the wire name
    │                             for the connection's OCPP version
    └── ListenError               (also an OSError) the OCPP port cannot be listened
                                  on; in `ocpp_adapter.central_system`

The schemas are the ones bundled with the ``ocpp`` package. Validators are
compiled once per (version, action, direction) and cached. ``fastjsonschema``
is used when installed (about 20× faster than ``jsonschema`` on MeterValues);
``jsonschema`` otherwise. ``date-time`` is checked by the version's own rule
(`ocpp_adapter.datetimes`: 2.0.1 needs the offset, 1.6 reads a zone-less time as
UTC); other formats (``uri``) are not. ``multipleOf`` is not checked (binary
floats make ``21.4`` fail it); outbound schedules are rounded to one decimal by
`ocpp_adapter.profiles` instead. Where the bundled 1.6 schemas are stricter
than the official ones, `ocpp_adapter.schema_relaxations` lists and undoes it.

Before a frame is parsed its nesting is bounded (`MAX_DEPTH`), and the JSON
literals ``NaN``/``Infinity`` (which Python's parser takes, JSON does not) make
it malformed.
"""

from __future__ import annotations

import itertools
import json
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from functools import cache
from importlib import resources
from typing import Any

from ocpp_adapter.datetimes import is_datetime_16, is_datetime_201
from ocpp_adapter.schema_relaxations import relax
from ocpp_adapter.versions import OcppVersion

log = logging.getLogger(__name__)


class AdapterError(Exception):
    """Root of the OCPP adapter's exceptions."""


class Fault(Enum):
    """Why a frame is refused, independent of the version's spelling."""

    FORMAT = "format"
    """Payload or frame structure syntactically wrong."""
    RPC_FRAMEWORK = "rpc_framework"
    """Not a valid RPC message at all (message id unreadable, not JSON, not an array)."""
    MESSAGE_TYPE = "message_type"
    """Message type number we do not know."""
    NOT_IMPLEMENTED = "not_implemented"
    """Action unknown to this OCPP version."""
    NOT_SUPPORTED = "not_supported"
    """Action known to the version but not accepted by a central system."""
    PROPERTY = "property"
    DATE_TIME = "date_time"
    """A dateTime field that holds no time the version accepts."""
    OCCURRENCE = "occurrence"
    TYPE = "type"
    INTERNAL = "internal"
    PROTOCOL = "protocol"
    SECURITY = "security"
    GENERIC = "generic"


_CODES_16 = {
    Fault.FORMAT: "FormationViolation",
    # OCPP-J 1.6 has no RpcFrameworkError / MessageTypeNotSupported: a frame that
    # is not a well-formed message is a formation violation.
    Fault.RPC_FRAMEWORK: "FormationViolation",
    Fault.MESSAGE_TYPE: "FormationViolation",
    Fault.NOT_IMPLEMENTED: "NotImplemented",
    Fault.NOT_SUPPORTED: "NotSupported",
    Fault.PROPERTY: "PropertyConstraintViolation",
    # 1.6: "payload is syntactically correct but at least one field contains an
    # invalid value" is PropertyConstraintViolation; FormationViolation is for
    # payloads that do not parse or break the PDU's structure, and the type
    # (a string) is right.
    Fault.DATE_TIME: "PropertyConstraintViolation",
    Fault.OCCURRENCE: "OccurenceConstraintViolation",  # sic, as the 1.6 spec spells it
    Fault.TYPE: "TypeConstraintViolation",
    Fault.INTERNAL: "InternalError",
    Fault.PROTOCOL: "ProtocolError",
    Fault.SECURITY: "SecurityError",
    Fault.GENERIC: "GenericError",
}
_CODES_201 = {
    **_CODES_16,
    Fault.FORMAT: "FormatViolation",
    Fault.DATE_TIME: "FormatViolation",
    Fault.RPC_FRAMEWORK: "RpcFrameworkError",
    Fault.MESSAGE_TYPE: "MessageTypeNotSupported",
    Fault.OCCURRENCE: "OccurrenceConstraintViolation",
}


def error_code(fault: Fault, version: OcppVersion) -> str:
    return (_CODES_16 if version is OcppVersion.V16 else _CODES_201)[fault]


UNKNOWN_ID = "-1"
"""Message id of a CALLERROR answering a frame whose id could not be read."""


class RpcError(AdapterError):
    """A received frame that must be answered with a CALLERROR."""

    def __init__(self, fault: Fault, description: str, unique_id: str = UNKNOWN_ID) -> None:
        super().__init__(description)
        self.fault = fault
        self.description = description
        self.unique_id = unique_id

    def frame(self, version: OcppVersion) -> str:
        return encode_error(self.unique_id, error_code(self.fault, version), self.description)


CALL, CALLRESULT, CALLERROR = 2, 3, 4
CALLRESULTERROR, SEND = 5, 6
"""OCPP-J 2.1 only: the answer to a CALLRESULT that could not be taken, and a
one-way message. Neither is ever answered."""


@dataclass(slots=True)
class Call:
    unique_id: str
    action: str
    payload: dict[str, Any]


@dataclass(slots=True)
class CallResult:
    unique_id: str
    payload: dict[str, Any]


@dataclass(slots=True)
class CallErrorFrame:
    unique_id: str
    code: str
    description: str
    details: dict[str, Any]
    after_result: bool = False
    """A 2.1 CALLRESULTERROR: the peer could not take our CALLRESULT."""


@dataclass(slots=True)
class Send:
    """A 2.1 SEND: a one-way message (e.g. NotifyPeriodicEventStream), never answered."""

    unique_id: str
    action: str
    payload: dict[str, Any]


Message = Call | CallResult | CallErrorFrame | Send

_MAX_ID_LEN = 36

MAX_DEPTH = 64
"""Deepest nesting of arrays and objects a frame may have. The deepest OCPP
message (2.0.1 ReportChargingProfiles) needs 14 levels with the frame's own
array; the cap leaves room for vendor data and stays far below what would
exhaust the parser's or the validators' recursion."""

# Escapes first (so no quote is left inside a string), then only brackets and
# quotes kept, then what lies between quotes dropped: linear, mostly in C.
_ESCAPE = re.compile(r"\\.", re.DOTALL)
_NOT_STRUCTURE = bytes(c for c in range(256) if c not in b'[]{}"')
_STEP = {ord("["): 1, ord("{"): 1, ord("]"): -1, ord("}"): -1}
# Enough of a frame's head to answer it with its own message id.
_HEAD = re.compile(r'\s*\[\s*[234]\s*,\s*"([^"\\]{1,36})"')


def _nesting(text: str) -> int:
    """Deepest bracket nesting outside strings (0 when it cannot exceed the cap)."""
    if text.count("[") + text.count("{") <= MAX_DEPTH:
        return 0  # cannot be deeper: skip the scan for the usual frame
    if "\\" in text:
        text = _ESCAPE.sub("", text)
    # UTF-8 keeps every non-ASCII character clear of these ASCII bytes.
    kept = text.encode("utf-8", "surrogatepass").translate(None, _NOT_STRUCTURE)
    brackets = b"".join(kept.split(b'"')[0::2])
    return max(itertools.accumulate(map(_STEP.__getitem__, brackets)), default=0)


class _NotJsonNumber(ValueError):
    pass


def _no_constant(name: str) -> Any:
    raise _NotJsonNumber(f"{name} is not a JSON value")


def _head_id(text: str) -> str:
    m = _HEAD.match(text)
    return m.group(1) if m else UNKNOWN_ID


def parse_frame(text: str | bytes, *, v21: bool = False) -> Message:
    """One OCPP-J frame → message, or `RpcError` saying what is wrong with it.

    ``v21``: also take 2.1's CALLRESULTERROR and SEND (other versions do not
    know those message types). Payloads are not checked against schemas here:
    `validate_request`, `validate_response` and `validate_send` do that once the
    action is known.
    """
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError:
            raise RpcError(Fault.RPC_FRAMEWORK, "frame is not valid JSON") from None
    if _nesting(text) > MAX_DEPTH:
        raise RpcError(Fault.FORMAT, f"frame nested deeper than {MAX_DEPTH}", _head_id(text))
    try:
        data = json.loads(text, parse_constant=_no_constant)
    except RecursionError:  # pragma: no cover - the depth check comes first
        raise RpcError(Fault.FORMAT, "frame nested too deep", _head_id(text)) from None
    except _NotJsonNumber as e:
        # The envelope may be fine: the payload holds a number JSON cannot express.
        raise RpcError(Fault.FORMAT, str(e), _head_id(text)) from None
    except ValueError:
        raise RpcError(Fault.RPC_FRAMEWORK, "frame is not valid JSON") from None
    if not isinstance(data, list) or len(data) < 3:
        raise RpcError(Fault.RPC_FRAMEWORK, "frame is not a JSON array of at least 3 elements")
    type_id, unique_id = data[0], data[1]
    if not isinstance(unique_id, str) or not unique_id or len(unique_id) > _MAX_ID_LEN:
        raise RpcError(Fault.RPC_FRAMEWORK, "message id is not a string of 1-36 characters")
    if type(type_id) is not int:
        raise RpcError(Fault.MESSAGE_TYPE, "message type is not an integer", unique_id)
    if type_id == CALL:
        if len(data) != 4 or not isinstance(data[2], str):
            raise RpcError(Fault.FORMAT, "CALL must be [2, id, action, payload]", unique_id)
        if not isinstance(data[3], dict):
            raise RpcError(Fault.FORMAT, "CALL payload is not an object", unique_id)
        return Call(unique_id, data[2], data[3])
    if type_id == CALLRESULT:
        if len(data) != 3 or not isinstance(data[2], dict):
            raise RpcError(Fault.FORMAT, "CALLRESULT must be [3, id, {payload}]", unique_id)
        return CallResult(unique_id, data[2])
    if type_id == CALLERROR or (v21 and type_id == CALLRESULTERROR):
        if len(data) < 4 or not isinstance(data[2], str):
            raise RpcError(Fault.FORMAT, "CALLERROR must be [4, id, code, description, {}]")
        description = data[3] if isinstance(data[3], str) else ""
        details = data[4] if len(data) > 4 and isinstance(data[4], dict) else {}
        return CallErrorFrame(unique_id, data[2], description, details, type_id == CALLRESULTERROR)
    if v21 and type_id == SEND:
        if len(data) != 4 or not isinstance(data[2], str) or not isinstance(data[3], dict):
            raise RpcError(Fault.FORMAT, "SEND must be [6, id, action, {payload}]", unique_id)
        return Send(unique_id, data[2], data[3])
    raise RpcError(Fault.MESSAGE_TYPE, f"message type {type_id} is not supported", unique_id)


def _dumps(obj: object) -> str:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False)


def encode_call(unique_id: str, action: str, payload: dict[str, Any]) -> str:
    return _dumps([CALL, unique_id, action, payload])


def encode_result(unique_id: str, payload: dict[str, Any]) -> str:
    return _dumps([CALLRESULT, unique_id, payload])


def encode_error(
    unique_id: str, code: str, description: str = "", details: dict[str, Any] | None = None
) -> str:
    return _dumps([CALLERROR, unique_id, code, description[:255], details or {}])


# --- schemas -----------------------------------------------------------------------------------

_PACKAGE_DIRS = {OcppVersion.V16: "v16", OcppVersion.V201: "v201", OcppVersion.V21: "v21"}


def _schema_file(version: OcppVersion, action: str, response: bool) -> str:
    if version is OcppVersion.V16 or action in send_actions(version):
        return f"{action}Response.json" if response else f"{action}.json"
    return f"{action}Response.json" if response else f"{action}Request.json"


@cache
def send_actions(version: OcppVersion) -> frozenset[str]:
    """2.1's one-way messages: schemas named without Request/Response."""
    if version is not OcppVersion.V21:
        return frozenset()
    folder = resources.files("ocpp") / _PACKAGE_DIRS[version] / "schemas"
    names = {p.name.removesuffix(".json") for p in folder.iterdir() if p.name.endswith(".json")}
    return frozenset(n for n in names if not n.endswith(("Request", "Response")))


@cache
def known_actions(version: OcppVersion) -> frozenset[str]:
    """Every action the version defines (from the bundled request schemas)."""
    folder = resources.files("ocpp") / _PACKAGE_DIRS[version] / "schemas"
    names = {p.name.removesuffix(".json") for p in folder.iterdir() if p.name.endswith(".json")}
    if version is OcppVersion.V16:
        return frozenset(n for n in names if not n.endswith("Response"))
    return frozenset(n.removesuffix("Request") for n in names if n.endswith("Request"))


def load_schema(version: OcppVersion, action: str, response: bool) -> dict[str, Any]:
    """The bundled schema as published (tests use it to check exact outbound payloads)."""
    path = (
        resources.files("ocpp")
        / _PACKAGE_DIRS[version]
        / "schemas"
        / _schema_file(version, action, response)
    )
    schema: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return schema


def _lenient(node: Any) -> Any:
    """The schema without ``multipleOf`` and formats other than ``date-time`` (module doc)."""
    if isinstance(node, dict):
        # Only keywords: a property may itself be called "format" (1.6 sampledValue).
        return {
            k: _lenient(v)
            for k, v in node.items()
            if not (k == "multipleOf" and isinstance(v, int | float))
            and not (k == "format" and isinstance(v, str) and v != "date-time")
        }
    if isinstance(node, list):
        return [_lenient(v) for v in node]
    return node


# The schema keyword a payload broke → the fault it is reported as.
_KEYWORD_FAULT = {
    "type": Fault.TYPE,
    "required": Fault.OCCURRENCE,
    "minItems": Fault.OCCURRENCE,
    "maxItems": Fault.OCCURRENCE,
    "additionalProperties": Fault.FORMAT,
    "format": Fault.DATE_TIME,  # the only format checked
}

_DATE_TIME = {
    OcppVersion.V16: is_datetime_16,
    OcppVersion.V201: is_datetime_201,
    OcppVersion.V21: is_datetime_201,  # 2.1 keeps 2.0.1's rule (offset required)
}


class _Invalid(Exception):
    def __init__(self, keyword: str, message: str) -> None:
        super().__init__(message)
        self.keyword = keyword


Validator = Callable[[dict[str, Any]], None]


def _compile(schema: dict[str, Any], version: OcppVersion) -> Validator:
    try:
        import fastjsonschema
    except ImportError:  # pragma: no cover - depends on the environment
        return _compile_jsonschema(schema, version)
    check = fastjsonschema.compile(schema, formats={"date-time": _DATE_TIME[version]})

    def validate(payload: dict[str, Any]) -> None:
        try:
            check(payload)
        except fastjsonschema.JsonSchemaValueException as e:
            raise _Invalid(str(e.rule), e.message) from None

    return validate


def _compile_jsonschema(schema: dict[str, Any], version: OcppVersion) -> Validator:
    import jsonschema

    formats = jsonschema.FormatChecker(formats=())
    formats.checks("date-time")(_DATE_TIME[version])
    validator = jsonschema.validators.validator_for(schema)(schema, format_checker=formats)

    def validate(payload: dict[str, Any]) -> None:
        error = jsonschema.exceptions.best_match(validator.iter_errors(payload))
        if error is not None:
            path = ".".join(str(p) for p in error.absolute_path)
            raise _Invalid(str(error.validator), f"{path}: {error.message}")

    return validate


@cache
def _validator(version: OcppVersion, action: str, response: bool) -> Validator:
    schema = relax(version, action, response, load_schema(version, action, response))
    return _compile(_lenient(schema), version)


def _check(
    version: OcppVersion, action: str, payload: dict[str, Any], unique_id: str, response: bool
) -> None:
    try:
        _validator(version, action, response)(payload)
    except _Invalid as e:
        fault = _KEYWORD_FAULT.get(e.keyword, Fault.PROPERTY)
        raise RpcError(fault, f"{action}: {e}"[:255], unique_id) from None


def validate_request(version: OcppVersion, call: Call) -> None:
    """Raise `RpcError` if the action is unknown or the payload breaks its schema."""
    if call.action not in known_actions(version):
        raise RpcError(Fault.NOT_IMPLEMENTED, f"unknown action {call.action!r}", call.unique_id)
    _check(version, call.action, call.payload, call.unique_id, response=False)


def validate_send(version: OcppVersion, send: Send) -> None:
    """Raise `RpcError` if the SEND's action is not one or its payload breaks its schema
    (the error is logged and counted, never sent: a SEND is not answered)."""
    if send.action not in send_actions(version):
        unknown = f"unknown SEND action {send.action!r}"
        raise RpcError(Fault.NOT_IMPLEMENTED, unknown, send.unique_id)
    _check(version, send.action, send.payload, send.unique_id, response=False)


def validate_response(
    version: OcppVersion, action: str, payload: dict[str, Any], unique_id: str = UNKNOWN_ID
) -> None:
    """Raise `RpcError` if a CALLRESULT payload for ``action`` breaks its schema."""
    _check(version, action, payload, unique_id, response=True)
