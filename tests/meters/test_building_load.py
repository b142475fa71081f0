"""The non-EV load of a group from its meters: checked readings, time-aligned
subtraction of the chargers, the worst case when silent, never a raise."""

from __future__ import annotations

import math
import struct
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from gridshare.meters.building import BuildingLoad, GroupHistory, hold_latest
from gridshare.meters.config import MeterConfig
from gridshare.meters.modbus import sdm630_currents, sunspec_currents
from gridshare.meters.mqtt import parse_message
from gridshare.meters.readings import ReadingRefused, checked
from gridshare.rollout.fallback import fallback_limits
from optimizer import Capacity, Site, TimeGrid
from optimizer.families import family_limit
from optimizer.site import LINES, Line

T0 = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)
L1, L2, L3 = LINES


def site() -> Site:
    return Site.model_validate(
        {
            "site": {"name": "office", "horizon_hours": 2},
            "groups": [
                {"id": "grid", "limit_a": 100},
                {"id": "panel", "parent": "grid", "limit_a": 63},
            ],
            "chargers": [
                {"id": f"CP{i}", "group": "panel", "connectors": [{"id": 1, "max_current_a": 32}]}
                for i in (1, 2)
            ],
        }
    )


def meter(**kw: Any) -> MeterConfig:
    base: dict[str, Any] = {
        "id": "main",
        "group": "grid",
        "measures": "connection",
        "stale_after_s": 10,
        "max_non_ev_a": 40,
        "source": {"type": "http"},
    }
    return MeterConfig.model_validate({**base, **kw})


def amps(l1: float, l2: float | None = None, l3: float | None = None) -> dict[str, float]:
    return {"L1": l1, "L2": l1 if l2 is None else l2, "L3": l1 if l3 is None else l3}


def test_connection_less_the_chargers_at_the_readings_moment() -> None:
    b = BuildingLoad(site(), [meter()])
    # CP1 drew 16 A until 12:00:10, then 32 A from its sample at 12:00:20
    b.observe_charger("CP1/1", T0, {L1: 16.0, L2: 16.0, L3: 16.0})
    b.observe_charger("CP1/1", T0 + timedelta(seconds=20), {L1: 32.0, L2: 32.0, L3: 32.0})
    m = b.meters["main"].config
    at = T0 + timedelta(seconds=10)  # between the samples: 24 A interpolated
    b.accept(checked(m, at, amps(50, 30, 24), at))
    # the car ramps up: over the meter's 1 s poll it drew 23.2 A at least
    assert b.non_ev("grid", at) == pytest.approx({L1: 26.8, L2: 6.8, L3: 0.8})
    # the panel has no meter of its own: nothing is known or assumed of it
    assert "panel" not in b.metered


def test_a_held_charger_sample_counts_at_most_its_limit_in_force() -> None:
    b = BuildingLoad(site(), [meter()])
    b.observe_charger("CP1/1", T0, {L1: 32.0, L2: 32.0, L3: 32.0})
    b.limit_at = lambda cid, t: 10.0  # lowered since: the car draws at most 10 A
    at = T0 + timedelta(seconds=1)
    b.accept(checked(b.meters["main"].config, at, amps(40), at))
    assert b.non_ev("grid", at)[L1] == 30.0  # not 40 − 32 = 8


def test_a_silent_meter_counts_at_its_worst_case() -> None:
    b = BuildingLoad(site(), [meter(max_non_ev_a=[40, 30, 20])])
    assert b.non_ev("grid", T0) == {L1: 40.0, L2: 30.0, L3: 20.0}  # never heard
    b.accept(checked(b.meters["main"].config, T0, amps(5), T0))
    assert b.non_ev("grid", T0 + timedelta(seconds=9))[L1] == 5.0
    later = T0 + timedelta(seconds=11)
    assert b.non_ev("grid", later) == {L1: 40.0, L2: 30.0, L3: 20.0}
    assert b.stale(later) == ["main"] and b.blind("grid", later)


