"""Persistence: one storage package, SQLite embedded or PostgreSQL shared.

What the service must not lose lives here, one module per thing kept:

    schema        the tables, and the upgrade of an older database
    stations      stations and the last status of each connector
    sessions      charging sessions and the 1.6 transaction id sequence
    meter_values  the last reading per connector, one-minute aggregates and roll-ups
    meter_readings  the site meters' readings, their groups' non-EV load and its roll-ups
    rollups       one-minute rows past their horizon made into one row an interval
    profiles      charging profiles sent, their answers, the limits in force
    plans         plans with their figures
    forecasts     forecasts received and state documents (the capacity book)
    audit         the audit log of limit changes
    pruning       deleting what is past its horizon, a bounded batch at a time
    connection    the transactions, and `Dialect`: what the two engines spell differently
    tables        `StoreTables`: every part together, events routed to their tables
    sqlite        `SqliteStore`: the tables on a SQLite file
    postgres      `PostgresStore`: the tables on PostgreSQL (psycopg 3, an optional extra)
    urls          `open_store` and `connect`: the backend a database URL names
    protocol      `Store`, what the service asks of any backend
    records       `StoredSession`, `StoredLimit`
    errors        the error tree below

An event counts as accepted only once `Store.record_event` has committed it:
the OCPP adapter answers the station after the application's event sink
returns, so a crash before the commit makes the station send it again.

`open_store(url)` picks the backend from the URL (``sqlite:///path.db``,
``sqlite://:memory:`` or a bare path; ``postgresql://…``). Both backends run
the same SQL on the same tables (see `gridshare.store.connection` for where
they differ) and answer the same test suite. SQLite runs in WAL mode with
``synchronous=NORMAL``: a committed transaction survives the process being
killed; ``sqlite:///path.db?synchronous=FULL`` also survives a power cut.

The store is used from the event loop's thread only (each call is a short
transaction); the planner's worker thread never touches it. Retention
(`gridshare.retention`) rolls up and prunes on a connection of its own, in
batches of one short transaction each.

A session is keyed by (station id, transaction id); see `sessions` for its
``session_id`` and the 1.6 transaction ids.

The database file and its WAL/SHM files are created readable by the owner only
(they hold idTags).

On PostgreSQL a commit is durable (``synchronous_commit=on``) before the call
returns, and the schema is made or upgraded under an advisory lock.

    StoreError
    ├── UnsupportedDatabase   a URL scheme with no backend
    ├── SessionConflict       a session start that contradicts a stored one
    └── DatabaseError         PostgreSQL refused a statement or the connection
"""

from gridshare.store.errors import (
    DatabaseError,
    SessionConflict,
    StoreError,
    UnsupportedDatabase,
)
from gridshare.store.protocol import Store
from gridshare.store.records import StoredLimit, StoredSession, ended_key
from gridshare.store.schema import SCHEMA_VERSION
from gridshare.store.sqlite import SqliteStore
from gridshare.store.urls import connect, open_store

__all__ = [
    "SCHEMA_VERSION",
    "DatabaseError",
    "SessionConflict",
    "SqliteStore",
    "Store",
    "StoreError",
    "StoredLimit",
    "StoredSession",
    "UnsupportedDatabase",
    "connect",
    "ended_key",
    "open_store",
]
