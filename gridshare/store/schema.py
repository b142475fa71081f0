"""The tables of the store and the upgrade of an older database to them.

Schema 2 keys sessions by (station, transaction) and adds the session id and
the 1.6 transaction id sequence; a schema 1 database (sessions keyed by
transaction id alone) is rebuilt on opening.

Schema 3 makes room for retention: a plan's full current array may be dropped
(its summary and dispatched slot stay), one-minute meter rows older than the raw
horizon become ``meter_rollup`` rows, and the file frees its pages as rows go
(``auto_vacuum=INCREMENTAL``; an older file is vacuumed once to take it).

The site meters' tables (`gridshare.store.meter_readings`) are added to a
file of any schema by `_add_site_meter_tables`, a step of its own.
"""

from __future__ import annotations

import logging
import sqlite3

from gridshare.store.meter_readings import TABLES as SITE_METER_TABLES
from optimizer.site import station_of

log = logging.getLogger(__name__)

SCHEMA_VERSION = 3
"""2: sessions keyed by (station, transaction), a session id, the transaction id sequence.
3: plans whose full array may be dropped, meter roll-ups, incremental vacuum."""

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
    stop_reason TEXT, offline INTEGER NOT NULL DEFAULT 0, priority REAL, charge_mode TEXT,
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
CREATE TABLE IF NOT EXISTS meter_rollup (
    connector_id TEXT NOT NULL, start TEXT NOT NULL, minutes INTEGER NOT NULL,
    n INTEGER NOT NULL, l1_sum REAL NOT NULL, l2_sum REAL NOT NULL, l3_sum REAL NOT NULL,
    l1_max REAL NOT NULL, l2_max REAL NOT NULL, l3_max REAL NOT NULL,
    power_sum REAL NOT NULL, power_n INTEGER NOT NULL,
    energy_wh REAL NOT NULL, register_wh REAL, soc_pct REAL,
    PRIMARY KEY (connector_id, start)
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
    now_json TEXT NOT NULL, current_npy BLOB
);
CREATE TABLE IF NOT EXISTS audit (
    id INTEGER PRIMARY KEY AUTOINCREMENT, at TEXT NOT NULL, kind TEXT NOT NULL,
    subject TEXT NOT NULL, detail_json TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS meter_rollup_start ON meter_rollup (start);
CREATE INDEX IF NOT EXISTS plans_created ON plans (created_at);
CREATE INDEX IF NOT EXISTS audit_at ON audit (at);
CREATE INDEX IF NOT EXISTS forecasts_received ON forecasts (received_at);
CREATE INDEX IF NOT EXISTS profiles_sent ON profiles (sent_at);
CREATE INDEX IF NOT EXISTS profiles_connector ON profiles (connector_id, id);
CREATE INDEX IF NOT EXISTS sessions_ended ON sessions (ended_at) WHERE ended_at IS NOT NULL;
"""


def create_or_upgrade(db: sqlite3.Connection) -> None:
    """Make the tables (an older database's upgraded), inside the caller's transaction."""
    old = _detach_v1_sessions(db)
    _detach_v2_plans(db)
    for stmt in _SCHEMA.split(";"):
        if stmt.strip():
            db.execute(stmt)
    if old:
        _copy_v1_sessions(db)
    _copy_v2_plans(db)
    _add_site_meter_tables(db)
    _add_charge_mode(db)
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


def _add_charge_mode(db: sqlite3.Connection) -> None:
    """A session's charging mode, once set (NULL: its idTag's default): a column
    an older file gains as it is."""
    columns = {r["name"] for r in db.execute("PRAGMA table_info(sessions)")}
    if "charge_mode" not in columns:
        db.execute("ALTER TABLE sessions ADD COLUMN charge_mode TEXT")


def _add_site_meter_tables(db: sqlite3.Connection) -> None:
    """The site meters' readings and their groups' non-EV load: new tables only,
    so an older file takes them as they are."""
    for stmt in SITE_METER_TABLES.split(";"):
        if stmt.strip():
            db.execute(stmt)


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


def _detach_v2_plans(db: sqlite3.Connection) -> None:
    """Schema 2 required every plan's full array: set its table aside (copied
    by `_copy_v2_plans`) so the array may be dropped."""
    columns = {r["name"]: r["notnull"] for r in db.execute("PRAGMA table_info(plans)")}
    if columns.get("current_npy"):
        db.execute("ALTER TABLE plans RENAME TO plans_v2")


def _copy_v2_plans(db: sqlite3.Connection) -> None:
    if db.execute("SELECT 1 FROM sqlite_master WHERE name = 'plans_v2'").fetchone() is None:
        return
    db.execute("INSERT INTO plans SELECT * FROM plans_v2 ORDER BY id")
    db.execute("DROP TABLE plans_v2")


def use_incremental_vacuum(db: sqlite3.Connection) -> None:
    """Let the file give back the pages of deleted rows (`Retention` asks for it
    in small steps). A file made before schema 3 takes it with one VACUUM, which
    rewrites the file: outside any transaction, once."""
    if db.execute("PRAGMA auto_vacuum").fetchone()[0] == 2:
        return
    db.execute("PRAGMA auto_vacuum=INCREMENTAL")
    has_tables = db.execute("SELECT 1 FROM sqlite_master LIMIT 1").fetchone() is not None
    if has_tables:
        log.info("rewriting the database file once so it can give back free pages (VACUUM)")
        db.execute("VACUUM")


def _first_transaction_id(db: sqlite3.Connection) -> int:
    """Above every numeric transaction id stored (ids a previous version issued)."""
    top = 0
    for (tx,) in db.execute("SELECT transaction_id FROM sessions"):
        if tx.isdecimal() and int(tx) <= MAX_TRANSACTION_ID:
            top = max(top, int(tx))
    return top + 1
