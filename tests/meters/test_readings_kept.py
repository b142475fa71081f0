"""The site meters' readings and the groups' non-EV load, kept in the store:
rolled up, bounded by retention, reloaded on a restart, and what the
building's forecast learns from."""

from __future__ import annotations

import asyncio
import math
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from forecasts.building_load import StandardProfile
from gridshare.config import GridshareConfig, parse_config
from gridshare.meters.building import BuildingLoad
from gridshare.meters.forecast import StoredHistoryForecast, store_forecast
from gridshare.meters.hub import MeterHub
from gridshare.meters.readings import Reading
from gridshare.retention import Retention, RetentionConfig
from gridshare.store import SqliteStore
from gridshare.store.meter_readings import StoredReading, StoredSample
from optimizer import Capacity, TimeGrid
from optimizer.families import line_limit_a
from optimizer.site import LINES, Line

LIMIT_A = 100.0
NOW = datetime(2026, 12, 3, 18, 0, tzinfo=UTC)  # a Thursday; tomorrow a workday


def config(tmp_path: Path, **meter: Any) -> GridshareConfig:
    data: dict[str, Any] = {
        "site": {"name": "office", "slot_minutes": 15, "horizon_hours": 24, "timezone": "UTC"},
        "groups": [{"id": "grid", "limit_a": LIMIT_A}],
        "chargers": [
            {"id": "CP1", "group": "grid", "connectors": [{"id": 1, "max_current_a": 32}]}
        ],
        "meters": [
            {
                "id": "main",
                "group": "grid",
                "measures": "load",
                "interval_s": 60,
                "stale_after_s": 600,
                "max_non_ev_a": 80,
                "source": {"type": "http"},
                **meter,
            }
        ],
    }
    return parse_config(data, "office.toml", tmp_path / "office.toml", environ={})


def office_a(t: datetime) -> tuple[float, float, float]:
    """An office: 40/30/20 A on workdays 08-18, 5 A otherwise (+ a little noise)."""
    busy = t.weekday() < 5 and 8 <= t.hour < 18
    wiggle = 0.5 * math.sin(t.timestamp() / 700.0)
    base = (40.0, 30.0, 20.0) if busy else (5.0, 5.0, 5.0)
    return (base[0] + wiggle, base[1] + wiggle, base[2] + wiggle)


def store_week(store: SqliteStore, until: datetime, step: timedelta) -> int:
    t, n = until - timedelta(days=7), 0
    while t < until:
        amps = office_a(t)
        store.record_site_meter(StoredReading("main", t, t, amps), [StoredSample("grid", t, amps)])
        t, n = t + step, n + 1
    return n


def test_a_reading_is_kept_with_its_group_sample_and_roll_up(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "kept.db")
    t0 = datetime(2026, 12, 3, 10, 0, tzinfo=UTC)
    for i, amps in enumerate([(10.0, 20.0, 30.0), (14.0, 18.0, 30.0), (12.0, 22.0, 31.0)]):
        at = t0 + timedelta(minutes=5 * i)
        store.record_site_meter(
            StoredReading("main", at, at, amps), [StoredSample("grid", at, amps)]
        )
    at = t0 + timedelta(minutes=15)  # the next quarter hour: a roll-up row of its own
    store.record_site_meter(
        StoredReading("main", at, at, (1, 1, 1)), [StoredSample("grid", at, (1, 1, 1))]
    )
    assert [r.amps for r in store.site_meter_readings("main", 2)] == [(12, 22, 31), (1, 1, 1)]
    assert len(store.group_non_ev_samples("grid", 100)) == 4
    first, second = store.group_non_ev_rollups("grid", t0)
    assert (first.start, first.minutes, first.samples) == (t0, 15, 3)
    assert first.mean_a == pytest.approx((12.0, 20.0, 30 + 1 / 3))
    assert first.max_a == (14.0, 22.0, 31.0)
    assert second.samples == 1
    store.close()
    # kept: the file opened again reads the same
    again = SqliteStore(tmp_path / "kept.db")
    assert len(again.group_non_ev_rollups("grid", t0)) == 2
    again.close()


