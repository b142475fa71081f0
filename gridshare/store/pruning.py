"""Deleting what is past its horizon, a bounded batch at a time.

Each function does one batch inside the caller's transaction and returns how
many rows it deleted (or thinned): 0 when nothing is left before the cutoff.
What is still needed is never deleted: the latest plan, a running session and
its transaction profiles, the profile behind a limit in force, the last
profile of each connector (the operator's view), and the sessions the caller
names (those a DSO report has not yet counted to their end).
"""

from __future__ import annotations

import json
from collections.abc import Collection
from datetime import datetime, timedelta
from typing import Any

from gridshare.store.connection import SQLITE, Db, iso


def claim(db: Db) -> bool:
    """Whether this connection may prune now, inside its transaction: on PostgreSQL
    one node of a cluster at a time (an advisory lock held to the transaction's
    end; two roll-ups of one interval would count it twice). SQLite's write
    transaction is exclusive already."""
    if db.dialect is SQLITE:
        return True
    return bool(
        db.execute(
            "SELECT pg_try_advisory_xact_lock(hashtext('gridshare retention ' || current_schema()))"
        ).fetchone()[0]
    )


THINNED_KEY = "retention:plans_thinned"
"""The ``meta`` key of how far plans were thinned: the last plan looked at and
the time of the last plan kept whole."""


def thin_plans(db: Db, every: timedelta, budget: int) -> int:
    """Drop the whole current array of plans older than the latest, but for one
    plan kept whole at most every ``every``; returns how many plans were looked at.
    (Plans are written thinned already; this thins those written whole before.)"""
    row = db.execute("SELECT value FROM meta WHERE key = ?", (THINNED_KEY,)).fetchone()
    state: dict[str, Any] = json.loads(row[0]) if row else {"upto": 0, "last_whole_at": None}
    rows = db.execute(
        "SELECT id, created_at FROM plans WHERE id > ? AND id < (SELECT MAX(id) FROM plans) "
        "AND current_npy IS NOT NULL "
        "ORDER BY id LIMIT ?",
        (state["upto"], budget),
    ).fetchall()
    if not rows:
        return 0
    last_whole = (
        None if state["last_whole_at"] is None else datetime.fromisoformat(state["last_whole_at"])
    )
    thinned = []
    for plan_id, created_at in rows:
        at = datetime.fromisoformat(created_at)
        if last_whole is None or at - last_whole >= every or at < last_whole:
            last_whole = at
        else:
            thinned.append(plan_id)
    _in_chunks(db, "UPDATE plans SET current_npy = NULL WHERE id IN ({})", thinned)
    state = {"upto": rows[-1][0], "last_whole_at": iso(last_whole) if last_whole else None}
    db.execute(
        "INSERT INTO meta (key, value) VALUES (?, ?) "
        "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        (THINNED_KEY, json.dumps(state)),
    )
    return len(rows)


def prune_plans(db: Db, before: datetime, budget: int) -> int:
    """Plans made before ``before``, the latest plan excepted."""
    return db.execute(
        "DELETE FROM plans WHERE id IN (SELECT id FROM plans WHERE created_at < ? "
        "AND id < (SELECT MAX(id) FROM plans) ORDER BY created_at LIMIT ?)",
        (iso(before), budget),
    ).rowcount


def prune_audit(db: Db, before: datetime, budget: int) -> int:
    return db.execute(
        "DELETE FROM audit WHERE id IN (SELECT id FROM audit WHERE at < ? ORDER BY at LIMIT ?)",
        (iso(before), budget),
    ).rowcount


def prune_accepted_limits(db: Db, before: datetime, budget: int) -> int:
    """The audit events of limits accepted before ``before`` (they repeat the
    profiles' answers and go with them)."""
    return db.execute(
        "DELETE FROM audit WHERE id IN (SELECT id FROM audit WHERE at < ? "
        "AND kind = 'limit_accepted' ORDER BY at LIMIT ?)",
        (iso(before), budget),
    ).rowcount


def prune_forecasts(db: Db, before: datetime, budget: int) -> int:
    """Forecasts received before ``before`` (the capacity book keeps its own blocks)."""
    return db.execute(
        "DELETE FROM forecasts WHERE id IN (SELECT id FROM forecasts WHERE received_at < ? "
        "ORDER BY received_at LIMIT ?)",
        (iso(before), budget),
    ).rowcount


def prune_profiles(db: Db, before: datetime, budget: int) -> int:
    """Profiles sent before ``before`` that nothing reads any more."""
    return db.execute(
        "DELETE FROM profiles WHERE id IN (SELECT p.id FROM profiles p WHERE p.sent_at < ? "
        "AND p.id NOT IN (SELECT profile_id FROM limits_in_force WHERE profile_id IS NOT NULL) "
        "AND (p.connector_id IS NULL OR EXISTS (SELECT 1 FROM profiles q "
        "WHERE q.connector_id = p.connector_id AND q.id > p.id)) "
        "AND NOT EXISTS (SELECT 1 FROM sessions s WHERE s.station_id = p.station_id "
        "AND s.transaction_id = p.transaction_id AND s.ended_at IS NULL) "
        "ORDER BY p.sent_at LIMIT ?)",
        (iso(before), budget),
    ).rowcount


def prune_sessions(db: Db, before: datetime, budget: int, keep: Collection[tuple[str, str]]) -> int:
    """Sessions that ended before ``before``, but those in ``keep`` ((station,
    transaction) pairs). A running session is never deleted."""
    rows = db.execute(
        "SELECT station_id, transaction_id FROM sessions WHERE ended_at IS NOT NULL "
        "AND ended_at < ? ORDER BY ended_at LIMIT ?",
        (iso(before), budget + len(keep)),
    ).fetchall()
    gone = [(s, tx) for s, tx in rows if (s, tx) not in keep][:budget]
    db.executemany("DELETE FROM sessions WHERE station_id = ? AND transaction_id = ?", gone)
    return len(gone)


def prune_rollups(db: Db, before: datetime, budget: int) -> int:
    row = db.dialect.row_id
    return db.execute(
        f"DELETE FROM meter_rollup WHERE {row} IN (SELECT {row} FROM meter_rollup "
        "WHERE start < ? ORDER BY start LIMIT ?)",
        (iso(before), budget),
    ).rowcount


def _in_chunks(db: Db, sql: str, ids: list[int]) -> None:
    for i in range(0, len(ids), 500):
        chunk = ids[i : i + 500]
        db.execute(sql.format(",".join("?" * len(chunk))), chunk)
