"""The store's errors.

StoreError
├── UnsupportedDatabase   a URL scheme with no backend
├── SessionConflict       a session start that contradicts a stored one
└── DatabaseError         PostgreSQL refused a statement or the connection
"""

from __future__ import annotations

from gridshare.errors import UserError


class StoreError(UserError):
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


class DatabaseError(StoreError):
    """PostgreSQL refused a statement or the connection failed (psycopg's error
    translated where it enters)."""
