"""Roll-ups: energy exact to the Wh, the same figures read before and after (both engines)."""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timedelta

import pytest

from gridshare.retention import Retention, RetentionConfig
from gridshare.store.tables import StoreTables
from ocpp_adapter.events import SessionEnded, SessionStarted
from tests.store.engines import Engine
from tests.store.helpers import T0, fill_minutes, register_at, totals

QUARTER = timedelta(minutes=15)


def run_pass(engine: Engine, now: datetime, **settings: object) -> list[str]:
    """Steps until nothing is left; the kinds of work done, in order."""
    retention = Retention(engine.url, RetentionConfig.model_validate(settings))
    jobs: list[str] = []
    try:
        for _ in range(10_000):
            report = retention.prune_step(now)
            if report.done:
                return jobs
            jobs.append(report.job)
        raise AssertionError("retention never finished")
    finally:
        retention.close()


@pytest.fixture
def db(engine: Engine) -> Engine:
    engine.open().close()
    fill_minutes(engine, connectors=3, minutes=2 * 24 * 60 + 7)
    return engine


def test_rolled_up_energy_is_the_registers_difference_to_the_wh(db: Engine):
    before = totals(db)
    jobs = run_pass(db, T0 + timedelta(days=3), raw_meter_values="15m", batch_rows=200)
    assert "roll-up" in jobs
    store = db.open()
    try:
        rolled = store._db.execute(
            "SELECT connector_id, SUM(energy_wh), COUNT(*), MAX(minutes) FROM meter_rollup "
            "GROUP BY connector_id"
        ).fetchall()
        left = store._db.execute("SELECT COUNT(*) FROM meter_minute").fetchone()[0]
    finally:
        store.close()
    assert left == 0  # every interval lies past the horizon
    for cid, energy, count, minutes in rolled:
        c = int(cid[2:-2])
        highest = max(register_at(c, m) for m in range(2 * 24 * 60 + 7) if m % 11 != 3)
        assert energy == pytest.approx(highest - register_at(c, 0), abs=1e-6)
        assert count == 2 * 24 * 4 + 1 and minutes == 15
    assert totals(db) == before  # samples, current sums and the highest register all kept


def readings(store: StoreTables, cids: list[str]) -> dict[str, object]:
    """Every figure the app reads of meter values, per 15-minute interval."""
    energy = {
        k: store.meter_energy(T0 + k * QUARTER, T0 + (k + 1) * QUARTER, cids)
        for k in range(2 * 24 * 4 + 1)
    }
    minutes: dict[tuple[str, datetime], list[float]] = defaultdict(lambda: [0, 0.0, 0.0, 0.0])
    for cid in cids:
        for row in store.meter_minutes(cid):
            at = datetime.fromisoformat(row["minute"])
            acc = minutes[(cid, T0 + (at - T0) // QUARTER * QUARTER)]
            acc[0] += row["samples"]
            acc[1] += row["samples"] * row["current_a"]["L1"]
            acc[2] += row["samples"] * row["power_w"]
            if row["energy_wh"] is not None:
                acc[3] = max(acc[3], row["energy_wh"])
    since = store.meter_minutes_since(T0 + timedelta(days=1, hours=3))
    return {
        "energy": {k: {c: round(v, 6) for c, v in e.items()} for k, e in energy.items()},
        "per_interval": {
            k: (n, round(l1 / n, 9), round(p / n, 6), round(r, 6))
            for k, (n, l1, p, r) in minutes.items()
        },
        "since": {(r["connector_id"], r["minute"]) for r in since if r["minute"].minute % 15 == 0},
        "last": store.meter_last_all(),
        "whole_day": store.meter_energy(T0, T0 + timedelta(days=3), cids),
    }


def test_every_read_gives_the_same_figures_before_and_after_a_roll_up(db: Engine):
    cids = ["CP0/1", "CP1/1", "CP2/1"]
    store = db.open()
    try:
        before = readings(store, cids)
    finally:
        store.close()
    run_pass(db, T0 + timedelta(days=2), raw_meter_values="1d", batch_rows=97)
    store = db.open()
    try:
        raw_left = store._db.execute("SELECT MIN(minute) FROM meter_minute").fetchone()[0]
        assert raw_left == (T0 + timedelta(days=1)).isoformat()  # only the last day is raw
        after = readings(store, cids)
    finally:
        store.close()
    assert after == before


def test_a_running_session_keeps_its_minutes_raw(db: Engine):
    store = db.open()
    try:
        store.record_event(SessionStarted("CP1/1", "tx-1", None, 0.0, T0 + timedelta(hours=5)))
    finally:
        store.close()
    now = T0 + timedelta(days=3)
    run_pass(db, now, raw_meter_values="15m")
    store = db.open()
    try:
        first_raw = dict(
            store._db.execute(
                "SELECT connector_id, MIN(minute) FROM meter_minute GROUP BY connector_id"
            ).fetchall()
        )
        assert first_raw == {"CP1/1": (T0 + timedelta(hours=5)).isoformat()}
        store.record_event(SessionEnded("tx-1", 5000.0, now, station_id="CP1"))
    finally:
        store.close()
    run_pass(db, now, raw_meter_values="15m")
    store = db.open()
    try:
        assert store._db.execute("SELECT COUNT(*) FROM meter_minute").fetchone()[0] == 0
    finally:
        store.close()


def test_minutes_that_come_late_join_their_rolled_up_interval(db: Engine):
    store = db.open()
    try:
        top = store.meter_energy(T0, T0 + timedelta(days=3), ["CP0/1"])["CP0/1"]
    finally:
        store.close()
    run_pass(db, T0 + timedelta(days=3), raw_meter_values="15m")
    fill_minutes(db, connectors=1, minutes=1, start=T0 + timedelta(minutes=7))
    run_pass(db, T0 + timedelta(days=3), raw_meter_values="15m")
    store = db.open()
    try:
        [(n,)] = store._db.execute(
            "SELECT n FROM meter_rollup WHERE connector_id = 'CP0/1' AND start = ?",
            (T0.isoformat(),),
        ).fetchall()
        assert n == sum(1 + m % 3 for m in range(15)) + 1
        assert store.meter_energy(T0, T0 + timedelta(days=3), ["CP0/1"])["CP0/1"] == pytest.approx(
            top
        )
    finally:
        store.close()