def test_load_and_generation_meters_add_up_through_the_tree() -> None:
    load = meter(id="kitchen", group="panel", measures="load", max_non_ev_a=16)
    pv = meter(id="pv", group="panel", measures="generation", max_non_ev_a=0)
    b = BuildingLoad(site(), [load, pv])
    assert b.metered == ("grid", "panel")
    b.accept(checked(load, T0, amps(10), T0))
    b.accept(checked(pv, T0, amps(4, 4, 12), T0))
    assert b.non_ev("panel", T0) == {L1: 6.0, L2: 6.0, L3: -2.0}
    assert b.non_ev("grid", T0) == b.non_ev("panel", T0)
    # silent: the load at its worst, the generator at 0 (it frees nothing)
    later = T0 + timedelta(minutes=1)
    assert b.non_ev("panel", later) == {L1: 16.0, L2: 16.0, L3: 16.0}


def test_the_plan_sees_the_live_figure_now_and_the_forecast_after() -> None:
    b = BuildingLoad(site(), [meter(max_non_ev_a=30)])
    grid = TimeGrid.covering(T0, 15, 2)
    b.accept(checked(b.meters["main"].config, T0, amps(45, 10, 10), T0))
    series = b.series(grid, T0)["grid"]
    assert series[L1][0] == 45.0  # slot 0: the reading, even above the worst case
    assert np.all(series[L1][1:] == 30.0)  # held, at most max_non_ev_a
    assert np.all(series[L2][1:] == 10.0)
    cap = Capacity.static(site(), grid).with_non_ev(b.series(grid, T0))
    assert family_limit(site(), cap, ("grid", "L1"), grid.slots)[0] == 55.0
    assert family_limit(site(), cap, ("panel", "L1"), grid.slots)[0] == 63.0


def test_a_forecaster_plugs_in_through_the_seam() -> None:
    seen: list[GroupHistory] = []

    def forecast(history: GroupHistory, grid: TimeGrid, now: datetime) -> dict[Line, np.ndarray]:
        seen.append(history)
        return {line: np.arange(grid.slots, dtype=float) for line in LINES}

    b = BuildingLoad(site(), [meter()], forecast=forecast)
    grid = TimeGrid.covering(T0, 15, 2)
    b.accept(checked(b.meters["main"].config, T0, amps(7), T0))
    series = b.series(grid, T0)["grid"]
    assert series[L1][0] == 7.0 and series[L1][3] == 3.0
    assert len(seen[0].samples) == 1 and seen[0].worst_a[L1] == 40.0
    assert hold_latest(seen[0], grid, T0)[L1][1] == 7.0


@given(
    st.lists(
        st.tuples(st.floats(-500, 500), st.floats(-500, 500), st.floats(-500, 500)), max_size=5
    )
)
def test_no_reading_ever_raises_a_limit(readings: list[tuple[float, float, float]]) -> None:
    b = BuildingLoad(site(), [meter()])
    grid = TimeGrid.covering(T0, 15, 2)
    for k, (a, c, d) in enumerate(readings):
        at = T0 + timedelta(seconds=k)
        b.accept(checked(b.meters["main"].config, at, amps(a, c, d), at))
    cap = Capacity.static(site(), grid).with_non_ev(b.series(grid, T0 + timedelta(seconds=5)))
    for line in LINES:
        assert np.all(family_limit(site(), cap, ("grid", line.value), grid.slots) <= 100.0)
        assert np.all(family_limit(site(), cap, ("grid", line.value), grid.slots) >= 0.0)


@pytest.mark.parametrize(
    ("kind", "values", "why"),
    [
        ("connection", {"L1": math.nan}, "nan is not a current"),
        ("connection", {"L1": math.inf}, "inf is not a current"),
        ("connection", {"L1": "12"}, "not a number"),
        ("connection", {"L1": True}, "not a number"),
        ("connection", {"L4": 3.0}, "not a line"),
        ("connection", {}, "no line current"),
        ("connection", {"L1": 250000.0}, "beyond any connection"),
        ("load", {"L1": -3.0}, "a load meter cannot show a negative import"),
        ("generation", {"L2": -1.0}, "a generation meter cannot show a negative import"),
    ],
)
def test_garbage_is_refused(kind: str, values: dict[str, object], why: str) -> None:
    m = meter(measures=kind, max_non_ev_a=0 if kind == "generation" else 40)
    with pytest.raises(ReadingRefused, match=why):
        checked(m, T0, values, T0)


