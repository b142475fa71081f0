"""Persistence: one storage module, SQLite today, another database URL later.

What the service must not lose lives here: stations, sessions, meter readings
(the last per connector and one-minute aggregates), charging profiles sent
and their answers, the limits each station accepted, forecasts, plans with
their figures, and an audit log of limit changes.

An event counts as accepted only once `Store.record_event` has committed it:
the OCPP adapter answers the station after the application's event sink
returns, so a crash before the commit makes the station send it again.

`open_store(url)` picks the backend from the URL (``sqlite:///path.db``,
``sqlite://:memory:`` or a bare path). SQLite runs in WAL mode with
``synchronous=NORMAL``: a committed transaction survives the process being
killed; ``sqlite:///path.db?synchronous=FULL`` also survives a power cut.

The store is used from the event loop's thread only (each call is a short
transaction); the planner's worker thread never touches it.

A session is keyed by (station id, transaction id): in OCPP 2.0.1 the station
chooses the transaction id, so two stations may use the same one. Each session
also gets a ``session_id`` that is unique in the database (the transaction id
itself unless another station's session has it already): the operator's name
for it. OCPP 1.6 transaction ids come from `SqliteStore.next_transaction_id`, a
sequence committed before the id is handed out, so no id is issued twice for
the life of the database.

The database file and its WAL/SHM files are created readable by the owner only
(they hold idTags).

    StoreError
    ├── UnsupportedDatabase   a URL scheme with no backend
    └── SessionConflict       a session start that contradicts a stored one
"""

from __future__ import annotations

import io
import itertools
import json
import logging
import os
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import parse_qs, urlsplit

import numpy as np

from forecasts.demand import PastSession
from ocpp_adapter.events import (
    ConnectorStatusChanged,
    DomainEvent,
    EvChargingNeeds,
    ExternalLimitNotified,
    MeterReading,
    SessionEnded,
    SessionStarted,
    StationBooted,
    StationConnected,
    StationDisconnected,
)
from optimizer.plan import Plan
from optimizer.site import station_of

log = logging.getLogger(__name__)

SCHEMA_VERSION = 2
"""2: sessions keyed by (station, transaction), a session id, the transaction id sequence."""

_MAX_TRANSACTION_ID = 2**31 - 1
"""OCPP 1.6 transaction ids are integers; stations commonly keep them in 32 bits."""


class StoreError(Exception):
    """Root of the store's errors."""


class UnsupportedDatabase(StoreError):
    """The database URL names a backend gridshare does not have."""


class SessionConflict(StoreError):
    """A session start whose (station, transaction) is stored already with another
    connector or start: the stored session is kept as it is, the start is refused."""

    def __init__(self, station_id: str, transaction_id: str, detail: str) -> None:
        super().__init__(f"session {station_id}/{transaction_id}: {detail}")
        self.station_id = station_id
        self.transaction_id = transaction_id
        self.detail = detail


def ended_key(e: SessionEnded) -> tuple[str, str] | None:
    """(station, transaction) of the session an end names: its station, else its
    connector's. None when it names neither: a transaction id alone is unique per
    station only, so no session is guessed (the OCPP adapter always names the station)."""
    station = e.station_id or (station_of(e.connector_id) if e.connector_id else None)
    return None if station is None else (station, e.transaction_id)


def _iso(t: datetime | None) -> str | None:
    if t is None:
        return None
    if t.tzinfo is None:
        t = t.replace(tzinfo=UTC)
    return t.astimezone(UTC).isoformat()


def _dt(s: str | None) -> datetime | None:
    return None if s is None else datetime.fromisoformat(s)


def _why(path: str, e: sqlite3.Error | OSError) -> str:
    """SQLite says "unable to open database file" for a missing folder, too."""
    folder = Path(path).parent
    if path != ":memory:" and not folder.is_dir():
        return f"{folder} is not a folder" if folder.exists() else f"no folder {folder}"
    if path != ":memory:" and not os.access(folder, os.W_OK):
        return f"{folder} is not writable"
    return e.strerror or str(e) if isinstance(e, OSError) else str(e)


@dataclass(frozen=True)
class StoredSession:
    transaction_id: str
    station_id: str
    session_id: str
    """Unique in the database (the transaction id unless another station's has it)."""
    connector_id: str
    id_tag: str | None
    started_at: datetime
    meter_start_wh: float | None
    energy_wh: float | None
    """Last Energy.Active.Import.Register seen during the session."""
    departure: datetime | None
    energy_need_wh: float | None
    """The session's whole need, counted from its start (an EV states what it
    still wants: what was delivered by then is added)."""
    ev_max_current_a: float | None
    ev_min_current_a: float | None
    ended_at: datetime | None = None
    meter_stop_wh: float | None = None
    priority: float | None = None
    """Set by an operator (None: never set)."""

    @property
    def delivered_wh(self) -> float:
        end = self.meter_stop_wh if self.meter_stop_wh is not None else self.energy_wh
        if end is None or self.meter_start_wh is None:
            return 0.0
        return max(0.0, end - self.meter_start_wh)


