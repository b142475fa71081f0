"""The building forecast learns the gross load where a PV forecast is taken off
it: the stored history nets the generation meters out, and the PV forecast
must not come off a second time. And the store keeps the gross highest per
roll-up, an older file upgraded to it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from forecasts.pv import PvConfig, PvForecast, parse_pv_csv
from gridshare.meters.config import MeterConfig
from gridshare.meters.forecast import store_forecast
from gridshare.meters.hub import MeterHub
from gridshare.meters.pv import attach_pv
from gridshare.store import SqliteStore
from gridshare.store.meter_readings import StoredReading, StoredSample
from optimizer import Site, TimeGrid
from optimizer.site import LINES
from tests.store.engines import Engine

NOW = datetime(2026, 6, 18, 20, 0, tzinfo=UTC)  # a Thursday evening; tomorrow a workday
VOLTS = 230.0
HOUSE_A = 20.0
"""What the building draws per line, day and night (its gross load)."""
SUN_A = 10.0
"""What the array gives per line by day (08-16), measured and forecast alike."""


def _site() -> Site:
    return Site.model_validate(
        {
            "site": {"name": "pv", "slot_minutes": 15, "horizon_hours": 24, "timezone": "UTC"},
            "groups": [{"id": "grid", "limit_a": 100}],
            "chargers": [
                {"id": "CP1", "group": "grid", "connectors": [{"id": 1, "max_current_a": 32}]}
            ],
        }
    )


def _meters() -> tuple[MeterConfig, ...]:
    common: dict[str, Any] = {"group": "grid", "interval_s": 300, "stale_after_s": 1200}
    return (
        MeterConfig.model_validate(
            {"id": "house", "measures": "load", "max_non_ev_a": 60, "source": {"type": "http"}}
            | common
        ),
        MeterConfig.model_validate(
            {"id": "inverter", "measures": "generation", "source": {"type": "http"}} | common
        ),
    )


def _sun(t: datetime) -> float:
    return SUN_A if 8 <= t.hour < 16 else 0.0


def _pv(config: PvConfig) -> PvForecast:
    """A forecast file: the array's ``SUN_A`` per line tomorrow 08-16, else nothing."""
    day = NOW.replace(hour=0) + timedelta(days=1)
    kw = SUN_A * VOLTS * len(config.lines) / 1000.0
    rows = ["start,kw", f"{NOW.isoformat()},0", f"{(day + timedelta(hours=8)).isoformat()},{kw}",
            f"{(day + timedelta(hours=16)).isoformat()},0"]  # fmt: skip
    return PvForecast(config, VOLTS, parse_pv_csv(rows, "pv.csv"))


def _hub(tmp_path: Path) -> tuple[MeterHub, SqliteStore]:
    """A week of readings kept (a quarter hour apart), the clock at ``NOW``."""
    clock = [NOW - timedelta(days=7)]
    store = SqliteStore(tmp_path / "pv.db")
    hub = MeterHub(_site(), _meters(), lambda: clock[0], store=store)
    while clock[0] <= NOW:
        t = clock[0]
        hub.offer("inverter", dict.fromkeys(("L1", "L2", "L3"), _sun(t)))
        hub.offer("house", dict.fromkeys(("L1", "L2", "L3"), HOUSE_A))
        clock[0] = t + timedelta(minutes=15)
    return hub, store


def test_the_plan_ahead_takes_the_pv_forecast_off_the_gross_load_once(tmp_path: Path) -> None:
    hub, store = _hub(tmp_path)
    try:
        b = hub.building
        b.forecast = store_forecast(store, b.site, _meters(), b.worst_all())
        attach_pv(b, _pv(PvConfig(group="grid", latitude=52, longitude=5, kwp=20)))
        grid = TimeGrid.covering(NOW, 15, 24)
        series = b.series(grid, NOW)["grid"]
        noon = NOW.replace(hour=12) + timedelta(days=1)
        night = NOW.replace(hour=3) + timedelta(days=1)
        for t, sun in ((noon, SUN_A), (night, 0.0)):
            slot = int((t - grid.start) / timedelta(minutes=15))
            for line in LINES:
                # the building's own draw less the sun forecast, not less it twice
                assert series[line][slot] == pytest.approx(HOUSE_A - sun, abs=0.01)
        # the net history still says what the meters netted (the live figure's kin)
        rows = store.group_non_ev_rollups("grid", noon - timedelta(days=1, minutes=1))
        assert rows[0].max_a == pytest.approx((HOUSE_A - SUN_A,) * 3)
        assert rows[0].gross_max_a == pytest.approx((HOUSE_A,) * 3)
    finally:
        store.close()


def test_without_pv_the_forecast_learns_the_net_load(tmp_path: Path) -> None:
    hub, store = _hub(tmp_path)
    try:
        b = hub.building
        b.forecast = store_forecast(store, b.site, _meters(), b.worst_all())
        grid = TimeGrid.covering(NOW, 15, 24)
        series = b.series(grid, NOW)["grid"]
        noon = NOW.replace(hour=12) + timedelta(days=1)
        slot = int((noon - grid.start) / timedelta(minutes=15))
        for line in LINES:
            assert series[line][slot] == pytest.approx(HOUSE_A - SUN_A, abs=0.01)
    finally:
        store.close()


def test_an_older_database_takes_the_gross_columns_and_reads_its_rows_as_net(
    engine: Engine,
) -> None:
    at = NOW.replace(minute=0)
    store = engine.open()
    store.record_site_meter(
        StoredReading("house", at, at, (9.0, 9.0, 9.0)),
        [StoredSample("grid", at, (5.0, 6.0, 7.0), (4.0, 4.0, 4.0))],
    )
    store.close()
    db = engine.raw()
    try:  # as schema 4 had it: no gross
        for n in (1, 2, 3):
            db.execute(f"ALTER TABLE group_non_ev_rollup DROP COLUMN l{n}_gross_max")
        db.execute("UPDATE meta SET value = '4' WHERE key = 'schema_version'")
    finally:
        db.close()
    store = engine.open()
    try:
        (row,) = store.group_non_ev_rollups("grid", at)
        assert row.gross_max_a == row.max_a == (5.0, 6.0, 7.0)  # all it kept
        later = at + timedelta(minutes=1)  # the same quarter hour, a gross sample
        store.record_site_meter(
            StoredReading("house", later, later, (9.0, 9.0, 9.0)),
            [StoredSample("grid", later, (1.0, 1.0, 8.0), (5.5, 1.0, 0.0))],
        )
        (row,) = store.group_non_ev_rollups("grid", at)
        assert row.max_a == (5.0, 6.0, 8.0)
        assert row.gross_max_a == (6.5, 6.0, 8.0)
    finally:
        store.close()
    assert engine.value("SELECT value FROM meta WHERE key = 'schema_version'") == "5"
