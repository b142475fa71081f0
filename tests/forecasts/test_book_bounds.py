"""A book fed for a long time stays as large as the history it keeps: forecasts
and heartbeats every few seconds, pruned as the service prunes it."""

from __future__ import annotations

import json
from datetime import datetime, timedelta

import pytest

from forecasts import Block, CapacityBook, Forecast, ForecastType, Phase, Unit, capacity_book
from forecasts.capacity_book import Override
from optimizer import TimeGrid

from .helpers import T0, site

HISTORY = timedelta(hours=48)
STEP = timedelta(seconds=15)
QUARTER = timedelta(minutes=15)


def day_ahead(at: datetime, amps: float) -> Forecast:
    """A day of 15-minute blocks from a quarter hour before ``at`` (each forecast
    leaves the last one's first 15 seconds in force: a remnant)."""
    first = at - QUARTER
    blocks = tuple(
        Block(amps + i % 3, Unit.A, Phase.ALL, first + i * QUARTER, first + (i + 1) * QUARTER)
        for i in range(97)
    )
    return Forecast("trafo-1", ForecastType.CONSUMPTION, blocks, at, "dso")


def test_ten_thousand_forecasts_and_heartbeats_leave_a_bounded_book(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    most = 500
    monkeypatch.setattr(capacity_book, "MAX_ENDED", most)
    book, by_time_only = CapacityBook(), CapacityBook()
    sizes = []
    for k in range(5_000):
        now = T0 + k * STEP
        book.prune(now - HISTORY, now=now)
        by_time_only.prune(now - HISTORY)
        f = day_ahead(now, 50 + k % 5)
        book.add(f)
        by_time_only.add(f)
        book.heartbeat("dso", now + timedelta(minutes=3))
        book.heartbeat("dso", now + timedelta(minutes=3))
        if k % 1000 == 999:
            sizes.append(len(json.dumps(book.export())))
    pieces = book.pieces("trafo-1", ForecastType.CONSUMPTION)
    assert len(by_time_only.pieces("trafo-1", ForecastType.CONSUMPTION)) > 4_000
    assert len(pieces) <= 97 + 1 + most
    assert max(sizes[1:]) <= min(sizes[1:]) * 1.05
    # what is in force and the recent past are as they were
    grid = TimeGrid.covering(now - timedelta(hours=1), 15, 25)
    assert (
        book.capacity(site(), grid, now).limit_a["trafo"].tolist()
        == by_time_only.capacity(site(), grid, now).limit_a["trafo"].tolist()
    )
    assert list(book.export()["offline_mode_at"]) == ["dso"]


def test_providers_heard_once_are_forgotten_with_the_history() -> None:
    keep = timedelta(hours=2)
    book = CapacityBook()
    for k in range(10_000):
        now = T0 + k * STEP
        book.prune(now - keep, now=now)
        book.heartbeat(f"gone-{k}", now)  # a provider heard once, never again
    assert book.offline_mode_at("gone-5") is None
    assert len(book.export()["offline_mode_at"]) <= keep // STEP + 2


def test_overrides_that_ended_go_with_the_history() -> None:
    keep = timedelta(hours=2)
    book = CapacityBook()
    for k in range(10_000):
        now = T0 + k * STEP
        book.prune(now - keep, now=now)
        book.set_override(Override(f"o{k}", "grid", now, now + timedelta(minutes=1), limit_a=10))
    book.set_override(Override("open", "grid", T0, None, limit_a=20))
    book.prune(T0 + 10_000 * STEP - keep)
    assert len(book.overrides()) <= keep // STEP + 5
    assert "open" in {o.id for o in book.overrides()}


def test_a_provider_with_a_fallback_in_force_stays_offline() -> None:
    book = CapacityBook()
    fallback = Forecast(
        "trafo-1",
        ForecastType.FALLBACK_CONSUMPTION,
        (Block(10, Unit.A, Phase.ALL, T0, T0 + timedelta(days=2)),),
        T0,
        "dso",
    )
    book.add(fallback)
    book.heartbeat("dso", T0 + timedelta(minutes=1))
    later = T0 + timedelta(hours=5)
    book.prune(later - timedelta(hours=2), now=later)
    assert book.fallback_active("trafo-1", later)
