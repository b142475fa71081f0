"""A station's main meter over OCPP: MeterValues on connector/EVSE 0 at location
Inlet (the grid inlet) count as the connection; values without a location are
at the station's outlets (OCPP's default location is Outlet) and do not."""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

import pytest

from gridshare.meters.hub import MeterHub
from ocpp_adapter.meter import MeterParser
from optimizer.site import LINES
from tests.meters.test_building_load import T0, meter, site

NOW = T0 + timedelta(seconds=1)


def hub() -> MeterHub:
    m = meter(source={"type": "ocpp", "station": "CP1"})
    return MeterHub(site(), (m,), clock=lambda: NOW)


def values(location: str | None, amps: float) -> list[dict[str, Any]]:
    out = []
    for line in ("L1", "L2", "L3"):
        sv: dict[str, Any] = {"measurand": "Current.Import", "phase": line, "value": str(amps)}
        if location is not None:
            sv["location"] = location
        out.append(sv)
    return out


def feed(h: MeterHub, connector: int, sampled: list[dict[str, Any]]) -> None:
    meter_values = [{"timestamp": T0.isoformat(), "sampledValue": sampled}]
    for reading in MeterParser("CP1").parse(connector, meter_values, None, NOW):
        h.observe(reading)


def test_the_inlet_counts_and_the_outlet_beside_it_does_not() -> None:
    h = hub()
    # the station reports its outlets (its chargers: 12 A) and its inlet (the grid: 40 A)
    feed(h, 0, values("Outlet", 12.0) + values("Inlet", 40.0))
    state = h.building.meters["main"]
    assert [r.current_a for r in state.readings] == [dict.fromkeys(LINES, 40.0)]
    assert state.refused == 0
    # in the other order too: the inlet is never overwritten by the outlet
    feed(h, 0, values("Inlet", 41.0) + values("Outlet", 12.0))
    assert state.readings[-1].current_a == dict.fromkeys(LINES, 41.0)


def test_values_without_a_location_are_the_outlets_and_are_refused(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="gridshare.meters")
    h = hub()
    feed(h, 0, values(None, 12.0))
    feed(h, 0, values("Outlet", 12.0))
    state = h.building.meters["main"]
    assert not state.readings  # stays silent: its worst case holds
    assert state.refused == 2
    assert state.last_refusal is not None and "location Inlet" in state.last_refusal
    assert h.building.non_ev("grid", NOW)[LINES[0]] == 40.0  # max_non_ev_a
    assert any("location Inlet" in r.getMessage() for r in caplog.records)


def test_an_inlet_on_a_charging_connector_is_not_the_main_meter() -> None:
    h = hub()
    feed(h, 1, values("Inlet", 40.0))
    assert not h.building.meters["main"].readings


def test_a_single_inlet_figure_counts_on_every_line() -> None:
    h = hub()
    feed(h, 0, [{"measurand": "Current.Import", "location": "Inlet", "value": "25"}])
    assert h.building.meters["main"].readings[-1].current_a == dict.fromkeys(LINES, 25.0)
