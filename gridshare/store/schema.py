"""The tables of the store and the upgrade of an older database to them.

Schema 2 keys sessions by (station, transaction) and adds the session id and
the 1.6 transaction id sequence; a schema 1 database (sessions keyed by
transaction id alone) is rebuilt on opening.
"""

from __future__ import annotations

import sqlite3

from optimizer.site import station_of

SCHEMA_VERSION = 2
"""2: sessions keyed by (station, transaction), a session id, the transaction id sequence."""

MAX_TRANSACTION_ID = 2**31 - 1
"""OCPP 1.6 transaction ids are integers; stations commonly keep them in 32 bits."""

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS stations (
    id TEXT PRIMARY KEY, protocol TEXT, vendor TEXT, model TEXT, firmware TEXT,
    connected INTEGER NOT NULL DEFAULT 0, connected_at TEXT, booted_at TEXT,
    disconnected_at TEXT
);
CREATE TABLE IF NOT EXISTS connectors (
    id TEXT PRIMARY KEY, status TEXT, error_code TEXT, at TEXT
);
CREATE TABLE IF NOT EXISTS sessions (
    station_id TEXT NOT NULL, transaction_id TEXT NOT NULL, session_id TEXT NOT NULL UNIQUE,
    connector_id TEXT NOT NULL, id_tag TEXT,
    started_at TEXT NOT NULL, ended_at TEXT, meter_start_wh REAL, meter_stop_wh REAL,
    energy_wh REAL, departure TEXT, energy_need_wh REAL, ev_max_a REAL, ev_min_a REAL,
    stop_reason TEXT, offline INTEGER NOT NULL DEFAULT 0, priority REAL,
    PRIMARY KEY (station_id, transaction_id)
);
CREATE INDEX IF NOT EXISTS sessions_open ON sessions (connector_id) WHERE ended_at IS NULL;
CREATE INDEX IF NOT EXISTS sessions_tag ON sessions (id_tag, ended_at);
CREATE TABLE IF NOT EXISTS meter_last (
    connector_id TEXT PRIMARY KEY, at TEXT NOT NULL, transaction_id TEXT,
    current_json TEXT, offered_a REAL, power_w REAL, energy_wh REAL, soc_pct REAL
);
CREATE TABLE IF NOT EXISTS meter_minute (
    connector_id TEXT NOT NULL, minute TEXT NOT NULL, n INTEGER NOT NULL,
    l1_sum REAL NOT NULL, l2_sum REAL NOT NULL, l3_sum REAL NOT NULL,
    power_sum REAL NOT NULL, power_n INTEGER NOT NULL, energy_wh REAL, soc_pct REAL,
    PRIMARY KEY (connector_id, minute)
);
CREATE TABLE IF NOT EXISTS profiles (
    id INTEGER PRIMARY KEY AUTOINCREMENT, station_id TEXT NOT NULL, connector_id TEXT,
    purpose TEXT NOT NULL, transaction_id TEXT, start TEXT NOT NULL, periods_json TEXT NOT NULL,
    sent_at TEXT NOT NULL, outcome TEXT, detail TEXT, answered_at TEXT
);
CREATE TABLE IF NOT EXISTS limits_in_force (
    connector_id TEXT NOT NULL, purpose TEXT NOT NULL, start TEXT NOT NULL,
    periods_json TEXT NOT NULL, accepted_at TEXT NOT NULL, profile_id INTEGER,
    PRIMARY KEY (connector_id, purpose)
);
CREATE TABLE IF NOT EXISTS forecasts (
    id INTEGER PRIMARY KEY AUTOINCREMENT, group_id TEXT NOT NULL, kind TEXT NOT NULL,
    source TEXT NOT NULL, received_at TEXT NOT NULL, blocks_json TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS plans (
    id INTEGER PRIMARY KEY AUTOINCREMENT, created_at TEXT NOT NULL, reason TEXT NOT NULL,
    grid_start TEXT NOT NULL, slot_minutes INTEGER NOT NULL, slots INTEGER NOT NULL,
    status TEXT NOT NULL, solve_ms REAL NOT NULL, summary_json TEXT NOT NULL,
    now_json TEXT NOT NULL, current_npy BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS audit (
    id INTEGER PRIMARY KEY AUTOINCREMENT, at TEXT NOT NULL, kind TEXT NOT NULL,
    subject TEXT NOT NULL, detail_json TEXT NOT NULL
);
"""


def create_or_upgrade(db: sqlite3.Connection) -> None:
    """Make the tables (an older database's upgraded), inside the caller's transaction."""
    old = _detach_v1_sessions(db)
    for stmt in _SCHEMA.split(";"):
        if stmt.strip():
            db.execute(stmt)
    if old:
        _copy_v1_sessions(db)
    db.execute(
        "INSERT INTO meta (key, value) VALUES ('schema_version', ?) "
        "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        (str(SCHEMA_VERSION),),
    )
    if db.execute("SELECT 1 FROM meta WHERE key = 'next_transaction_id'").fetchone() is None:
        db.execute(
            "INSERT INTO meta (key, value) VALUES ('next_transaction_id', ?)",
            (str(_first_transaction_id(db)),),
        )


def _detach_v1_sessions(db: sqlite3.Connection) -> bool:
    """A database of schema 1 keyed sessions by transaction id alone: set its
    table aside (rebuilt by `_copy_v1_sessions`). True if there was one."""
    columns = {r["name"] for r in db.execute("PRAGMA table_info(sessions)")}
    if not columns or "station_id" in columns:
        return False
    if "priority" not in columns:  # made before operators set priorities
        db.execute("ALTER TABLE sessions ADD COLUMN priority REAL")
    db.execute("DROP INDEX IF EXISTS sessions_open")
    db.execute("DROP INDEX IF EXISTS sessions_tag")
    db.execute("ALTER TABLE sessions RENAME TO sessions_v1")
    return True


def _copy_v1_sessions(db: sqlite3.Connection) -> None:
    rows = db.execute("SELECT * FROM sessions_v1").fetchall()
    for r in rows:
        d = dict(r)
        # transaction ids were unique there: each stays its session's id
        d["station_id"] = station_of(d["connector_id"])
        d["session_id"] = d["transaction_id"]
        names = ", ".join(d)
        marks = ", ".join("?" * len(d))
        db.execute(f"INSERT INTO sessions ({names}) VALUES ({marks})", tuple(d.values()))
    db.execute("DROP TABLE sessions_v1")


def _first_transaction_id(db: sqlite3.Connection) -> int:
    """Above every numeric transaction id stored (ids a previous version issued)."""
    top = 0
    for (tx,) in db.execute("SELECT transaction_id FROM sessions"):
        if tx.isdecimal() and int(tx) <= MAX_TRANSACTION_ID:
            top = max(top, int(tx))
    return top + 1