def test_a_line_a_reading_leaves_out_counts_at_its_worst() -> None:
    r = checked(meter(max_non_ev_a=[40, 30, 20]), T0, {"L1": 3.0}, T0)
    assert r.current_a == {L1: 3.0, L2: 30.0, L3: 20.0}


def test_readings_from_the_future_or_without_offset_are_refused() -> None:
    with pytest.raises(ReadingRefused, match="future"):
        checked(meter(), T0 + timedelta(minutes=5), {"L1": 1.0}, T0)
    with pytest.raises(ReadingRefused, match="offset"):
        checked(meter(), T0.replace(tzinfo=None), {"L1": 1.0}, T0)


def _f32(v: float) -> list[int]:
    return list(struct.unpack(">HH", struct.pack(">f", v)))


def test_sdm630_registers() -> None:
    words = _f32(10.0) + _f32(5.0) + _f32(2.0) + _f32(2300.0) + _f32(-1150.0) + _f32(0.0)
    assert sdm630_currents(words) == {"L1": 10.0, "L2": -5.0, "L3": 2.0}
    with pytest.raises(ReadingRefused, match="nan"):
        sdm630_currents(_f32(math.nan) + words[2:])
    with pytest.raises(ReadingRefused, match="expected 12"):
        sdm630_currents(words[:10])


def test_sunspec_meter_model() -> None:
    data = [0] * 105
    data[1:4] = [125, 30, 70]
    data[4] = 0xFFFF  # A_SF −1
    data[17:20] = [10, 0xFFF0, 5]  # L2 exports
    assert sunspec_currents(203, data) == pytest.approx({"L1": 12.5, "L2": -3.0, "L3": 7.0})
    data[2] = 0x8000  # "not implemented"
    with pytest.raises(ReadingRefused, match="not implemented"):
        sunspec_currents(203, data)
    data[2], data[4] = 30, 0x8000
    with pytest.raises(ReadingRefused, match="A_SF"):
        sunspec_currents(203, data)


def test_mqtt_messages() -> None:
    m = meter(source={"type": "mqtt", "topic": "t", "json_path": ["a.0", "a.1", "a.2"]})
    at, values = parse_message(m.source, b'{"a": [1.5, 2, 3], "time": "2026-12-07T12:00:00Z"}')
    assert at == T0 and values == {"L1": 1.5, "L2": 2, "L3": 3}
    with pytest.raises(ReadingRefused, match="not JSON"):
        parse_message(m.source, b"{")
    with pytest.raises(ReadingRefused, match=r"no value at 'a\.2'"):
        parse_message(m.source, b'{"a": [1, 2]}')
    with pytest.raises(ReadingRefused, match="no UTC offset"):
        parse_message(m.source, b'{"a": [1, 2, 3], "time": "2026-12-07T12:00:00"}')


def test_fallbacks_leave_the_worst_building_free() -> None:
    s = site()
    assert fallback_limits(s) == {"CP1": 31.5, "CP2": 31.5}
    worst = {"panel": {L1: 23.0, L2: 13.0, L3: 3.0}}
    assert fallback_limits(s, non_ev_a=worst) == {"CP1": 20.0, "CP2": 20.0}


def test_a_forecast_that_does_not_fit_gives_the_worst_case() -> None:
    def short(history: GroupHistory, grid: TimeGrid, now: datetime) -> dict[Line, np.ndarray]:
        return {line: np.zeros(2) for line in LINES}

    b = BuildingLoad(site(), [meter(max_non_ev_a=25)], forecast=short)
    grid = TimeGrid.covering(T0, 15, 2)
    b.accept(checked(b.meters["main"].config, T0, amps(7), T0))
    series = b.series(grid, T0)["grid"]
    assert series[L1][0] == 7.0 and np.all(series[L1][1:] == 25.0)
