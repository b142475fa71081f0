"""The SQLite backend: opening the file, routing each event to its tables.

SQLite runs in WAL mode with ``synchronous=NORMAL``: a committed transaction
survives the process being killed; ``synchronous=FULL`` also survives a power
cut. The database file and its WAL/SHM files are created readable by the owner
only (they hold idTags).
"""

from __future__ import annotations

import logging
import os
import sqlite3
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from gridshare.store.audit import AuditLog, write_audit
from gridshare.store.errors import StoreError, UnsupportedDatabase
from gridshare.store.forecasts import ForecastTables
from gridshare.store.meter_readings import MeterReadingTables
from gridshare.store.meter_values import MeterTables
from gridshare.store.plans import PlanTable
from gridshare.store.profiles import ProfileTables
from gridshare.store.protocol import Store
from gridshare.store.schema import create_or_upgrade, use_incremental_vacuum
from gridshare.store.sessions import SessionTable
from gridshare.store.stations import StationTables
from ocpp_adapter.events import (
    ConnectorStatusChanged,
    DomainEvent,
    EvChargingNeeds,
    ExternalLimitNotified,
    MeterReading,
    PriorityChargingNotified,
    SessionEnded,
    SessionStarted,
    StationBooted,
    StationConnected,
    StationDisconnected,
)

log = logging.getLogger(__name__)


class SqliteStore(
    StationTables,
    SessionTable,
    MeterTables,
    MeterReadingTables,
    ProfileTables,
    PlanTable,
    ForecastTables,
    AuditLog,
):
    """The SQLite backend (stdlib ``sqlite3``): one part per table, one connection."""

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
            # before WAL and the tables: a new file then takes it without a VACUUM
            use_incremental_vacuum(self._db)
            if self.path != ":memory:":
                self._db.execute("PRAGMA journal_mode=WAL")
                # SQLite gives the WAL and SHM files the database's mode; older files may not
                for suffix in ("-wal", "-shm"):
                    _owner_only(self.path + suffix, create=False)
            self._db.execute(f"PRAGMA synchronous={synchronous.upper()}")
            self._db.execute("PRAGMA foreign_keys=ON")
            with self._tx() as db:
                create_or_upgrade(db)
        except sqlite3.Error as e:
            self._db.close()
            raise StoreError(f"{self.path}: cannot open the database: {_why(self.path, e)}") from e

    def close(self) -> None:
        try:
            if self.path != ":memory:":
                self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        finally:
            self._db.close()

    def record_event(self, event: DomainEvent) -> None:
        """Store what the event says; committed when this returns."""
        with self._tx() as db:
            match event:
                case StationConnected():
                    self._station_connected(db, event)
                case StationBooted():
                    self._station_booted(db, event)
                case StationDisconnected():
                    self._station_disconnected(db, event)
                case ConnectorStatusChanged():
                    self._connector_status(db, event)
                case SessionStarted():
                    self._session_started(db, event)
                case SessionEnded():
                    self._session_ended(db, event)
                case MeterReading():
                    self._meter_reading(db, event)
                case EvChargingNeeds():
                    self._ev_needs(db, event)
                case PriorityChargingNotified():
                    self._priority_charging(db, event)
                    what = {"transaction_id": event.transaction_id, "activated": event.activated}
                    write_audit(db, event.at, "priority_charging", event.station_id, what)
                case ExternalLimitNotified():
                    write_audit(
                        db,
                        event.at,
                        "external_limit",
                        event.connector_id or event.station_id,
                        {"source": event.source, "limit_a": event.limit_a},
                    )


def _why(path: str, e: sqlite3.Error | OSError) -> str:
    """SQLite says "unable to open database file" for a missing folder, too."""
    folder = Path(path).parent
    if path != ":memory:" and not folder.is_dir():
        return f"{folder} is not a folder" if folder.exists() else f"no folder {folder}"
    if path != ":memory:" and not os.access(folder, os.W_OK):
        return f"{folder} is not writable"
    return e.strerror or str(e) if isinstance(e, OSError) else str(e)


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
