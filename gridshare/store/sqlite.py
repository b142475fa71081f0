"""The SQLite backend: opening the file with its settings.

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

from gridshare.store.connection import connect_sqlite
from gridshare.store.errors import StoreError
from gridshare.store.schema import create_or_upgrade, use_incremental_vacuum
from gridshare.store.tables import StoreTables

log = logging.getLogger(__name__)


class SqliteStore(StoreTables):
    """The SQLite backend (stdlib ``sqlite3``): one part per table, one connection."""

    def __init__(self, path: str | Path, *, synchronous: str = "NORMAL") -> None:
        self.path = str(path)
        if synchronous.upper() not in ("OFF", "NORMAL", "FULL", "EXTRA"):
            raise StoreError(f"synchronous must be OFF, NORMAL, FULL or EXTRA, not {synchronous}")
        try:
            if self.path != ":memory:":
                _owner_only(self.path)
            self._db = db = connect_sqlite(self.path)
        except (sqlite3.Error, OSError) as e:
            raise StoreError(f"{self.path}: cannot open the database: {_why(self.path, e)}") from e
        try:
            # before WAL and the tables: a new file then takes it without a VACUUM
            use_incremental_vacuum(db)
            if self.path != ":memory:":
                db.execute("PRAGMA journal_mode=WAL")
                # SQLite gives the WAL and SHM files the database's mode; older files may not
                for suffix in ("-wal", "-shm"):
                    _owner_only(self.path + suffix, create=False)
            db.execute(f"PRAGMA synchronous={synchronous.upper()}")
            db.execute("PRAGMA foreign_keys=ON")
            with self._tx():
                create_or_upgrade(db)
        except StoreError:
            db.close()
            raise
        except sqlite3.Error as e:
            db.close()
            raise StoreError(f"{self.path}: cannot open the database: {_why(self.path, e)}") from e

    def close(self) -> None:
        try:
            if self.path != ":memory:":
                self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        finally:
            self._db.close()


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
