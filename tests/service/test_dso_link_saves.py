"""The DSO link saves the capacity book when it changed, at a bounded rate, and
always on stop: a DSO chattering every few seconds does not rewrite it each time."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

from forecasts import Block, CapacityBook, Forecast, ForecastType, Phase, Unit
from gridshare.api.metrics import MetricsRecorder
from gridshare.config import GridshareConfig
from gridshare.dso_link import CAPACITY_BOOK_SAVE_GAP, CAPACITY_BOOK_STATE, DsoLink
from optimizer import Site
from optimizer.problem import Capacity, TimeGrid

T0 = datetime(2026, 11, 22, 16, 0, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


class CountingStore:
    def __init__(self) -> None:
        self.state: dict[str, Any] = {}
        self.puts = 0

    def put_state(self, key: str, value: Any) -> None:
        self.puts += 1
        self.state[key] = value

    def save_forecast(self, *args: Any) -> int:
        return 1


class Planning:
    def request_replan(self, reason: str) -> None:
        pass

    def capacity(self, grid: TimeGrid, now: datetime) -> Capacity:
        raise AssertionError("not asked here")

    def limit_now(self, cid: str, at: datetime | None = None) -> float | None:
        return None


class Listener:
    def dso_heard(self, kind: str) -> None:
        pass

    def publish_dso(self, subject: str) -> None:
        pass


def link(clock: Clock, store: CountingStore) -> DsoLink:
    site = Site.model_validate(
        {
            "site": {"name": "depot", "slot_minutes": 15, "horizon_hours": 4},
            "groups": [{"id": "grid", "limit_a": 250, "oscp_group_id": "grid"}],
        }
    )
    return DsoLink(
        GridshareConfig(site=site),
        store,  # type: ignore[arg-type]
        CapacityBook(),
        Planning(),
        clock=clock,
        metrics=MetricsRecorder(),
        listener=Listener(),
        measurement_interval_s=60.0,
        compliance_grace_s=120.0,
    )


def forecast(at: datetime, amps: float) -> Forecast:
    """Two hours of 15-minute blocks from the quarter hour containing ``at``."""
    quarter = timedelta(minutes=15)
    at = T0 + (at - T0) // quarter * quarter
    blocks = tuple(
        Block(amps, Unit.A, Phase.ALL, at + i * quarter, at + (i + 1) * quarter) for i in range(8)
    )
    return Forecast("grid", ForecastType.CONSUMPTION, blocks, at, "dso")


def saved_capacity(store: CountingStore) -> float:
    [f] = [f for f in store.state[CAPACITY_BOOK_STATE]["forecasts"] if f["blocks"]][-1:]
    return float(f["blocks"][-1]["capacity"])


async def test_ten_thousand_forecasts_and_heartbeats_save_at_a_bounded_rate() -> None:
    clock, store = Clock(), CountingStore()
    dso = link(clock, store)
    step = timedelta(seconds=3)
    for k in range(5_000):
        clock.now = T0 + k * step
        await dso.on_forecast("grid", forecast(clock.now, 40 + k % 7))
        await dso.on_heartbeat("dso", clock.now + timedelta(minutes=2))
    span = 5_000 * step
    assert store.puts <= span / CAPACITY_BOOK_SAVE_GAP + 2
    # what changed since the last save is saved on stop
    await dso.stop()
    assert saved_capacity(store) == 40 + 4_999 % 7
    assert store.state[CAPACITY_BOOK_STATE]["offline_mode_at"]["dso"] == (
        (clock.now + timedelta(minutes=2)).isoformat()
    )


async def test_a_change_within_the_gap_is_saved_when_the_gap_is_over() -> None:
    clock, store = Clock(), CountingStore()
    dso = link(clock, store)
    dso.book_save_gap = timedelta(seconds=0.3)
    await dso.on_forecast("grid", forecast(T0, 40))
    assert store.puts == 1  # the first change at once
    clock.now = T0 + timedelta(seconds=0.1)
    await dso.on_forecast("grid", forecast(clock.now, 30))
    assert store.puts == 1
    await asyncio.sleep(0.5)
    assert store.puts == 2 and saved_capacity(store) == 30


async def test_a_heartbeat_that_changes_nothing_is_not_saved() -> None:
    clock, store = Clock(), CountingStore()
    dso = link(clock, store)
    at = T0 + timedelta(minutes=2)
    await dso.on_heartbeat("dso", at)
    clock.now = T0 + 2 * CAPACITY_BOOK_SAVE_GAP
    await dso.on_heartbeat("dso", at)
    assert store.puts == 1
    await dso.stop()
    assert store.puts == 1
