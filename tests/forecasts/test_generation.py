"""GENERATION forecasts bound what a group may feed back (`forecasts.generation`)."""

from __future__ import annotations

import numpy as np

from forecasts import CapacityBook, ForecastType, Phase, Unit
from optimizer import TimeGrid

from .helpers import T0, block, forecast, minutes, site

GRID = TimeGrid(start=T0, slot_minutes=15, slots=8)


def export(book: CapacityBook, now_m: float = 0) -> dict[str, list[float]]:
    cap = book.capacity(site(), GRID, minutes(now_m))
    return {g: v.tolist() for g, v in cap.export_a.items()}


def test_generation_blocks_become_export_limits_within_the_site_file() -> None:
    book = CapacityBook()
    assert export(book) == {}  # no generation forecast: the planner's default
    book.add(forecast(block(40, 0, 60), type_=ForecastType.GENERATION))
    # a sub-group may feed back up to its own rating, the DSO's figure below it
    assert export(book) == {"trafo": [40] * 4 + [160] * 4}
    # a consumption forecast is not an export limit, nor the other way round
    assert book.capacity(site(), GRID, T0).limit_a["trafo"].tolist() == [160] * 8


def test_a_power_block_is_spread_over_three_lines() -> None:
    book = CapacityBook()
    book.add(forecast(block(23, 0, 120, Unit.KW, Phase.ALL), type_=ForecastType.GENERATION))
    got = export(book)["trafo"]
    assert np.allclose(got, 23_000 / (3 * 230))


def test_fallback_generation_only_while_the_provider_is_offline() -> None:
    book = CapacityBook()
    book.add(forecast(block(50, 0, 120), type_=ForecastType.GENERATION))
    book.add(forecast(block(10, 0, 120), type_=ForecastType.FALLBACK_GENERATION))
    assert export(book)["trafo"] == [50] * 8
    book.heartbeat("dso", minutes(10))  # offline from minute 10 unless heard again
    assert export(book, now_m=20)["trafo"] == [10] * 8
