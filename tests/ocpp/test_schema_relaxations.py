"""The bundled 1.6 schemas are relaxed where the official ones are less strict,
and only there."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from ocpp_adapter.events import MeterReading
from ocpp_adapter.rpc import Call, Fault, OcppVersion, RpcError, load_schema, validate_request
from ocpp_adapter.schema_relaxations import RELAXATIONS, relax
from ocpp_adapter.station import Handled, SessionSettings, StationSession, TransactionIds

V16 = OcppVersion.V16
TS = "2026-03-02T11:00:00Z"


def _session() -> StationSession:
    now = datetime(2026, 3, 2, 12, tzinfo=UTC)
    return StationSession(
        "CP1", V16, SessionSettings(validate_replies=True), TransactionIds(1), lambda: now
    )


def test_v16_meter_values_with_no_meter_value_is_acknowledged() -> None:
    out = _session().receive(
        json.dumps([2, "a", "MeterValues", {"connectorId": 1, "meterValue": []}])
    )
    assert isinstance(out, Handled), out
    assert json.loads(out.reply) == [3, "a", {}]
    assert out.events == []


def test_v16_meter_value_with_no_sampled_value_is_acknowledged() -> None:
    payload: dict[str, Any] = {
        "connectorId": 1,
        "meterValue": [
            {"timestamp": TS, "sampledValue": []},
            {"timestamp": TS, "sampledValue": [{"value": "6", "measurand": "Current.Import"}]},
        ],
    }
    out = _session().receive(json.dumps([2, "b", "MeterValues", payload]))
    assert isinstance(out, Handled), out
    [reading] = out.events
    assert isinstance(reading, MeterReading) and reading.current_a == {"total": 6.0}


def test_what_stays_strict_stays_strict() -> None:
    with pytest.raises(RpcError) as err:
        validate_request(V16, Call("c", "MeterValues", {"connectorId": 1}))
    assert err.value.fault is Fault.OCCURRENCE


@pytest.mark.parametrize(
    "row", RELAXATIONS, ids=lambda r: f"{r.action}.{'.'.join(r.path)}.{r.keyword}"
)
def test_each_relaxation_removes_a_keyword_the_bundled_schema_has(row: Any) -> None:
    published = load_schema(row.version, row.action, row.response)
    relaxed = relax(row.version, row.action, row.response, published)
    assert relaxed != published
    assert load_schema(row.version, row.action, row.response) == published  # not mutated
    assert row.why


def test_a_row_that_no_longer_matches_is_an_error() -> None:
    schema = load_schema(V16, "MeterValues", False)
    del schema["properties"]["meterValue"]["minItems"]
    with pytest.raises(LookupError):
        relax(V16, "MeterValues", False, schema)
