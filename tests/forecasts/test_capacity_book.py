"""Merging forecasts, overrides and fallback into the capacity the optimizer reads."""

from __future__ import annotations

import json
from datetime import timedelta

import numpy as np
import pandas as pd
import pytest

from forecasts import (
    CapacityBook,
    ForecastType,
    InvalidForecast,
    InvalidRecord,
    Override,
    Phase,
    Unit,
)
from optimizer import TimeGrid

from .helpers import T0, block, forecast, minutes, site

GRID = TimeGrid(start=T0, slot_minutes=15, slots=8)


def limit_a(book: CapacityBook, now_m: float = 0, group: str = "trafo") -> list[float]:
    return book.capacity(site(), GRID, minutes(now_m)).limit_a[group].tolist()


def test_static_limits_without_forecasts() -> None:
    cap = CapacityBook().capacity(site(), GRID, T0)
    assert cap.limit_a["trafo"].tolist() == [160] * 8
    assert cap.limit_kw["grid"].tolist() == [170] * 8
    assert np.all(np.isinf(cap.limit_kw["trafo"]))


def test_newer_blocks_replace_the_overlapping_part_only() -> None:
    book = CapacityBook()
    book.add(forecast(block(100, 0, 120)))
    book.add(forecast(block(50, 30, 60), at=1))
    assert limit_a(book) == [100, 100, 50, 50, 100, 100, 100, 100]
    # a newer, more permissive block replaces too (the DSO raises the capacity)
    book.add(forecast(block(140, 0, 15), at=2))
    assert limit_a(book) == [140, 100, 50, 50, 100, 100, 100, 100]
    # gaps and the static limit
    book.add(forecast(block(500, 90, 120), at=3))
    assert limit_a(book)[6:] == [160, 160]


def test_types_and_groups_do_not_mix() -> None:
    book = CapacityBook()
    book.add(forecast(block(100, 0, 120)))
    book.add(forecast(block(10, 0, 120), type_=ForecastType.OPTIMUM))
    book.add(forecast(block(5, 0, 120), type_=ForecastType.GENERATION))
    book.add(forecast(block(5, 0, 120), group="other"))
    assert limit_a(book) == [100] * 8
    frame = book.breakdown(site(), GRID, T0, "trafo")
    assert frame["optimum_a"].iloc[0] == 10
    assert len(book.pieces("trafo-1", ForecastType.GENERATION)) == 1


def test_unaligned_blocks_take_the_most_restrictive_value_per_slot() -> None:
    book = CapacityBook()
    book.add(forecast(block(100, 0, 20), block(40, 20, 50), block(120, 50, 120)))
    assert limit_a(book) == [100, 40, 40, 40, 120, 120, 120, 120]


def test_blocks_outside_the_grid_are_ignored() -> None:
    book = CapacityBook()
    book.add(forecast(block(1, -60, 0), block(2, 120, 180)))
    assert limit_a(book) == [160] * 8


def test_power_forecast_lands_on_limit_kw() -> None:
    book = CapacityBook()
    book.add(forecast(block(60, 0, 120, Unit.KW, Phase.ALL)))
    cap = book.capacity(site(), GRID, T0)
    assert cap.limit_kw["trafo"].tolist() == [60] * 8
    assert cap.limit_a["trafo"].tolist() == [160] * 8


def test_overrides_lower_only_their_window() -> None:
    book = CapacityBook()
    book.add(forecast(block(100, 0, 120)))
    book.set_override(Override("o1", "trafo", minutes(15), minutes(45), limit_a=80))
    book.set_override(Override("o2", "trafo", minutes(90), None, limit_a=120))
    assert limit_a(book) == [100, 80, 80, 100, 100, 100, 100, 100]
    assert book.remove_override("o1")
    assert not book.remove_override("o1")
    assert limit_a(book) == [100] * 8
    with pytest.raises(InvalidForecast):
        Override("bad", "trafo", minutes(10), minutes(5))


def test_fallback_only_while_the_provider_is_offline() -> None:
    book = CapacityBook()
    book.add(forecast(block(100, 0, 120)))
    book.add(forecast(block(40, 0, 120), type_=ForecastType.FALLBACK_CONSUMPTION))
    assert limit_a(book) == [100] * 8  # never heard a heartbeat: online
    book.heartbeat("dso", minutes(10))
    assert limit_a(book, now_m=5) == [100] * 8
    assert book.next_change(minutes(5)) == minutes(10)
    assert limit_a(book, now_m=10) == [40] * 8
    assert book.fallback_active("trafo-1", minutes(10))
    book.heartbeat("dso", minutes(30))
    assert limit_a(book, now_m=10) == [100] * 8
    # the stations' fallback profile: min(fallback_limit_a, the FALLBACK forecast)
    assert book.fallback_capacity(site(), GRID).limit_a["trafo"].tolist() == [40] * 8
    assert book.fallback_capacity(site(), GRID).limit_a["panel"].tolist() == [63] * 8


def test_frame_and_series_on_the_planning_grid() -> None:
    book = CapacityBook()
    book.add(forecast(block(100, 0, 60)))
    df = book.frame(site(), GRID, T0)
    assert isinstance(df.index, pd.DatetimeIndex)
    assert df.index[0] == pd.Timestamp(T0) and len(df) == 8
    assert df[("trafo", "limit_a")].tolist() == [100] * 4 + [160] * 4
    s = book.series(site(), GRID, T0, "trafo")
    assert s.tolist() == df[("trafo", "limit_a")].tolist()
    br = book.breakdown(site(), GRID, T0, "trafo")
    assert {"static_a", "override_a", "dso_a", "fallback_a", "fallback_active", "limit_a"} <= set(
        br.columns
    )


def test_export_import_round_trip() -> None:
    book = CapacityBook()
    book.add(forecast(block(100, 0, 120)))
    book.add(forecast(block(50, 30, 60), at=1))
    book.add(forecast(block(40, 0, 120), type_=ForecastType.FALLBACK_CONSUMPTION))
    book.set_override(Override("o1", "trafo", minutes(15), minutes(45), limit_a=80, reason="x"))
    book.heartbeat("dso", minutes(10))
    data = json.loads(json.dumps(book.export()))
    again = CapacityBook.from_export(data)
    for now_m in (0, 20):
        assert limit_a(again, now_m) == limit_a(book, now_m)
    assert again.export() == book.export()
    again.add(forecast(block(10, 0, 15), at=5))
    assert limit_a(again)[0] == 10
    with pytest.raises(InvalidRecord):
        CapacityBook.from_export({"version": 99})
    with pytest.raises(InvalidRecord):
        CapacityBook.from_export({"version": 1, "forecasts": [{"seq": 1}]})


def test_prune_forgets_what_ended() -> None:
    book = CapacityBook()
    book.add(forecast(block(100, 0, 30)))
    book.add(forecast(block(50, 30, 120), at=1))
    assert book.prune(minutes(60)) == 1
    assert len(book.forecasts()) == 1
    assert limit_a(book) == [160, 160, 50, 50, 50, 50, 50, 50]
    assert book.prune(minutes(60) + timedelta(hours=5)) == 1


def test_one_forecast_round_trips_as_plain_data() -> None:
    from forecasts import Forecast

    f = forecast(block(100, 0, 120), block(7, 0, 60, Unit.KWH, Phase.ONE), at=3)
    assert Forecast.from_dict(json.loads(json.dumps(f.to_dict()))) == f
    with pytest.raises(InvalidRecord):
        Forecast.from_dict({"group_id": "g"})
