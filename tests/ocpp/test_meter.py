"""Meter values → MeterReading: units, strings, phases, registers that only grow."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ocpp_adapter.meter import MeterParser, energy_register_wh, parse_timestamp

NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
TS = "2026-03-02T11:59:50Z"


def mv(*sampled: dict[str, Any], ts: str = TS) -> dict[str, Any]:
    return {"timestamp": ts, "sampledValue": list(sampled)}


def one(parser: MeterParser, *sampled: dict[str, Any]) -> Any:
    [reading] = parser.parse(1, [mv(*sampled)], "7", NOW)
    return reading


def test_per_phase_current_power_energy_soc() -> None:
    r = one(
        MeterParser("CP1"),
        {"value": "16.2", "measurand": "Current.Import", "phase": "L1", "unit": "A"},
        {"value": "15.8", "measurand": "Current.Import", "phase": "L2-N", "unit": "A"},
        {"value": "3.7", "measurand": "Power.Active.Import", "phase": "L1", "unit": "kW"},
        {"value": "11", "measurand": "Power.Active.Import", "unit": "kW"},
        {"value": "12.5", "measurand": "Energy.Active.Import.Register", "unit": "kWh"},
        {"value": "55", "measurand": "SoC", "location": "EV", "unit": "Percent"},
        {"value": "32", "measurand": "Current.Offered", "unit": "A"},
    )
    assert r.connector_id == "CP1/1" and r.transaction_id == "7"
    assert r.at == datetime(2026, 3, 2, 11, 59, 50, tzinfo=UTC)
    assert r.current_a == {"L1": 16.2, "L2": 15.8}
    assert r.power_w == {"L1": 3700.0}
    assert r.total_power_w == 11000.0
    assert r.energy_wh == 12500.0
    assert r.soc_pct == 55.0
    assert r.current_offered_a == 32.0
    assert r.context == "Sample.Periodic"


def test_defaults_are_energy_register_in_wh() -> None:
    r = one(MeterParser("CP1"), {"value": "1000"})
    assert r.energy_wh == 1000.0


def test_missing_phase_is_total_and_line_to_line_ignored() -> None:
    r = one(
        MeterParser("CP1"),
        {"value": "10", "measurand": "Current.Import"},
        {"value": "400", "measurand": "Power.Active.Import", "phase": "L1-L2"},
    )
    assert r.current_a == {"total": 10.0}
    assert r.power_w == {} and r.total_power_w is None


def test_v201_numbers_units_and_multiplier() -> None:
    r = one(
        MeterParser("CS"),
        {"value": 7.4, "measurand": "Power.Active.Import", "unitOfMeasure": {"unit": "kW"}},
        {"value": 12, "unitOfMeasure": {"unit": "Wh", "multiplier": 3}},
        {"value": 16, "measurand": "Current.Import", "phase": "L3"},
    )
    assert r.total_power_w == 7400.0 and r.energy_wh == 12000.0 and r.current_a == {"L3": 16.0}


def test_not_a_number_is_skipped_not_zero(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        r = one(
            MeterParser("CP1"),
            {"value": "n/a", "measurand": "Current.Import", "phase": "L1"},
            {"value": "NaN", "measurand": "Current.Import", "phase": "L2"},
            {"value": " 8.5 ", "measurand": "Current.Import", "phase": "L3"},
        )
    assert r.current_a == {"L3": 8.5}
    assert "not a number" in caplog.text


def test_decreasing_register_dropped_and_logged(caplog: pytest.LogCaptureFixture) -> None:
    p = MeterParser("CP1")
    assert one(p, {"value": "5000"}).energy_wh == 5000.0
    with caplog.at_level(logging.WARNING):
        r = one(p, {"value": "4000"}, {"value": "9", "measurand": "Current.Import", "phase": "L1"})
    assert r.energy_wh is None and r.current_a == {"L1": 9.0}
    assert "went down" in caplog.text
    assert one(p, {"value": "5000"}).energy_wh == 5000.0  # equal is fine
    p.reset_register("CP1/1", 0.0)  # a new transaction restarts the baseline
    assert one(p, {"value": "10"}).energy_wh == 10.0


def test_one_reading_per_timestamp_group() -> None:
    p = MeterParser("CP1")
    later = "2026-03-02T12:00:00+00:00"
    readings = p.parse(
        2,
        [
            mv({"value": "1", "measurand": "Current.Import", "phase": "L1"}),
            mv({"value": "2", "measurand": "Current.Import", "phase": "L2"}),
            mv({"value": "100"}, ts=later),
            mv({"value": "x"}, ts="2026-03-02T12:00:10Z"),  # nothing usable: no reading
        ],
        None,
        NOW,
    )
    assert [r.current_a for r in readings] == [{"L1": 1.0, "L2": 2.0}, {}]
    assert readings[1].energy_wh == 100.0
    assert readings[0].connector_id == "CP1/2"


def test_other_locations_and_units_ignored() -> None:
    r = one(
        MeterParser("CP1"),
        {"value": "3", "measurand": "Current.Import", "location": "Cable", "phase": "L1"},
        {"value": "4", "measurand": "Current.Import", "location": "Inlet", "phase": "L2"},
        {"value": "7", "measurand": "Energy.Active.Import.Register", "unit": "varh"},
        {"value": "50", "measurand": "SoC"},
    )
    assert r.current_a == {"L2": 4.0} and r.energy_wh is None and r.soc_pct == 50.0


def test_timestamps() -> None:
    assert parse_timestamp("2026-03-02T12:00:00", NOW) == NOW  # naive → UTC
    assert parse_timestamp("2026-03-02T13:00:00+01:00", NOW) == NOW
    assert parse_timestamp("yesterday", NOW) is NOW
    assert parse_timestamp(None, NOW) is NOW


def test_energy_register_helper() -> None:
    assert energy_register_wh([mv({"value": 2.5, "unitOfMeasure": {"unit": "kWh"}})]) == 2500.0
    assert energy_register_wh([mv({"value": "1", "measurand": "SoC"})]) is None


@settings(deadline=None)  # no timed assertion on a shared machine
@given(st.floats(min_value=0, max_value=1e6, allow_nan=False), st.sampled_from(["", "k"]))
def test_string_values_exact(value: float, prefix: str) -> None:
    r = one(MeterParser("CP1"), {"value": repr(value), "unit": f"{prefix}Wh"})
    assert r.energy_wh == value * (1000.0 if prefix else 1.0)