def test_retention_drops_raw_rows_past_the_horizon_and_keeps_the_roll_ups(
    tmp_path: Path,
) -> None:
    path = tmp_path / "kept.db"
    store = SqliteStore(path)
    n = store_week(store, NOW, timedelta(minutes=5))
    rollups = len(store.group_non_ev_rollups("grid", NOW - timedelta(days=8)))
    store.close()
    retention = Retention(str(path), RetentionConfig(raw_meter_values="2d", batch_rows=200))
    for _ in range(100):
        if retention.prune_step(NOW).done:
            break
    retention.close()
    store = SqliteStore(path)
    raw = store.group_non_ev_samples("grid", n)
    assert len(raw) == 2 * 24 * 12  # two days of 5-minute samples
    assert raw[0].at == NOW - timedelta(days=2)
    assert len(store.site_meter_readings("main", n)) == len(raw)
    assert len(store.group_non_ev_rollups("grid", NOW - timedelta(days=8))) == rollups == 7 * 96
    store.close()


def test_the_hub_keeps_its_readings_and_reloads_them_on_a_restart(tmp_path: Path) -> None:
    cfg = config(tmp_path)
    now = [NOW]
    store = SqliteStore(tmp_path / "hub.db")
    hub = MeterHub(cfg.site, cfg.meters, lambda: now[0], store=store)
    for i in range(5):
        now[0] = NOW + timedelta(minutes=i)
        hub.offer("main", {"L1": 10.0 + i, "L2": 5.0, "L3": 1.0})
    store.close()
    store = SqliteStore(tmp_path / "hub.db")
    again = MeterHub(cfg.site, cfg.meters, lambda: now[0], store=store)
    assert not again.building.history
    again.restore()
    history = [s.non_ev_a[Line.L1] for s in again.building.history["grid"]]
    assert history == [10.0, 11.0, 12.0, 13.0, 14.0]
    # the last reading came in a moment ago: it still counts, as it did before
    assert again.building.non_ev("grid", now[0])[Line.L1] == 14.0
    assert again.building.non_ev("grid", now[0] + timedelta(hours=1))[Line.L1] == 80.0
    store.close()


def _forecast_capacity(
    cfg: GridshareConfig, store: SqliteStore, now: datetime
) -> tuple[Capacity, TimeGrid, StoredHistoryForecast]:
    building = BuildingLoad(cfg.site, cfg.meters)
    forecast = store_forecast(store, cfg.site, cfg.meters, building.worst_all())
    building.forecast = forecast
    building.accept(Reading("main", now, dict(zip(LINES, office_a(now), strict=True)), now))
    grid = TimeGrid.covering(now, 15, 24)
    static = Capacity.static(cfg.site, grid)
    return building.capacity_provider(lambda s, g, t: static)(cfg.site, grid, now), grid, forecast


def _left_at(cfg: GridshareConfig, cap: Capacity, grid: TimeGrid, at: datetime) -> list[float]:
    slot = int((at - grid.start) / timedelta(minutes=grid.slot_minutes))
    return [float(line_limit_a(cfg.site, cap, "grid", line, grid.slots)[slot]) for line in LINES]


def test_tomorrows_nine_oclock_reflects_a_stored_week(tmp_path: Path) -> None:
    cfg = config(tmp_path)
    store = SqliteStore(tmp_path / "week.db")
    store_week(store, NOW, timedelta(minutes=5))
    cap, grid, forecast = _forecast_capacity(cfg, store, NOW)
    nine = datetime(2026, 12, 4, 9, 0, tzinfo=UTC)
    left = _left_at(cfg, cap, grid, nine)
    # the office's 09:00 per line (at the 0.9 quantile of its quarter hours' peaks)
    assert left == pytest.approx([LIMIT_A - 40.5, LIMIT_A - 30.5, LIMIT_A - 20.5], abs=0.6)
    three = datetime(2026, 12, 4, 3, 0, tzinfo=UTC)
    assert _left_at(cfg, cap, grid, three) == pytest.approx([LIMIT_A - 5.5] * 3, abs=0.6)
    # never above the static limit, in any slot
    for line in LINES:
        assert np.all(line_limit_a(cfg.site, cap, "grid", line, grid.slots) <= LIMIT_A)
    assert forecast.fits == 1
    # within the hour: no refit; an hour later: one
    forecast.forecaster("grid", NOW + timedelta(minutes=59))
    assert forecast.fits == 1
    forecast.forecaster("grid", NOW + timedelta(hours=1))
    assert forecast.fits == 2
    store.close()


