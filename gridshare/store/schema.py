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

Both engines take the tables as written here, in SQLite's words; PostgreSQL's
are translated by `postgres_ddl` (its types, byte-order text so ISO times sort
as in SQLite, identity columns). A new database gets the current schema at
once; the version is kept in ``meta`` (``schema_version``). A later version
adds its step to `UPGRADES`, run on both engines for a database of an older
version, e.g. a column::

    UPGRADES[6] = lambda db: add_column(db, "meter_minute", "voltage_v REAL")

A database of a newer version than this code is refused, not downgraded.
PostgreSQL's schema is made under an advisory lock (two nodes starting at once
make it once).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable

from gridshare.store.connection import POSTGRESQL, Db
from gridshare.store.errors import StoreError
from gridshare.store.meter_readings import GROSS_COLUMNS
from gridshare.store.meter_readings import TABLES as SITE_METER_TABLES
from optimizer.site import station_of

log = logging.getLogger(__name__)

SCHEMA_VERSION = 5
"""2: sessions keyed by (station, transaction), a session id, the transaction id sequence.
3: plans whose full array may be dropped, meter roll-ups, incremental vacuum.
4: a session's charging mode. 5: the groups' gross non-EV load in their roll-ups."""

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


UPGRADES: dict[int, Callable[[Db], None]] = {}
"""Version → the step that brings a database of the version before to it (both engines)."""

_POSTGRES_ONLY = """
ALTER TABLE sessions ADD COLUMN IF NOT EXISTS seq BIGINT GENERATED ALWAYS AS IDENTITY;
"""
"""SQLite orders a table's rows as stored by ``rowid``; PostgreSQL has no such order."""


def postgres_ddl(sql: str) -> str:
    """SQLite's table definitions in PostgreSQL's words: 8-byte integers and floats,
    ``bytea``, identity ids, and text compared byte by byte as SQLite does (ISO
    times then sort by time whatever the database's locale)."""
    sql = sql.replace(
        "INTEGER PRIMARY KEY AUTOINCREMENT", "BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY"
    )
    for word, pg in (("INTEGER", "BIGINT"), ("REAL", "DOUBLE PRECISION"), ("BLOB", "BYTEA")):
        sql = re.sub(rf"\b{word}\b", pg, sql)
    return re.sub(r"\bTEXT\b", 'TEXT COLLATE "C"', sql)


def _statements(db: Db, sql: str) -> None:
    if db.dialect is POSTGRESQL:
        sql = postgres_ddl(sql)
    for stmt in sql.split(";"):
        if stmt.strip():
            db.execute(stmt)


def add_column(db: Db, table: str, column: str) -> None:
    """``ALTER TABLE table ADD COLUMN column`` (SQLite's words) unless the table has
    it already (a table made at the current version has)."""
    name = column.split()[0]
    if db.dialect is POSTGRESQL:
        have = db.execute(
            "SELECT 1 FROM information_schema.columns WHERE table_schema = current_schema() "
            "AND table_name = ? AND column_name = ?",
            (table, name),
        ).fetchone()
        if have is None:
            db.execute(postgres_ddl(f"ALTER TABLE {table} ADD COLUMN {column}"))
        return
    if name not in {r["name"] for r in db.execute(f"PRAGMA table_info({table})")}:
        db.execute(f"ALTER TABLE {table} ADD COLUMN {column}")


def _add_charge_mode(db: Db) -> None:
    """Version 4: a session's charging mode, once set (NULL: its idTag's default)."""
    add_column(db, "sessions", "charge_mode TEXT")


UPGRADES[4] = _add_charge_mode


def _add_gross_rollups(db: Db) -> None:
    """Version 5: a group roll-up's highest gross sample (generation added back;
    NULL in the rows kept before: their net highest stands in)."""
    for column in GROSS_COLUMNS:
        add_column(db, "group_non_ev_rollup", column)


UPGRADES[5] = _add_gross_rollups


def schema_version(db: Db) -> int | None:
    """The version the database says it has (None: a new database)."""
    if db.dialect is POSTGRESQL:
        has_meta = db.execute("SELECT to_regclass('meta')").fetchone()[0] is not None
    else:
        has_meta = (
            db.execute("SELECT 1 FROM sqlite_master WHERE name = 'meta'").fetchone() is not None
        )
    if not has_meta:
        return None
    row = db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
    return None if row is None else int(row[0])


def create_or_upgrade(db: Db) -> None:
    """Make the tables (an older database's upgraded), inside the caller's transaction."""
    if db.dialect is POSTGRESQL:  # one node at a time makes or upgrades the schema
        db.execute(
            "SELECT pg_advisory_xact_lock(hashtext('gridshare schema ' || current_schema()))"
        )
    found = schema_version(db)
    if found is not None and found > SCHEMA_VERSION:
        raise StoreError(
            f"the database has schema {found}, newer than this gridshare's {SCHEMA_VERSION}: "
            "use the gridshare that wrote it"
        )
    if db.dialect is POSTGRESQL:
        _statements(db, _SCHEMA + SITE_METER_TABLES + _POSTGRES_ONLY)
    else:
        _sqlite_tables(db)
    for version in range(SCHEMA_VERSION + 1):
        if found is not None and found < version and version in UPGRADES:
            UPGRADES[version](db)
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


def _sqlite_tables(db: Db) -> None:
    """The tables of a SQLite file, one of schema 1 or 2 rebuilt where it differs."""
    old = _detach_v1_sessions(db)
    _detach_v2_plans(db)
    for stmt in _SCHEMA.split(";"):
        if stmt.strip():
            db.execute(stmt)
    if old:
        _copy_v1_sessions(db)
    _copy_v2_plans(db)
    _add_site_meter_tables(db)


def _add_site_meter_tables(db: Db) -> None:
    """The site meters' readings and their groups' non-EV load: new tables only,
    so an older file takes them as they are."""
    for stmt in SITE_METER_TABLES.split(";"):
        if stmt.strip():
            db.execute(stmt)


def _detach_v1_sessions(db: Db) -> bool:
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


def _copy_v1_sessions(db: Db) -> None:
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


def _detach_v2_plans(db: Db) -> None:
    """Schema 2 required every plan's full array: set its table aside (copied
    by `_copy_v2_plans`) so the array may be dropped."""
    columns = {r["name"]: r["notnull"] for r in db.execute("PRAGMA table_info(plans)")}
    if columns.get("current_npy"):
        db.execute("ALTER TABLE plans RENAME TO plans_v2")


def _copy_v2_plans(db: Db) -> None:
    if db.execute("SELECT 1 FROM sqlite_master WHERE name = 'plans_v2'").fetchone() is None:
        return
    db.execute("INSERT INTO plans SELECT * FROM plans_v2 ORDER BY id")
    db.execute("DROP TABLE plans_v2")


def use_incremental_vacuum(db: Db) -> None:
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


def _first_transaction_id(db: Db) -> int:
    """Above every numeric transaction id stored (ids a previous version issued)."""
    top = 0
    for (tx,) in db.execute("SELECT transaction_id FROM sessions"):
        if tx.isdecimal() and int(tx) <= MAX_TRANSACTION_ID:
            top = max(top, int(tx))
    return top + 1
