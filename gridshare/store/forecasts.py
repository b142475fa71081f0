"""Forecasts received and the documents kept beside them (the capacity book's export)."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from gridshare.store.connection import Tables, iso


class ForecastTables(Tables):
    """The ``forecasts`` table and the state documents of the ``meta`` table."""

    def save_forecast(
        self, group_id: str, kind: str, source: str, received_at: datetime, blocks: Any
    ) -> int:
        with self._tx() as db:
            cur = db.execute(
                "INSERT INTO forecasts (group_id, kind, source, received_at, blocks_json) "
                "VALUES (?, ?, ?, ?, ?) RETURNING id",
                (group_id, kind, source, iso(received_at), json.dumps(blocks, default=str)),
            )
            return int(cur.fetchone()[0])

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