def test_without_history_the_bdew_prior_or_the_worst_case_stands_in(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "empty.db")
    nine = datetime(2026, 12, 4, 9, 0, tzinfo=UTC)
    cfg = config(tmp_path)
    cap, grid, _ = _forecast_capacity(cfg, store, NOW)
    assert _left_at(cfg, cap, grid, nine) == pytest.approx([LIMIT_A - 80.0] * 3)
    # a G1 office of 60 MWh a year: BDEW's winter workday 09:00 at 230 V over three lines
    bdew = config(tmp_path, annual_kwh=60_000, profile="G1", country="DE")
    cap, grid, _ = _forecast_capacity(bdew, store, NOW)
    at = pd.DatetimeIndex([nine])
    expected = StandardProfile("g1", 60_000).amps(at, np.zeros(1, dtype=np.int64))[0]
    assert 30.0 < expected[0] < 60.0
    assert _left_at(bdew, cap, grid, nine) == pytest.approx(list(LIMIT_A - expected))
    # above the worst case, the worst case holds
    big = config(tmp_path, annual_kwh=150_000, profile="g1")
    cap, grid, _ = _forecast_capacity(big, store, NOW)
    assert _left_at(big, cap, grid, nine) == pytest.approx([LIMIT_A - 80.0] * 3)
    store.close()


async def test_the_service_plans_with_the_stored_history(tmp_path: Path) -> None:
    from gridshare.service import Service

    cfg = config(tmp_path, country="DE")
    db = str(tmp_path / "service.db")
    store = SqliteStore(db)
    store_week(store, NOW, timedelta(minutes=5))
    store.close()
    now = NOW + timedelta(seconds=1)
    svc = Service(cfg, db=db, clock=lambda: now, ocpp_port=0, http_port=0, host="127.0.0.1")
    await svc.start()
    try:
        assert svc.meters is not None and svc.controller is not None
        assert isinstance(svc.meters.building.forecast, StoredHistoryForecast)
        assert len(svc.meters.building.history["grid"]) == 7 * 24 * 12
        svc.meters.offer("main", {"L1": 5.0, "L2": 5.0, "L3": 5.0})
        grid = TimeGrid.covering(now, 15, 24)
        svc.controller.capacity(grid, now)  # the first asks for a fit, off the loop
        for _ in range(200):
            if svc.meters.building.forecast.fits:
                break
            await asyncio.sleep(0.02)
        cap = svc.controller.capacity(grid, now)
        nine = datetime(2026, 12, 4, 9, 0, tzinfo=UTC)
        left = _left_at(cfg, cap, grid, nine)
        assert left == pytest.approx([LIMIT_A - 40.5, LIMIT_A - 30.5, LIMIT_A - 20.5], abs=0.6)
        # the operator's limit tomorrow morning: the building comes off it, never on top
        svc.controller.set_group_limit(
            "grid", limit_a=70.0, start=nine, end=nine + timedelta(hours=1)
        )
        cap = svc.controller.capacity(grid, now)
        left = _left_at(cfg, cap, grid, nine)
        assert left == pytest.approx([70 - 40.5, 70 - 30.5, 70 - 20.5], abs=0.6)
        for line in LINES:
            assert np.all(line_limit_a(cfg.site, cap, "grid", line, grid.slots) <= LIMIT_A)
    finally:
        await svc.stop()
