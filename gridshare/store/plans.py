"""Plans made: what explains each, and the whole current array at a bounded rate.

Every plan is written with its figures (reason, status, summary with unmet
energy, binding limits and each group's load in the dispatched slot) and its
dispatched slot (connectors not named got 0 A). Its whole current array is
kept for one plan per `PlanTable.full_plan_every` and for the latest; the
latest's is dropped when the next plan comes unless the rate keeps it. So the
table grows by a few hundred bytes a plan; retention deletes rows past their
horizon (see `gridshare.store.pruning`).
"""

from __future__ import annotations

import io
import json
import zlib
from collections import defaultdict
from datetime import datetime, timedelta
from typing import Any

import numpy as np

from gridshare.store.connection import Tables, from_iso, iso
from optimizer.plan import Plan
from optimizer.site import Site

_NPY_MAGIC = b"\x93NUMPY"


class PlanTable(Tables):
    """The ``plans`` table."""

    full_plan_every: timedelta = timedelta(minutes=15)
    """At most one plan this often keeps its whole array (besides the latest)."""
    _whole_at: datetime | None = None
    """When the last plan kept whole by the rate was made."""
    _latest_only: int | None = None
    """The latest plan's id when it holds its array only for being the latest."""
    _plans_known = False

    def save_plan(
        self, plan: Plan, created_at: datetime, reason: str, site: Site | None = None
    ) -> int:
        """Write ``plan``; ``site`` adds each group's load in the dispatched slot
        to its summary."""
        if not self._plans_known:
            self._know_plans()
        whole = (
            self._whole_at is None
            or created_at - self._whole_at >= self.full_plan_every
            or created_at < self._whole_at  # the clock went back
        )
        summary = plan.summary()
        if site is not None:
            summary["groups_now"] = group_totals(plan, site)
        with self._tx() as db:
            if self._latest_only is not None:
                db.execute("UPDATE plans SET current_npy = NULL WHERE id = ?", (self._latest_only,))
            cur = db.execute(
                "INSERT INTO plans (created_at, reason, grid_start, slot_minutes, slots, status, "
                "solve_ms, summary_json, now_json, current_npy) VALUES (?,?,?,?,?,?,?,?,?,?) "
                "RETURNING id",
                (
                    iso(created_at),
                    reason,
                    iso(plan.grid.start),
                    plan.grid.slot_minutes,
                    plan.grid.slots,
                    plan.status.value,
                    plan.solve_ms,
                    json.dumps(summary, separators=(",", ":")),
                    json.dumps(dispatched(plan), separators=(",", ":")),
                    packed(plan.current_a),
                ),
            )
            plan_id = int(cur.fetchone()[0])
        if whole:
            self._whole_at, self._latest_only = created_at, None
        else:
            self._latest_only = plan_id
        return plan_id

    def _know_plans(self) -> None:
        """After a restart: the latest plan counts as kept whole (at most one more)."""
        row = self._db.execute(
            "SELECT created_at FROM plans WHERE current_npy IS NOT NULL ORDER BY id DESC LIMIT 1"
        ).fetchone()
        self._whole_at = None if row is None else from_iso(row[0])
        self._latest_only, self._plans_known = None, True

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


def dispatched(plan: Plan) -> dict[str, float]:
    """The dispatched slot of the connectors given current (0.1 A)."""
    if not plan.connector_ids:
        return {}
    # slot 0 of every connector at once (``now_a`` one by one is slow on large sites)
    first = plan.current_a[:, 0].tolist()
    return {
        cid: round(a, 1) for cid, a in zip(plan.connector_ids, first, strict=True) if round(a, 1)
    }


def group_totals(plan: Plan, site: Site) -> dict[str, dict[str, float]]:
    """Each group's load in the dispatched slot: A per line and kW."""
    totals: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    if plan.connector_ids:
        amps, kws = plan.current_a[:, 0].tolist(), plan.power_kw[:, 0].tolist()
        for cid, a, kw in zip(plan.connector_ids, amps, kws, strict=True):
            info = site.connectors.get(cid)
            if info is None or not a:
                continue
            for g in info.ancestors:
                for line in plan.lines.get(cid, ()):
                    totals[g][str(line)] += a
                totals[g]["kW"] += kw
    return {
        g.id: {k: round(v, 2) for k, v in sorted(totals.get(g.id, {}).items())} for g in site.groups
    }


def packed(current_a: np.ndarray) -> bytes:
    """The array as a compressed ``.npy`` (a plan's rows are mostly zeros and repeats)."""
    buf = io.BytesIO()
    np.save(buf, current_a.astype(np.float32), allow_pickle=False)
    return zlib.compress(buf.getvalue(), 1)


def unpacked(blob: bytes) -> np.ndarray:
    raw = blob if blob[:6] == _NPY_MAGIC else zlib.decompress(blob)  # older rows: plain .npy
    return np.load(io.BytesIO(raw), allow_pickle=False)


_FIGURES = (
    "id, created_at, reason, grid_start, slot_minutes, status, solve_ms, summary_json, "
    "now_json, NULL AS current_npy"
)


def _plan(row: Any) -> dict[str, Any]:
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
        "current_a": None if blob is None else unpacked(blob),
    }
