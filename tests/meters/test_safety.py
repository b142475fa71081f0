"""The fast path's arithmetic: which limits a reading over the limit lowers, and to what."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np

from gridshare.meters.safety import lowered_limits
from gridshare.rollout import LimitBook, LimitSchedule
from gridshare.rollout.load import LoadModel
from ocpp_adapter.events import CommandOutcome, CommandResult
from optimizer import Capacity, Site, TimeGrid
from optimizer.site import Line

NOW = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)


def site() -> Site:
    return Site.model_validate(
        {
            "site": {"name": "s", "horizon_hours": 1},
            "groups": [{"id": "grid", "limit_a": 64}],
            "chargers": [
                {"id": "A", "group": "grid", "connectors": [{"id": 1, "max_current_a": 32}]},
                {"id": "B", "group": "grid", "connectors": [{"id": 1, "max_current_a": 32}]},
                {
                    "id": "C",
                    "group": "grid",
                    "connectors": [{"id": 1, "max_current_a": 32, "phases": ["L2"]}],
                },
            ],
        }
    )


def book_with(s: Site, grid: TimeGrid, limits: dict[str, float], *, idle: bool) -> LimitBook:
    book = LimitBook(s, count_idle=idle)
    for cid, a in limits.items():
        book.start_transaction(cid)
        sched = LimitSchedule.constant(grid.start, a)
        book.sending(cid, sched)
        book.answered(cid, sched, CommandResult(CommandOutcome.ACCEPTED), 0.0)
    return book


def cap_with(s: Site, grid: TimeGrid, building: dict[Line, float]) -> np.ndarray:
    loads = {"grid": {line: np.full(grid.slots, a) for line, a in building.items()}}
    model = LoadModel.build(s)
    return model.capacity(s, Capacity.static(s, grid).with_non_ev(loads), grid)


def test_a_spike_on_one_line_scales_the_chargers_on_it() -> None:
    s = site()
    grid = TimeGrid.covering(NOW, 15, 1)
    book = book_with(s, grid, {"A/1": 20.0, "B/1": 20.0, "C/1": 20.0}, idle=False)
    model = LoadModel.build(s)
    # L2 carries A, B and C: 60 A; the building takes 34 A of its 64
    found = lowered_limits(s, book, grid, model, cap_with(s, grid, {Line.L2: 34.0}))
    assert set(found.over) == {("grid", "L2")}
    assert found.profiles == {"A/1": 10.0, "B/1": 10.0, "C/1": 10.0}
    # L1 alone over: C (on L2 only) keeps its limit
    found = lowered_limits(s, book, grid, model, cap_with(s, grid, {Line.L1: 44.0}))
    assert found.profiles == {"A/1": 10.0, "B/1": 10.0}


def test_a_share_below_the_minimum_is_zero_and_nothing_over_is_nothing() -> None:
    s = site()
    grid = TimeGrid.covering(NOW, 15, 1)
    book = book_with(s, grid, {"A/1": 20.0, "B/1": 20.0}, idle=False)
    model = LoadModel.build(s)
    found = lowered_limits(s, book, grid, model, cap_with(s, grid, {Line.L1: 55.0}))
    assert found.profiles == {"A/1": 0.0, "B/1": 0.0}  # 4.5 A each: below 6 A
    assert not lowered_limits(s, book, grid, model, cap_with(s, grid, {Line.L1: 24.0}))


def test_idle_fallbacks_count_and_are_left_alone() -> None:
    s = site()
    grid = TimeGrid.covering(NOW, 15, 1)
    book = book_with(s, grid, {"A/1": 20.0}, idle=True)
    book.default_sending("B/1", 12.0)
    book.default_answered("B/1", 12.0, CommandResult(CommandOutcome.ACCEPTED), own=True)
    book.default_sending("C/1", 12.0)
    book.default_answered("C/1", 12.0, CommandResult(CommandOutcome.ACCEPTED), own=True)
    model = LoadModel.build(s)
    # L1: A 20 + B's fallback 12 = 32; the building 40 leaves 24: A gets 12
    found = lowered_limits(s, book, grid, model, cap_with(s, grid, {Line.L1: 40.0}))
    assert found.profiles == {"A/1": 12.0}
    # only stations that can be told
    assert not lowered_limits(
        s, book, grid, model, cap_with(s, grid, {Line.L1: 40.0}), connected={"B", "C"}
    ).profiles