@dataclass(frozen=True)
class StoredLimit:
    connector_id: str
    purpose: str
    start: datetime
    periods: tuple[tuple[int, float], ...]
    accepted_at: datetime


class Store(Protocol):
    """What the service asks of its storage (any backend)."""

    def record_event(self, event: DomainEvent) -> None: ...
    def next_transaction_id(self) -> int: ...
    def active_sessions(self) -> list[StoredSession]: ...
    def session(self, station_id: str, transaction_id: str) -> StoredSession | None: ...
    def session_by_id(self, session_id: str) -> StoredSession | None: ...
    def end_superseded(
        self, station_id: str, transaction_id: str, at: datetime, by_transaction_id: str
    ) -> None: ...
    def past_sessions(self, id_tag: str, limit: int = 20) -> list[PastSession]: ...
    def profile_sent(
        self,
        station_id: str,
        connector_id: str | None,
        purpose: str,
        transaction_id: str | None,
        start: datetime,
        periods: list[tuple[int, float]],
        sent_at: datetime,
    ) -> int: ...
    def profile_answered(
        self, profile_id: int, outcome: str, detail: str, at: datetime
    ) -> None: ...
    def profiles_sent(
        self,
        rows: Sequence[tuple[str, str | None, str, str | None, datetime, list[tuple[int, float]]]],
        sent_at: datetime,
    ) -> list[int]: ...
    def profiles_answered(self, rows: list[tuple[int, str, str]], at: datetime) -> None: ...
    def unanswered_profiles(self) -> list[StoredLimit]: ...
    def limits_in_force(self) -> list[StoredLimit]: ...
    def forget_limit(self, connector_id: str, purpose: str) -> None: ...
    def save_plan(self, plan: Plan, created_at: datetime, reason: str) -> int: ...
    def last_plan(self) -> dict[str, Any] | None: ...
    def plan_count(self) -> int: ...
    def put_state(self, key: str, value: Any) -> None: ...
    def get_state(self, key: str) -> Any | None: ...
    def save_forecast(
        self, group_id: str, kind: str, source: str, received_at: datetime, blocks: Any
    ) -> int: ...
    def audit(self, at: datetime, kind: str, subject: str, detail: dict[str, Any]) -> None: ...
    def audit_log(self, limit: int = 100) -> list[dict[str, Any]]: ...
    def audit_page(self, limit: int, before: int | None = None) -> list[dict[str, Any]]: ...
    def update_session(
        self,
        session_id: str,
        *,
        priority: float | None = None,
        departure: datetime | None = None,
        energy_need_wh: float | None = None,
    ) -> None: ...
    def recent_sessions(self, limit: int = 50) -> list[StoredSession]: ...
    def last_profiles(self) -> dict[str, dict[str, Any]]: ...
    def meter_last_all(self) -> dict[str, dict[str, Any]]: ...
    def meter_minutes_since(self, since: datetime) -> list[dict[str, Any]]: ...
    def stations(self) -> list[dict[str, Any]]: ...
    def meter_last(self, connector_id: str) -> dict[str, Any] | None: ...
    def meter_minutes(self, connector_id: str) -> list[dict[str, Any]]: ...
    def close(self) -> None: ...


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


