"""Plans made: their figures, the first slot of each connector and the whole current array.

Every plan keeps its figures (reason, status, summary) and its dispatched slot
(the currents sent when it was made); retention drops the whole current array
of most older plans (see `gridshare.store.pruning`), never the latest's.
"""

from __future__ import annotations

import io
import json
import sqlite3
from datetime import datetime
from typing import Any

import numpy as np

from gridshare.store.connection import SqliteTables, iso
from optimizer.plan import Plan


class PlanTable(SqliteTables):
    """The ``plans`` table."""

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
                    iso(created_at),
                    reason,
                    iso(plan.grid.start),
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
        return None if row is None else _plan(row)

    def plans_since(self, since: datetime, *, arrays: bool = False) -> list[dict[str, Any]]:
        """Plans made from ``since`` on, oldest first: figures and dispatched slot, and
        with ``arrays`` the whole current array where it is kept (else None)."""
        columns = "*" if arrays else _FIGURES
        rows = self._db.execute(
            f"SELECT {columns} FROM plans WHERE created_at >= ? ORDER BY id", (iso(since),)
        ).fetchall()
        return [_plan(r) for r in rows]

    def plan_count(self) -> int:
        return int(self._db.execute("SELECT COUNT(*) FROM plans").fetchone()[0])


_FIGURES = (
    "id, created_at, reason, grid_start, slot_minutes, status, solve_ms, summary_json, "
    "now_json, NULL AS current_npy"
)


def _plan(row: sqlite3.Row) -> dict[str, Any]:
    blob = row["current_npy"]
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
        "current_a": None if blob is None else np.load(io.BytesIO(blob), allow_pickle=False),
    }
