"""The capacity book stays as large as what is in force: pruning, the cap on
blocks per forecast, and views that read only the window they look at."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import TypeVar

import pytest

from forecasts import Block, CapacityBook, Forecast, ForecastType, InvalidForecast, Phase, Unit
from forecasts.capacity_book import MAX_BLOCKS
from optimizer import TimeGrid

from .helpers import T0, CountingBook, block, forecast, minutes, site

FIVE = timedelta(minutes=5)
B = TypeVar("B", bound=CapacityBook)


def five_minute_forecast(first: datetime, n: int, amps: float, at: datetime) -> Forecast:
    blocks = tuple(
        Block(amps + i % 7, Unit.A, Phase.ALL, first + i * FIVE, first + (i + 1) * FIVE)
        for i in range(n)
    )
    return Forecast("trafo-1", ForecastType.CONSUMPTION, blocks, at, "dso")


def history(book: B, now: datetime, forecasts: int = 50, per: int = 2000) -> B:
    """``forecasts * per`` five-minute blocks, one forecast after the other, the
    last one reaching a day past ``now``."""
    span = per * FIVE
    first = now + timedelta(days=1) - forecasts * span
    for k in range(forecasts):
        t = first + k * span
        book.add(five_minute_forecast(t, per, 100, t))
    return book


def test_pruning_a_long_history_leaves_what_is_in_force() -> None:
    now = T0
    book = history(CapacityBook(), now)
    pieces = book.pieces("trafo-1", ForecastType.CONSUMPTION)
    assert len(pieces) == 100_000
    grid = TimeGrid.covering(now, 15, 24)
    before = book.capacity(site(), grid, now)
    assert book.prune(now - timedelta(minutes=30)) == 49
    left = book.pieces("trafo-1", ForecastType.CONSUMPTION)
    # the day ahead and the half hour just ended
    assert len(left) == 24 * 12 + 6
    assert all(p.block.end > now - timedelta(minutes=30) for p in left)
    after = book.capacity(site(), grid, now)
    assert after.limit_a["trafo"].tolist() == before.limit_a["trafo"].tolist()
    # what is saved is what is left, and it rebuilds the same book
    saved = json.loads(json.dumps(book.export()))
    assert sum(len(f["blocks"]) for f in saved["forecasts"]) == len(left)
    again = CapacityBook.from_export(saved)
    assert again.pieces("trafo-1", ForecastType.CONSUMPTION) == left
    assert again.export() == saved


def test_a_forecast_that_replaces_another_leaves_nothing_of_it_behind() -> None:
    book = CapacityBook()
    for k in range(100):  # the DSO sends the same day again and again
        book.add(five_minute_forecast(T0, 288, 100 - k % 10, minutes(k)))
    assert len(book.forecasts()) == 1
    assert len(book.pieces("trafo-1", ForecastType.CONSUMPTION)) == 288
    assert len(book.export()["forecasts"]) == 1


def test_prune_forgets_ended_overrides_and_keeps_open_ones() -> None:
    from forecasts import Override

    book = CapacityBook()
    book.set_override(Override("past", "trafo", minutes(0), minutes(10), limit_a=5))
    book.set_override(Override("open", "trafo", minutes(0), None, limit_a=5))
    book.prune(minutes(10))
    assert [o.id for o in book.overrides()] == ["open"]


def test_a_forecast_over_the_cap_is_refused_and_changes_nothing() -> None:
    book = CapacityBook()
    book.add(forecast(block(100, 0, 120)))
    saved = book.export()
    with pytest.raises(InvalidForecast, match=str(MAX_BLOCKS)):
        book.add(five_minute_forecast(T0, MAX_BLOCKS + 1, 10, minutes(1)))
    assert book.export() == saved
    book.add(five_minute_forecast(T0, MAX_BLOCKS, 10, minutes(1)))
    assert len(book.pieces("trafo-1", ForecastType.CONSUMPTION)) == MAX_BLOCKS


def test_the_capacity_now_reads_only_the_pieces_of_its_slot() -> None:
    now = T0
    book = history(CountingBook(), now)
    slot = TimeGrid.covering(now, 15, 0.25)
    cap = book.capacity(site(), slot, now)
    in_slot = [
        p.block.capacity
        for p in book.pieces("trafo-1", ForecastType.CONSUMPTION)
        if p.block.start < slot.end and p.block.end > slot.start
    ]
    assert len(in_slot) == 3 and cap.limit_a["trafo"].tolist() == [min(in_slot)]
    assert book.read == 3  # the slot's three blocks, of 100,000
    book.read = 0
    assert book.applied_at("trafo-1", ForecastType.CONSUMPTION, 230, now + FIVE) is not None
    assert book.read == 1


def test_overlapping_blocks_of_one_forecast_show_what_applies() -> None:
    book = CapacityBook()
    book.add(forecast(block(300, 0, 60), block(50, 15, 30), block(80, 45, 90, Unit.KW)))
    stretches = book.applied("trafo-1", ForecastType.CONSUMPTION, 230)
    got = [((s.start - T0).seconds // 60, (s.end - T0).seconds // 60, s.limit) for s in stretches]
    assert [(a, b, lim.limit_a, lim.limit_kw) for a, b, lim in got] == [
        (0, 15, 300, float("inf")),
        (15, 30, 50, float("inf")),
        (30, 45, 300, float("inf")),
        (45, 60, 300, 80),
        (60, 90, float("inf"), 80),
    ]
    at = book.applied_at("trafo-1", ForecastType.CONSUMPTION, 230, minutes(20))
    assert at is not None and at.limit.limit_a == 50
    assert book.applied_at("trafo-1", ForecastType.CONSUMPTION, 230, minutes(90)) is None
    # the planner's slot over the same minutes reads the same value
    grid = TimeGrid(start=minutes(15), slot_minutes=15, slots=1)
    assert book.capacity(site(), grid, T0).limit_a["trafo"].tolist() == [50]
