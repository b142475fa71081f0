"""The PostgreSQL backend (psycopg 3): the same tables and SQL as SQLite's.

`PgConnection` gives the parts what they ask of a connection: statements
written with ``?`` placeholders (turned into psycopg's ``%s`` once per
statement), rows that answer both ``r[0]`` and ``r["name"]``, and psycopg's
errors as `DatabaseError` (a `StoreError`). It runs in autocommit mode: the
parts open their own short transactions, as on SQLite.

Durability: ``synchronous_commit`` is set ``on`` for the connection, so a
committed transaction is in PostgreSQL's write-ahead log on disk when the call
returns, whatever the server's default; a station's message is acknowledged
only after that.

The schema follows ``search_path`` (``?options=-csearch_path%3Dsite1`` in the
URL): several databases in one PostgreSQL, as the tests use it.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Iterator, Sequence
from typing import Any
from urllib.parse import parse_qs, urlsplit, urlunsplit

import psycopg
from psycopg.rows import RowMaker

from gridshare.store.connection import POSTGRESQL, Dialect
from gridshare.store.errors import DatabaseError
from gridshare.store.schema import create_or_upgrade
from gridshare.store.tables import StoreTables

log = logging.getLogger(__name__)

CONNECT_TIMEOUT_S = 10
"""How long opening a connection may take (unless the URL says)."""


class PgRow:
    """A row read by name or by position, iterated as its values (as `sqlite3.Row`)."""

    __slots__ = ("_index", "_values")

    def __init__(self, values: Sequence[Any], index: dict[str, int]) -> None:
        self._values = values
        self._index = index

    def __getitem__(self, key: int | str) -> Any:
        return self._values[key if isinstance(key, int) else self._index[key]]

    def keys(self) -> list[str]:
        return list(self._index)

    def __iter__(self) -> Iterator[Any]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __repr__(self) -> str:
        return f"PgRow({dict(zip(self._index, self._values, strict=True))})"


def _rows(cursor: psycopg.Cursor[Any]) -> RowMaker[PgRow]:
    names = [c.name for c in cursor.description or ()]
    index = {name: i for i, name in enumerate(names)}
    return functools.partial(PgRow, index=index)


@functools.lru_cache(maxsize=1024)
def _placeholders(sql: str) -> str:
    """``?`` → ``%s`` and a literal ``%`` doubled, outside quoted strings."""
    out, quoted = [], False
    for ch in sql:
        if ch == "'":
            quoted = not quoted
        if not quoted and ch == "?":
            out.append("%s")
        elif ch == "%":
            out.append("%%")
        else:
            out.append(ch)
    return "".join(out)


class PgConnection:
    """A psycopg connection in the shape of the SQLite one the parts use.

    A connection lost (the server restarted, a failover) is opened again at the
    next transaction: the one it broke fails (`DatabaseError`, so what it held
    was not acknowledged), the ones after it go on."""

    dialect: Dialect = POSTGRESQL

    def __init__(self, url: str) -> None:
        self._url = url
        self._conn = _open(url)
        self._in_tx = False
        self._closed = False

    def execute(self, sql: str, parameters: Any = (), /) -> psycopg.Cursor[PgRow]:
        lost = (self._conn.broken or self._conn.closed) and not self._closed
        if lost and (not self._in_tx or sql == "ROLLBACK"):
            self._reopen()  # idle, or rolling back what the loss undid already
        if sql in ("COMMIT", "ROLLBACK"):  # the transaction ends however the call does
            self._in_tx = False
        query = _placeholders(sql)
        try:
            try:
                cur = self._conn.execute(query, tuple(parameters))
            except psycopg.OperationalError:
                if sql != self.dialect.begin or not self._conn.broken:
                    raise
                self._reopen()  # lost while idle: nothing was done yet, begin again
                cur = self._conn.execute(query, tuple(parameters))
        except psycopg.Error as e:
            raise DatabaseError(f"PostgreSQL: {e}".strip()) from e
        if sql == self.dialect.begin:
            self._in_tx = True
        return cur

    def _reopen(self) -> None:
        log.warning("PostgreSQL connection lost: connecting again to %s", redacted(self._url))
        self._conn = _open(self._url)

    def executemany(self, sql: str, parameters: Any, /) -> psycopg.Cursor[PgRow]:
        cur = self._conn.cursor()
        try:
            cur.executemany(_placeholders(sql), [tuple(p) for p in parameters])
        except psycopg.Error as e:
            raise DatabaseError(f"PostgreSQL: {e}".strip()) from e
        return cur

    def close(self) -> None:
        self._closed = True
        self._conn.close()


def redacted(url: str) -> str:
    """The URL without its password (for messages)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port else ""
    return urlunsplit(parts._replace(netloc=f"{parts.username}:***@{host}{port}"))


def _open(url: str) -> psycopg.Connection[PgRow]:
    """An autocommit connection, commits durable before they return."""
    given = "connect_timeout" in parse_qs(urlsplit(url).query)
    extra: dict[str, Any] = {} if given else {"connect_timeout": CONNECT_TIMEOUT_S}
    try:
        conn = psycopg.connect(url, autocommit=True, row_factory=_rows, **extra)
        conn.execute("SET synchronous_commit = on")
    except psycopg.Error as e:
        raise DatabaseError(f"{redacted(url)}: cannot connect: {e}".strip()) from e
    return conn


def connect_postgres(url: str) -> PgConnection:
    return PgConnection(url)


class PostgresStore(StoreTables):
    """The PostgreSQL backend: one part per table, one connection."""

    def __init__(self, url: str) -> None:
        self.path = url
        self._db = db = connect_postgres(url)
        try:
            with self._tx():
                create_or_upgrade(db)
        except BaseException:
            db.close()
            raise
