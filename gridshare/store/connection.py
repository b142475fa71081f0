"""The connection every table of the store works through: one short transaction a call.

Each table's part of `SqliteStore` (stations, sessions, meter values, profiles
and limits, plans, forecasts, audit) is a mixin of `SqliteTables`, which holds
the connection and opens the transactions.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime


class SqliteTables:
    """The connection and its transactions, shared by every table's part."""

    path: str
    _db: sqlite3.Connection

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield self._db
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")


def iso(t: datetime | None) -> str | None:
    """A time as stored: ISO 8601 in UTC (a naive time is taken as UTC)."""
    if t is None:
        return None
    if t.tzinfo is None:
        t = t.replace(tzinfo=UTC)
    return t.astimezone(UTC).isoformat()


def from_iso(s: str | None) -> datetime | None:
    return None if s is None else datetime.fromisoformat(s)
