"""A database of schema 2 (before retention) opens upgraded in place, its rows kept."""

from __future__ import annotations

import io
import json
import sqlite3
from datetime import timedelta
from pathlib import Path

import numpy as np

from gridshare.store import SCHEMA_VERSION, SqliteStore
from ocpp_adapter.events import MeterReading
from tests.store.engines import Engine
from tests.store.helpers import T0, fill_minutes
from tests.store.test_rollups import run_pass

V2_SCHEMA = (Path(__file__).parent / "schema_v2.sql").read_text()


def schema_2_database(path: Path, plans: int) -> None:
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.executescript(V2_SCHEMA)
    db.execute("INSERT INTO meta VALUES ('schema_version', '2'), ('next_transaction_id', '42')")
    db.execute(
        "INSERT INTO sessions (station_id, transaction_id, session_id, connector_id, started_at, "
        "meter_start_wh) VALUES ('CP0', '41', '41', 'CP0/1', ?, 0)",
        (T0.isoformat(),),
    )
    for k in range(plans):
        buf = io.BytesIO()
        np.save(buf, np.full((20, 96), k, dtype=np.float32), allow_pickle=False)
        db.execute(
            "INSERT INTO plans (created_at, reason, grid_start, slot_minutes, slots, status, "
            "solve_ms, summary_json, now_json, current_npy) VALUES (?,?,?,?,?,?,?,?,?,?)",
            (
                (T0 + timedelta(minutes=k)).isoformat(),
                "tick",
                T0.isoformat(),
                15,
                96,
                "optimal",
                2.0,
                json.dumps({"status": "optimal", "k": k}),
                json.dumps({"CP0/1": float(k)}),
                buf.getvalue(),
            ),
        )
    db.close()


def test_a_schema_2_file_is_upgraded_in_place(tmp_path: Path):
    path = tmp_path / "old.db"
    schema_2_database(path, plans=40)
    fill_minutes(Engine("sqlite", str(path)), connectors=2, minutes=120)
    store = SqliteStore(path)
    try:
        meta = dict(store._db.execute("SELECT key, value FROM meta").fetchall())
        assert meta["schema_version"] == str(SCHEMA_VERSION) == "5"
        assert meta["next_transaction_id"] == "42"
        assert store._db.execute("PRAGMA auto_vacuum").fetchone()[0] == 2  # incremental
        assert store.plan_count() == 40
        last = store.last_plan()
        assert last is not None and last["summary"] == {"status": "optimal", "k": 39}
        assert np.array_equal(last["current_a"], np.full((20, 96), 39, dtype=np.float32))
        assert [s.transaction_id for s in store.active_sessions()] == ["41"]
        assert len(store.meter_minutes("CP1/1")) == 120
        # it goes on working as a new one
        store.record_event(MeterReading("CP1/1", T0 + timedelta(hours=3), energy_wh=1.0))
        assert store.meter_last("CP1/1") is not None
        names = {r[0] for r in store._db.execute("SELECT name FROM sqlite_master")}
        assert "meter_rollup" in names and "plans_v2" not in names
    finally:
        store.close()
    run_pass(Engine("sqlite", str(path)), T0 + timedelta(hours=3), raw_meter_values="1h")
    store = SqliteStore(path)
    try:
        kept = [p["current_a"] is not None for p in store.plans_since(T0, arrays=True)]
        assert sum(kept) == 4 and kept[-1]  # minutes 0, 15, 30 and the latest
        assert store.meter_minutes("CP1/1")[0]["samples"] == sum(1 + m % 3 for m in range(15))
    finally:
        store.close()


def test_opening_an_upgraded_file_again_changes_nothing(tmp_path: Path):
    path = tmp_path / "old.db"
    schema_2_database(path, plans=3)
    SqliteStore(path).close()
    size = path.stat().st_size
    store = SqliteStore(path)
    try:
        assert store.plan_count() == 3
    finally:
        store.close()
    assert path.stat().st_size == size