class SqliteStore:
    """The SQLite backend (stdlib ``sqlite3``)."""

    def __init__(self, path: str | Path, *, synchronous: str = "NORMAL") -> None:
        self.path = str(path)
        if synchronous.upper() not in ("OFF", "NORMAL", "FULL", "EXTRA"):
            raise StoreError(f"synchronous must be OFF, NORMAL, FULL or EXTRA, not {synchronous}")
        try:
            if self.path != ":memory:":
                _owner_only(self.path)
            self._db = sqlite3.connect(self.path, isolation_level=None)
        except (sqlite3.Error, OSError) as e:
            raise StoreError(f"{self.path}: cannot open the database: {_why(self.path, e)}") from e
        try:
            self._db.row_factory = sqlite3.Row
            if self.path != ":memory:":
                self._db.execute("PRAGMA journal_mode=WAL")
                # SQLite gives the WAL and SHM files the database's mode; older files may not
                for suffix in ("-wal", "-shm"):
                    _owner_only(self.path + suffix, create=False)
            self._db.execute(f"PRAGMA synchronous={synchronous.upper()}")
            self._db.execute("PRAGMA foreign_keys=ON")
            with self._tx() as db:
                old = self._detach_v1_sessions(db)
                for stmt in _SCHEMA.split(";"):
                    if stmt.strip():
                        db.execute(stmt)
                if old:
                    self._copy_v1_sessions(db)
                db.execute(
                    "INSERT INTO meta (key, value) VALUES ('schema_version', ?) "
                    "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                    (str(SCHEMA_VERSION),),
                )
                if (
                    db.execute("SELECT 1 FROM meta WHERE key = 'next_transaction_id'").fetchone()
                    is None
                ):
                    db.execute(
                        "INSERT INTO meta (key, value) VALUES ('next_transaction_id', ?)",
                        (str(self._first_transaction_id(db)),),
                    )
        except sqlite3.Error as e:
            self._db.close()
            raise StoreError(f"{self.path}: cannot open the database: {_why(self.path, e)}") from e

    @staticmethod
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

    @staticmethod
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

    @staticmethod
    def _first_transaction_id(db: sqlite3.Connection) -> int:
        """Above every numeric transaction id stored (ids a previous version issued)."""
        top = 0
        for (tx,) in db.execute("SELECT transaction_id FROM sessions"):
            if tx.isdecimal() and int(tx) <= _MAX_TRANSACTION_ID:
                top = max(top, int(tx))
        return top + 1

    def next_transaction_id(self) -> int:
        """A 1.6 transaction id never handed out before by this database: committed
        before it is returned, so a crash and restart cannot issue it again."""
        with self._tx() as db:
            n = int(
                db.execute("SELECT value FROM meta WHERE key = 'next_transaction_id'").fetchone()[0]
            )
            if n > _MAX_TRANSACTION_ID:
                raise StoreError("the 1.6 transaction ids of this database are used up")
            db.execute("UPDATE meta SET value = ? WHERE key = 'next_transaction_id'", (str(n + 1),))
        return n

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield self._db
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    def close(self) -> None:
        try:
            if self.path != ":memory:":
                self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        finally:
            self._db.close()

    # --- events ---------------------------------------------------------------------------

    def record_event(self, event: DomainEvent) -> None:
        """Store what the event says; committed when this returns."""
        with self._tx() as db:
            match event:
                case StationConnected():
                    db.execute(
                        "INSERT INTO stations (id, protocol, connected, connected_at) "
                        "VALUES (?, ?, 1, ?) ON CONFLICT (id) DO UPDATE SET "
                        "protocol = excluded.protocol, connected = 1, "
                        "connected_at = excluded.connected_at",
                        (event.station_id, event.protocol, _iso(event.at)),
                    )
                case StationBooted():
                    db.execute(
                        "INSERT INTO stations (id, vendor, model, firmware, booted_at) "
                        "VALUES (?, ?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET "
                        "vendor = excluded.vendor, model = excluded.model, "
                        "firmware = excluded.firmware, booted_at = excluded.booted_at",
                        (
                            event.station_id,
                            event.vendor,
                            event.model,
                            event.firmware,
                            _iso(event.at),
                        ),
                    )
                case StationDisconnected():
                    db.execute(
                        "UPDATE stations SET connected = 0, disconnected_at = ? WHERE id = ?",
                        (_iso(event.at), event.station_id),
                    )
                case ConnectorStatusChanged():
                    db.execute(
                        "INSERT INTO connectors (id, status, error_code, at) VALUES (?, ?, ?, ?) "
                        "ON CONFLICT (id) DO UPDATE SET status = excluded.status, "
                        "error_code = excluded.error_code, at = excluded.at",
                        (event.connector_id, event.status, event.error_code, _iso(event.at)),
                    )
                case SessionStarted():
                    self._session_started(db, event)
                case SessionEnded():
                    self._session_ended(db, event)
                case MeterReading():
                    self._meter(db, event)
                case EvChargingNeeds():
                    db.execute(
                        "UPDATE sessions SET departure = COALESCE(?, departure), "
                        "energy_need_wh = COALESCE("
                        "? + MAX(COALESCE(energy_wh - meter_start_wh, 0), 0), energy_need_wh), "
                        "ev_max_a = COALESCE(?, ev_max_a), ev_min_a = COALESCE(?, ev_min_a) "
                        "WHERE connector_id = ? AND ended_at IS NULL",
                        (
                            _iso(event.departure),
                            event.energy_wh,
                            event.ev_max_current_a,
                            event.ev_min_current_a,
                            event.connector_id,
                        ),
                    )
                case ExternalLimitNotified():
                    self._audit(
                        db,
                        event.at,
                        "external_limit",
                        event.connector_id or event.station_id,
                        {"source": event.source, "limit_a": event.limit_a},
                    )

    def _session_started(self, db: sqlite3.Connection, e: SessionStarted) -> None:
        station = station_of(e.connector_id)
        row = db.execute(
            "SELECT connector_id, started_at FROM sessions "
            "WHERE station_id = ? AND transaction_id = ?",
            (station, e.transaction_id),
        ).fetchone()
        if row is not None:
            if row["connector_id"] == e.connector_id and row["started_at"] == _iso(e.at):
                return  # the station sent it again (its answer was lost)
            raise SessionConflict(
                station,
                e.transaction_id,
                f"stored as started on {row['connector_id']} at {row['started_at']}, "
                f"now said to start on {e.connector_id} at {_iso(e.at)}",
            )
        db.execute(
            "INSERT INTO sessions (station_id, transaction_id, session_id, connector_id, "
            "id_tag, started_at, meter_start_wh, energy_wh, offline) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                station,
                e.transaction_id,
                self._new_session_id(db, station, e.transaction_id),
                e.connector_id,
                e.id_tag,
                _iso(e.at),
                e.meter_start_wh,
                e.meter_start_wh,
                int(e.offline),
            ),
        )

    @staticmethod
    def _new_session_id(db: sqlite3.Connection, station: str, tx: str) -> str:
        """The transaction id, unless a session of another station has it."""
        candidates = itertools.chain(
            (tx, f"{tx}@{station}"), (f"{tx}@{station}~{n}" for n in itertools.count(2))
        )
        for candidate in candidates:
            if (
                db.execute("SELECT 1 FROM sessions WHERE session_id = ?", (candidate,)).fetchone()
                is None
            ):
                return candidate
        raise AssertionError("unreachable")

    def _session_ended(self, db: sqlite3.Connection, e: SessionEnded) -> None:
        key = ended_key(e)
        if key is None:
            return
        # only an open session ends: a repeated stop changes nothing already stored
        cur = db.execute(
            "UPDATE sessions SET ended_at = ?, meter_stop_wh = ?, stop_reason = ?, "
            "energy_wh = COALESCE(?, energy_wh) "
            "WHERE station_id = ? AND transaction_id = ? AND ended_at IS NULL",
            (_iso(e.at), e.meter_stop_wh, e.reason, e.meter_stop_wh, *key),
        )
        if cur.rowcount:
            db.execute(
                "DELETE FROM limits_in_force WHERE purpose = 'tx' AND connector_id = "
                "(SELECT connector_id FROM sessions WHERE station_id = ? AND transaction_id = ?)",
                key,
            )

    def _meter(self, db: sqlite3.Connection, r: MeterReading) -> None:
        power = r.total_power_w
        if power is None and r.power_w:
            power = sum(r.power_w.values())
        db.execute(
            "INSERT INTO meter_last (connector_id, at, transaction_id, current_json, offered_a, "
            "power_w, energy_wh, soc_pct) VALUES (?, ?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (connector_id) DO UPDATE SET at = excluded.at, "
            "transaction_id = excluded.transaction_id, current_json = excluded.current_json, "
            "offered_a = excluded.offered_a, power_w = excluded.power_w, "
            "energy_wh = COALESCE(excluded.energy_wh, meter_last.energy_wh), "
            "soc_pct = COALESCE(excluded.soc_pct, meter_last.soc_pct) "
            "WHERE excluded.at >= meter_last.at",
            (
                r.connector_id,
                _iso(r.at),
                r.transaction_id,
                json.dumps(r.current_a),
                r.current_offered_a,
                power,
                r.energy_wh,
                r.soc_pct,
            ),
        )
        at = r.at if r.at.tzinfo else r.at.replace(tzinfo=UTC)
        minute = at.astimezone(UTC).replace(second=0, microsecond=0).isoformat()
        c = r.current_a
        db.execute(
            "INSERT INTO meter_minute VALUES (?, ?, 1, ?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (connector_id, minute) DO UPDATE SET n = n + 1, "
            "l1_sum = l1_sum + excluded.l1_sum, l2_sum = l2_sum + excluded.l2_sum, "
            "l3_sum = l3_sum + excluded.l3_sum, power_sum = power_sum + excluded.power_sum, "
            "power_n = power_n + excluded.power_n, "
            "energy_wh = MAX(COALESCE(energy_wh, 0), COALESCE(excluded.energy_wh, 0)), "
            "soc_pct = COALESCE(excluded.soc_pct, soc_pct)",
            (
                r.connector_id,
                minute,
                c.get("L1", 0.0),
                c.get("L2", 0.0),
                c.get("L3", 0.0),
                power or 0.0,
                0 if power is None else 1,
                r.energy_wh,
                r.soc_pct,
            ),
        )
        if r.energy_wh is not None:
            # the register only grows: keep the session's highest value
            if r.transaction_id is not None:
                db.execute(
                    "UPDATE sessions SET energy_wh = MAX(COALESCE(energy_wh, 0), ?) "
                    "WHERE station_id = ? AND transaction_id = ? AND ended_at IS NULL",
                    (r.energy_wh, station_of(r.connector_id), r.transaction_id),
                )
            else:
                db.execute(
                    "UPDATE sessions SET energy_wh = MAX(COALESCE(energy_wh, 0), ?) "
                    "WHERE connector_id = ? AND ended_at IS NULL",
                    (r.energy_wh, r.connector_id),
                )

    # --- sessions -------------------------------------------------------------------------

    @staticmethod
    def _session(row: sqlite3.Row) -> StoredSession:
        return StoredSession(
            transaction_id=row["transaction_id"],
            station_id=row["station_id"],
            session_id=row["session_id"],
            connector_id=row["connector_id"],
            id_tag=row["id_tag"],
            started_at=datetime.fromisoformat(row["started_at"]),
            meter_start_wh=row["meter_start_wh"],
            energy_wh=row["energy_wh"],
            departure=_dt(row["departure"]),
            energy_need_wh=row["energy_need_wh"],
            ev_max_current_a=row["ev_max_a"],
            ev_min_current_a=row["ev_min_a"],
            ended_at=_dt(row["ended_at"]),
            meter_stop_wh=row["meter_stop_wh"],
            priority=row["priority"],
        )

    def active_sessions(self) -> list[StoredSession]:
        """Open sessions, by start; of two with one start, the one stored last last."""
        rows = self._db.execute(
            "SELECT * FROM sessions WHERE ended_at IS NULL ORDER BY started_at, rowid"
        ).fetchall()
        return [self._session(r) for r in rows]

    def session(self, station_id: str, transaction_id: str) -> StoredSession | None:
        """The station's session of that transaction."""
        row = self._db.execute(
            "SELECT * FROM sessions WHERE station_id = ? AND transaction_id = ?",
            (station_id, transaction_id),
        ).fetchone()
        return None if row is None else self._session(row)

    def session_by_id(self, session_id: str) -> StoredSession | None:
        """The session with that ``session_id`` (the API's id, unique in the database)."""
        row = self._db.execute(
            "SELECT * FROM sessions WHERE session_id = ?", (session_id,)
        ).fetchone()
        return None if row is None else self._session(row)

    def end_superseded(
        self, station_id: str, transaction_id: str, at: datetime, by_transaction_id: str
    ) -> None:
        """End an open session another one started after on its connector (the
        station never said it ended). Its connector's limits stay: they are the
        later session's."""
        with self._tx() as db:
            cur = db.execute(
                "UPDATE sessions SET ended_at = ?, stop_reason = 'Superseded' "
                "WHERE station_id = ? AND transaction_id = ? AND ended_at IS NULL",
                (_iso(at), station_id, transaction_id),
            )
            if cur.rowcount:
                self._audit(
                    db,
                    at,
                    "session_superseded",
                    f"{station_id}/{transaction_id}",
                    {"by": by_transaction_id},
                )

    def past_sessions(self, id_tag: str, limit: int = 20) -> list[PastSession]:
        """The idTag's last ``limit`` finished sessions, oldest first."""
        rows = self._db.execute(
            "SELECT * FROM sessions WHERE id_tag = ? AND ended_at IS NOT NULL "
            "ORDER BY ended_at DESC LIMIT ?",
            (id_tag, limit),
        ).fetchall()
        out = []
        for s in map(self._session, reversed(rows)):
            if s.ended_at is not None:
                out.append(PastSession(id_tag, s.started_at, s.ended_at, s.delivered_wh / 1000.0))
        return out

    # --- profiles and limits ---------------------------------------------------------------

    def profile_sent(
        self,
        station_id: str,
        connector_id: str | None,
        purpose: str,
        transaction_id: str | None,
        start: datetime,
        periods: list[tuple[int, float]],
        sent_at: datetime,
    ) -> int:
        with self._tx() as db:
            cur = db.execute(
                "INSERT INTO profiles (station_id, connector_id, purpose, transaction_id, start, "
                "periods_json, sent_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    station_id,
                    connector_id,
                    purpose,
                    transaction_id,
                    _iso(start),
                    json.dumps(periods),
                    _iso(sent_at),
                ),
            )
            return int(cur.lastrowid or 0)

    def profiles_sent(
        self,
        rows: Sequence[tuple[str, str | None, str, str | None, datetime, list[tuple[int, float]]]],
        sent_at: datetime,
    ) -> list[int]:
        """Many `profile_sent` in one transaction: (station, connector, purpose,
        transaction, start, periods) each; returns their ids in order."""
        ids = []
        with self._tx() as db:
            for station_id, connector_id, purpose, tx, start, periods in rows:
                cur = db.execute(
                    "INSERT INTO profiles (station_id, connector_id, purpose, transaction_id, "
                    "start, periods_json, sent_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (
                        station_id,
                        connector_id,
                        purpose,
                        tx,
                        _iso(start),
                        json.dumps(periods),
                        _iso(sent_at),
                    ),
                )
                ids.append(int(cur.lastrowid or 0))
        return ids

    def profiles_answered(self, rows: list[tuple[int, str, str]], at: datetime) -> None:
        """Many `profile_answered` in one transaction: (profile id, outcome, detail) each."""
        when = _iso(at)
        accepted = [pid for pid, outcome, _ in rows if outcome == "accepted"]
        with self._tx() as db:
            db.executemany(
                "UPDATE profiles SET outcome = ?, detail = ?, answered_at = ? WHERE id = ?",
                [(outcome, detail, when, pid) for pid, outcome, detail in rows],
            )
            for i in range(0, len(accepted), 500):
                chunk = accepted[i : i + 500]
                marks = ",".join("?" * len(chunk))
                db.execute(
                    "INSERT INTO limits_in_force (connector_id, purpose, start, periods_json, "
                    "accepted_at, profile_id) SELECT COALESCE(connector_id, station_id), purpose, "
                    f"start, periods_json, ?, id FROM profiles WHERE id IN ({marks}) ORDER BY id "
                    "ON CONFLICT (connector_id, purpose) DO UPDATE SET start = excluded.start, "
                    "periods_json = excluded.periods_json, accepted_at = excluded.accepted_at, "
                    "profile_id = excluded.profile_id",
                    (when, *chunk),
                )
                db.execute(
                    "INSERT INTO audit (at, kind, subject, detail_json) SELECT ?, "
                    "'limit_accepted', COALESCE(connector_id, station_id), "
                    "json_object('purpose', purpose, 'periods', json(periods_json)) "
                    f"FROM profiles WHERE id IN ({marks}) ORDER BY id",
                    (when, *chunk),
                )

    def unanswered_profiles(self) -> list[StoredLimit]:
        """Transaction profiles sent and never answered (or timed out): possibly in force."""
        rows = self._db.execute(
            "SELECT p.* FROM profiles p JOIN sessions s ON s.station_id = p.station_id "
            "AND s.transaction_id = p.transaction_id WHERE s.ended_at IS NULL AND p.purpose = 'tx' "
            "AND (p.outcome IS NULL OR p.outcome = 'timeout') AND p.id > COALESCE("
            "(SELECT profile_id FROM limits_in_force l WHERE l.connector_id = p.connector_id "
            "AND l.purpose = 'tx'), 0)"
        ).fetchall()
        return [
            StoredLimit(
                r["connector_id"],
                r["purpose"],
                datetime.fromisoformat(r["start"]),
                tuple((int(o), float(a)) for o, a in json.loads(r["periods_json"])),
                datetime.fromisoformat(r["sent_at"]),
            )
            for r in rows
        ]

    def profile_answered(self, profile_id: int, outcome: str, detail: str, at: datetime) -> None:
        with self._tx() as db:
            self._answered(db, profile_id, outcome, detail, at)

    def _answered(
        self, db: sqlite3.Connection, profile_id: int, outcome: str, detail: str, at: datetime
    ) -> None:
        db.execute(
            "UPDATE profiles SET outcome = ?, detail = ?, answered_at = ? WHERE id = ?",
            (outcome, detail, _iso(at), profile_id),
        )
        if outcome != "accepted":
            return
        row = db.execute("SELECT * FROM profiles WHERE id = ?", (profile_id,)).fetchone()
        key = row["connector_id"] or row["station_id"]
        db.execute(
            "INSERT INTO limits_in_force VALUES (?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (connector_id, purpose) DO UPDATE SET start = excluded.start, "
            "periods_json = excluded.periods_json, accepted_at = excluded.accepted_at, "
            "profile_id = excluded.profile_id",
            (key, row["purpose"], row["start"], row["periods_json"], _iso(at), profile_id),
        )
        self._audit(
            db,
            at,
            "limit_accepted",
            key,
            {"purpose": row["purpose"], "periods": json.loads(row["periods_json"])},
        )

    def limits_in_force(self) -> list[StoredLimit]:
        rows = self._db.execute("SELECT * FROM limits_in_force").fetchall()
        return [
            StoredLimit(
                r["connector_id"],
                r["purpose"],
                datetime.fromisoformat(r["start"]),
                tuple((int(o), float(a)) for o, a in json.loads(r["periods_json"])),
                datetime.fromisoformat(r["accepted_at"]),
            )
            for r in rows
        ]

    def forget_limit(self, connector_id: str, purpose: str) -> None:
        with self._tx() as db:
            db.execute(
                "DELETE FROM limits_in_force WHERE connector_id = ? AND purpose = ?",
                (connector_id, purpose),
            )

    # --- plans, forecasts, audit -------------------------------------------------------------

    def save_plan(self, plan: Plan, created_at: datetime, reason: str) -> int:
        buf = io.BytesIO()
        np.save(buf, plan.current_a.astype(np.float32), allow_pickle=False)
        # slot 0 of every connector at once (``now_a`` one by one is slow on large sites)
        first = plan.current_a[:, 0].tolist() if plan.connector_ids else []
        now = {cid: round(a, 1) for cid, a in zip(plan.connector_ids, first, strict=True)}
        with self._tx() as db:
            cur = db.execute(
                "INSERT INTO plans (created_at, reason, grid_start, slot_minutes, slots, status, "
                "solve_ms, summary_json, now_json, current_npy) VALUES (?,?,?,?,?,?,?,?,?,?)",
                (
                    _iso(created_at),
                    reason,
                    _iso(plan.grid.start),
                    plan.grid.slot_minutes,
                    plan.grid.slots,
                    plan.status.value,
                    plan.solve_ms,
                    json.dumps(plan.summary()),
                    json.dumps(now),
                    buf.getvalue(),
                ),
            )
            return int(cur.lastrowid or 0)

    def last_plan(self) -> dict[str, Any] | None:
        row = self._db.execute("SELECT * FROM plans ORDER BY id DESC LIMIT 1").fetchone()
        if row is None:
            return None
        return {
            "id": row["id"],
            "created_at": row["created_at"],
            "reason": row["reason"],
            "grid_start": row["grid_start"],
            "slot_minutes": row["slot_minutes"],
            "status": row["status"],
            "solve_ms": row["solve_ms"],
            "summary": json.loads(row["summary_json"]),
            "now_a": json.loads(row["now_json"]),
            "current_a": np.load(io.BytesIO(row["current_npy"]), allow_pickle=False),
        }

    def plan_count(self) -> int:
        return int(self._db.execute("SELECT COUNT(*) FROM plans").fetchone()[0])

    def save_forecast(
        self, group_id: str, kind: str, source: str, received_at: datetime, blocks: Any
    ) -> int:
        with self._tx() as db:
            cur = db.execute(
                "INSERT INTO forecasts (group_id, kind, source, received_at, blocks_json) "
                "VALUES (?, ?, ?, ?, ?)",
                (group_id, kind, source, _iso(received_at), json.dumps(blocks, default=str)),
            )
            return int(cur.lastrowid or 0)

    def put_state(self, key: str, value: Any) -> None:
        """Keep a JSON document under ``key`` (e.g. the capacity book's export)."""
        with self._tx() as db:
            db.execute(
                "INSERT INTO meta (key, value) VALUES (?, ?) "
                "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (f"state:{key}", json.dumps(value, default=str)),
            )

    def get_state(self, key: str) -> Any | None:
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (f"state:{key}",)).fetchone()
        return None if row is None else json.loads(row["value"])

    def audit(self, at: datetime, kind: str, subject: str, detail: dict[str, Any]) -> None:
        with self._tx() as db:
            self._audit(db, at, kind, subject, detail)

    @staticmethod
    def _audit(
        db: sqlite3.Connection, at: datetime, kind: str, subject: str, detail: dict[str, Any]
    ) -> None:
        db.execute(
            "INSERT INTO audit (at, kind, subject, detail_json) VALUES (?, ?, ?, ?)",
            (_iso(at), kind, subject, json.dumps(detail, default=str)),
        )

    def audit_log(self, limit: int = 100) -> list[dict[str, Any]]:
        rows = self._db.execute("SELECT * FROM audit ORDER BY id DESC LIMIT ?", (limit,)).fetchall()
        return [
            {
                "at": r["at"],
                "kind": r["kind"],
                "subject": r["subject"],
                "detail": json.loads(r["detail_json"]),
            }
            for r in rows
        ]

    def audit_page(self, limit: int, before: int | None = None) -> list[dict[str, Any]]:
        """Audit entries newest first, with their ids: at most ``limit`` with id < ``before``."""
        rows = self._db.execute(
            "SELECT * FROM audit WHERE id < ? ORDER BY id DESC LIMIT ?",
            (before if before is not None else 2**62, limit),
        ).fetchall()
        return [
            {
                "id": r["id"],
                "at": r["at"],
                "kind": r["kind"],
                "subject": r["subject"],
                "detail": json.loads(r["detail_json"]),
            }
            for r in rows
        ]

    def update_session(
        self,
        session_id: str,
        *,
        priority: float | None = None,
        departure: datetime | None = None,
        energy_need_wh: float | None = None,
    ) -> None:
        """An operator's change to a running session (None leaves a field as it is)."""
        with self._tx() as db:
            db.execute(
                "UPDATE sessions SET priority = COALESCE(?, priority), "
                "departure = COALESCE(?, departure), "
                "energy_need_wh = COALESCE(?, energy_need_wh) WHERE session_id = ?",
                (priority, _iso(departure), energy_need_wh, session_id),
            )

    def recent_sessions(self, limit: int = 50) -> list[StoredSession]:
        """Ended sessions, the latest first."""
        rows = self._db.execute(
            "SELECT * FROM sessions WHERE ended_at IS NOT NULL ORDER BY ended_at DESC LIMIT ?",
            (limit,),
        ).fetchall()
        return [self._session(r) for r in rows]

    def last_profiles(self) -> dict[str, dict[str, Any]]:
        """Per connector: the last transaction profile sent and its answer (None: pending)."""
        rows = self._db.execute(
            "SELECT p.connector_id, p.periods_json, p.sent_at, p.outcome FROM profiles p "
            "JOIN (SELECT connector_id, MAX(id) AS id FROM profiles "
            "WHERE connector_id IS NOT NULL GROUP BY connector_id) m ON m.id = p.id"
        ).fetchall()
        return {
            r["connector_id"]: {
                "periods": json.loads(r["periods_json"]),
                "sent_at": datetime.fromisoformat(r["sent_at"]),
                "outcome": r["outcome"],
            }
            for r in rows
        }

    def meter_last_all(self) -> dict[str, dict[str, Any]]:
        out = {}
        for row in self._db.execute("SELECT * FROM meter_last"):
            d = dict(row)
            d["current_a"] = json.loads(d.pop("current_json") or "{}")
            out[d["connector_id"]] = d
        return out

    def meter_minutes_since(self, since: datetime) -> list[dict[str, Any]]:
        """One-minute averages of every connector from ``since`` on, by minute."""
        rows = self._db.execute(
            "SELECT * FROM meter_minute WHERE minute >= ? ORDER BY minute, connector_id",
            (_iso(since.replace(second=0, microsecond=0)),),
        ).fetchall()
        return [
            {
                "connector_id": r["connector_id"],
                "minute": datetime.fromisoformat(r["minute"]),
                "current_a": {
                    "L1": r["l1_sum"] / r["n"],
                    "L2": r["l2_sum"] / r["n"],
                    "L3": r["l3_sum"] / r["n"],
                },
                "power_w": r["power_sum"] / r["power_n"] if r["power_n"] else None,
            }
            for r in rows
        ]

    # --- views ----------------------------------------------------------------------------------

    def stations(self) -> list[dict[str, Any]]:
        return [dict(r) for r in self._db.execute("SELECT * FROM stations ORDER BY id")]

    def meter_last(self, connector_id: str) -> dict[str, Any] | None:
        row = self._db.execute(
            "SELECT * FROM meter_last WHERE connector_id = ?", (connector_id,)
        ).fetchone()
        if row is None:
            return None
        out = dict(row)
        out["current_a"] = json.loads(out.pop("current_json") or "{}")
        return out

    def meter_minutes(self, connector_id: str) -> list[dict[str, Any]]:
        rows = self._db.execute(
            "SELECT * FROM meter_minute WHERE connector_id = ? ORDER BY minute", (connector_id,)
        ).fetchall()
        out = []
        for r in rows:
            n = r["n"]
            out.append(
                {
                    "minute": r["minute"],
                    "samples": n,
                    "current_a": {
                        "L1": r["l1_sum"] / n,
                        "L2": r["l2_sum"] / n,
                        "L3": r["l3_sum"] / n,
                    },
                    "power_w": r["power_sum"] / r["power_n"] if r["power_n"] else None,
                    "energy_wh": r["energy_wh"],
                    "soc_pct": r["soc_pct"],
                }
            )
        return out


def _owner_only(path: str, *, create: bool = True) -> None:
    """Make ``path`` readable and writable by its owner only (created empty if
    missing and ``create``), before SQLite writes anything into it."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        if create:
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        return
    if mode & 0o077:
        try:
            os.chmod(path, 0o600)
        except PermissionError:  # not ours: say so, it still opens
            log.warning("%s is readable by others and not ours to change", path)


def open_store(url: str) -> Store:
    """A store for ``url``: ``sqlite:///relative.db``, ``sqlite:////abs.db``,
    ``sqlite://:memory:`` or a plain file path."""
    if "://" not in url:
        return SqliteStore(url)
    parts = urlsplit(url)
    if parts.scheme != "sqlite":
        raise UnsupportedDatabase(f"no backend for {parts.scheme!r} (supported: sqlite)")
    path = parts.netloc + parts.path
    if path.startswith("/") and not parts.netloc:
        path = path[1:]
    options = {k: v[-1] for k, v in parse_qs(parts.query).items()}
    return SqliteStore(path or ":memory:", synchronous=options.get("synchronous", "NORMAL"))
