"""The connection every table of the store works through: one short transaction a call.

Each table's part of the store (stations, sessions, meter values, profiles and
limits, plans, forecasts, audit) is a mixin of `Tables`, which holds the
connection and opens the transactions. The parts write their SQL once, in the
dialect SQLite and PostgreSQL share; where they differ a part asks the
connection's `Dialect` (the PostgreSQL connection also turns ``?`` into its
own placeholders, see `gridshare.store.postgres`).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, ClassVar, Protocol


@dataclass(frozen=True)
class Dialect:
    """What SQLite and PostgreSQL spell differently, as the parts need it."""

    name: str
    begin: str
    """Opens a write transaction (SQLite takes the write lock at once)."""
    greatest: str
    """The larger of two values (SQLite: two-argument MAX). The parts give it no
    NULL: SQLite's then answers NULL where PostgreSQL's ignores it."""
    row_id: str
    """The physical row id a batch of deletes names its rows by."""
    insert_order: str
    """A column that orders a table's rows as they were stored (sessions)."""

    def json_object(self, *pairs: str) -> str:
        """A JSON object of (SQL key, SQL value) pairs, as text."""
        args = ", ".join(pairs)
        if self.name == "sqlite":
            return f"json_object({args})"
        return f"CAST(json_build_object({args}) AS TEXT)"

    def json(self, text_sql: str) -> str:
        """A text column holding JSON, as a JSON value inside `json_object`."""
        return f"json({text_sql})" if self.name == "sqlite" else f"CAST({text_sql} AS JSON)"


SQLITE = Dialect("sqlite", "BEGIN IMMEDIATE", "MAX", "rowid", "rowid")
POSTGRESQL = Dialect("postgresql", "BEGIN", "GREATEST", "ctid", "seq")
"""PostgreSQL's ``ctid`` is stable within the statement that reads and deletes
by it; it is no insertion order, so its ``sessions`` table has a ``seq``."""


class Cursor(Protocol):
    """What a part reads back from a statement (rows answer ``r[0]`` and ``r["name"]``)."""

    @property
    def rowcount(self) -> int: ...
    def fetchone(self) -> Any: ...
    def fetchall(self) -> list[Any]: ...
    def __iter__(self) -> Iterator[Any]: ...


class Db(Protocol):
    """A connection of either engine, as the parts use it (autocommit; `Tables._tx`
    opens the transactions)."""

    @property
    def dialect(self) -> Dialect: ...
    def execute(self, sql: str, parameters: Any = ..., /) -> Cursor: ...
    def executemany(self, sql: str, parameters: Any, /) -> Cursor: ...
    def close(self) -> None: ...


class SqliteConnection(sqlite3.Connection):
    """`sqlite3.Connection` that names its dialect (made by ``sqlite3.connect(...,
    factory=SqliteConnection)``)."""

    dialect: ClassVar[Dialect] = SQLITE


def connect_sqlite(path: str, **kwargs: Any) -> SqliteConnection:
    """An autocommit connection to a SQLite file, rows by name and index."""
    db = sqlite3.connect(path, isolation_level=None, factory=SqliteConnection, **kwargs)
    db.row_factory = sqlite3.Row
    return db


class Tables:
    """The connection and its transactions, shared by every table's part."""

    path: str
    _db: Db

    @contextmanager
    def _tx(self) -> Iterator[Db]:
        self._db.execute(self._db.dialect.begin)
        try:
            yield self._db
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")


SqliteTables = Tables
"""The name the parts had while SQLite was the only engine."""


def iso(t: datetime | None) -> str | None:
    """A time as stored: ISO 8601 in UTC (a naive time is taken as UTC)."""
    if t is None:
        return None
    if t.tzinfo is None:
        t = t.replace(tzinfo=UTC)
    return t.astimezone(UTC).isoformat()


def from_iso(s: str | None) -> datetime | None:
    return None if s is None else datetime.fromisoformat(s)
