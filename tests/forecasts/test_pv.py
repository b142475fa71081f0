"""The PV forecast: pvlib's clear sky for the array's place and shape, scaled by
the clear-sky index the generation meters measured, or a forecast file."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from pydantic import ValidationError

from forecasts.pv import (
    PvConfig,
    PvConfigError,
    PvForecast,
    clear_sky_slots,
    parse_pv_csv,
)
from optimizer.problem import TimeGrid
from optimizer.site import Line

DAY = datetime(2026, 6, 21, tzinfo=UTC)


def _array(longitude: float, latitude: float = 45.0, **kw: object) -> PvConfig:
    return PvConfig.model_validate(
        {"group": "grid", "latitude": latitude, "longitude": longitude, "kwp": 10.0, **kw}
    )


def _day(slot_minutes: int = 15) -> TimeGrid:
    return TimeGrid(DAY, slot_minutes, 24 * 60 // slot_minutes)


@pytest.mark.parametrize("longitude", [-118.2, 4.9, 139.7])
def test_zero_at_night_and_the_peak_near_solar_noon(longitude: float) -> None:
    grid = _day()
    kw = clear_sky_slots(_array(longitude), grid)
    noon_utc = (12.0 - longitude / 15.0) % 24  # ± the equation of time (2 min in June)
    peak = (int(np.argmax(kw)) + 0.5) * grid.slot_hours
    assert abs((peak - noon_utc + 12) % 24 - 12) <= 0.5
    midnight = int(((noon_utc + 12) % 24) / grid.slot_hours)
    assert kw[midnight] == 0.0
    assert 0.5 * 10.0 < kw.max() <= 10.0  # a clear June noon at 45°N: most of the kWp


def test_a_tilted_array_facing_east_peaks_before_noon() -> None:
    grid = _day()
    south = clear_sky_slots(_array(0.0, tilt=40, azimuth=180), grid)
    east = clear_sky_slots(_array(0.0, tilt=40, azimuth=90), grid)
    assert np.argmax(east) < np.argmax(south)


def test_the_clear_sky_index_scales_the_forecast() -> None:
    config = _array(4.9, latitude=52.4)
    pv = PvForecast(config, 230.0)
    now = DAY + timedelta(hours=11)
    grid = TimeGrid.covering(now, 15, 6)
    clear = pv.kw(grid)
    # the meter showed 40 % of the clear sky at each moment of the last hour
    times = [now - timedelta(minutes=m) for m in range(0, 60, 5)]
    clear_then = [float(x) for x in PvForecast(config, 230.0).kw(TimeGrid(times[-1], 5, 12))]
    measured = [(t, 0.4 * c) for t, c in zip(reversed(times), clear_then, strict=True)]
    assert pv.observe(measured, now) == pytest.approx(0.4, abs=0.03)
    assert pv.kw(grid) == pytest.approx(0.4 * clear, rel=0.08)


def test_at_night_the_last_index_holds() -> None:
    pv = PvForecast(_array(4.9, latitude=52.4), 230.0)
    pv.index = 0.6
    night = DAY + timedelta(hours=23)
    assert pv.observe([(night - timedelta(minutes=5), 0.0)], night) == 0.6


def test_generation_is_split_over_the_inverter_s_lines() -> None:
    pv = PvForecast(_array(0.0, lines=["L2"]), 230.0)
    grid = TimeGrid(DAY + timedelta(hours=12), 15, 4)
    a = pv.per_line_a(grid)
    assert np.all(a[Line.L1] == 0.0) and np.all(a[Line.L3] == 0.0)
    assert a[Line.L2] == pytest.approx(pv.kw(grid) * 1000 / 230.0)


def test_a_forecast_file_gives_the_mean_over_each_slot() -> None:
    text = ["start,kw", "2026-06-21T10:00:00Z,4", "2026-06-21T10:30:00Z,8", "2026-06-21T11:00Z,0"]
    series = parse_pv_csv(text, "pv.csv")
    grid = TimeGrid(DAY + timedelta(hours=9, minutes=45), 15, 6)
    assert series.slots(grid) == pytest.approx([0.0, 4.0, 4.0, 8.0, 8.0, 0.0])
    coarse = TimeGrid(DAY + timedelta(hours=10), 60, 2)
    assert series.slots(coarse) == pytest.approx([6.0, 0.0])


@pytest.mark.parametrize(
    ("rows", "says"),
    [
        (["time,power", "2026-06-21T10:00Z,1"], "header must be 'start,kw'"),
        (["start,kw", "yesterday,1"], "pv.csv:2: start 'yesterday' is not an ISO 8601 time"),
        (["start,kw", "2026-06-21T10:00Z,-1"], "pv.csv:2: kw must be a finite figure ≥ 0"),
        (["start,kw", "2026-06-21T10:00Z,1", "2026-06-21T09:00Z,1"], "pv.csv:3: start"),
        (["start,kw"], "no rows"),
    ],
)
def test_a_bad_forecast_file_is_refused_naming_the_row(rows: list[str], says: str) -> None:
    with pytest.raises(PvConfigError, match=says.replace("(", r"\(")):
        parse_pv_csv(rows, "pv.csv")


@pytest.mark.parametrize(
    ("change", "says"),
    [
        ({"latitude": 95}, "latitude"),
        ({"kwp": 40000}, "looks like watts"),
        ({"kwp": 0}, "kwp"),
        ({"tilt": 120}, "tilt"),
        ({"lines": ["L1", "L1"]}, "once"),
        ({"kwh": 3}, "kwh"),
    ],
)
def test_a_bad_pv_table_is_refused(change: dict[str, object], says: str) -> None:
    data = {"group": "grid", "latitude": 52.0, "longitude": 4.9, "kwp": 10.0, **change}
    with pytest.raises(ValidationError, match=says):
        PvConfig.model_validate(data)
