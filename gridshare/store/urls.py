"""Which backend a database URL names, and a plain connection to it.

``sqlite:///relative.db``, ``sqlite:////abs.db``, ``sqlite://:memory:`` or a
bare path: SQLite (``?synchronous=FULL`` and the like as options);
``postgresql://user:password@host:port/database`` (or ``postgres://``, with
libpq's options in the query): PostgreSQL.
"""

from __future__ import annotations

from types import ModuleType
from urllib.parse import parse_qs, urlsplit

from gridshare.store.connection import Db, connect_sqlite
from gridshare.store.errors import StoreError, UnsupportedDatabase
from gridshare.store.protocol import Store
from gridshare.store.sqlite import SqliteStore

POSTGRES_SCHEMES = ("postgresql", "postgres")


def is_postgres(url: str) -> bool:
    return urlsplit(url).scheme in POSTGRES_SCHEMES if "://" in url else False


def sqlite_location(url: str) -> tuple[str, dict[str, str]]:
    """The file (or ``:memory:``) and options of a SQLite URL or path."""
    if "://" not in url:
        return url, {}
    parts = urlsplit(url)
    if parts.scheme != "sqlite":
        raise UnsupportedDatabase(
            f"no backend for {parts.scheme!r} (supported: sqlite, postgresql)"
        )
    path = parts.netloc + parts.path
    if path.startswith("/") and not parts.netloc:
        path = path[1:]
    options = {k: v[-1] for k, v in parse_qs(parts.query).items()}
    return path or ":memory:", options


def _postgres() -> ModuleType:
    """`gridshare.store.postgres`, whose psycopg is an optional extra."""
    try:
        from gridshare.store import postgres
    except ModuleNotFoundError as e:
        if e.name is None or not e.name.startswith("psycopg"):
            raise
        raise UnsupportedDatabase(
            "postgresql:// needs psycopg: pip install 'gridshare[postgres]'"
        ) from e
    return postgres


def open_store(url: str) -> Store:
    """A store for ``url`` (see the module)."""
    if is_postgres(url):
        return _postgres().PostgresStore(url)
    path, options = sqlite_location(url)
    return SqliteStore(path, synchronous=options.get("synchronous", "NORMAL"))


def connect(url: str) -> Db:
    """A connection of its own to the database of ``url`` (an existing store's:
    no tables are made), for work beside the store's, e.g. retention."""
    if is_postgres(url):
        return _postgres().connect_postgres(url)
    path, options = sqlite_location(url)
    synchronous = options.get("synchronous", "NORMAL").upper()
    if synchronous not in ("OFF", "NORMAL", "FULL", "EXTRA"):
        raise StoreError(f"synchronous must be OFF, NORMAL, FULL or EXTRA, not {synchronous}")
    db = connect_sqlite(path, check_same_thread=False)
    db.execute(f"PRAGMA synchronous={synchronous}")
    return db
