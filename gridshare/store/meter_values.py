"""Meter values: the last reading of each connector and its one-minute aggregates.

A reading also raises its session's energy register (it only grows).

One-minute rows older than the raw horizon are rolled up into ``meter_rollup``
rows (see `gridshare.store.rollups`); the reads here serve both alike: a
roll-up row reads as one row at its start, with the sample-weighted mean of
its minutes, so a figure over a roll-up interval reads the same before and
after. Energy is the growth of the highest register seen (a late or reset
register adds nothing), which a roll-up keeps exactly.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from gridshare.store.connection import Db, Tables, iso
from ocpp_adapter.events import MeterReading
from optimizer.site import station_of


class MeterTables(Tables):
    """The ``meter_last`` and ``meter_minute`` tables."""

    def _meter_reading(self, db: Db, r: MeterReading) -> None:
        top = db.dialect.greatest
        power = r.total_power_w
        if power is None and r.power_w:
            power = sum(r.power_w.values())
        db.execute(
            "INSERT INTO meter_last (connector_id, at, transaction_id, current_json, offered_a, "
            "power_w, energy_wh, soc_pct) VALUES (?, ?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (connector_id) DO UPDATE SET at = excluded.at, "
            "transaction_id = excluded.transaction_id, current_json = excluded.current_json, "
            "offered_a = excluded.offered_a, power_w = excluded.power_w, "
            "energy_wh = COALESCE(excluded.energy_wh, meter_last.energy_wh), "
            "soc_pct = COALESCE(excluded.soc_pct, meter_last.soc_pct) "
            "WHERE excluded.at >= meter_last.at",
            (
                r.connector_id,
                iso(r.at),
                r.transaction_id,
                json.dumps(r.current_a),
                r.current_offered_a,
                power,
                r.energy_wh,
                r.soc_pct,
            ),
        )
        at = r.at if r.at.tzinfo else r.at.replace(tzinfo=UTC)
        minute = at.astimezone(UTC).replace(second=0, microsecond=0).isoformat()
        c = r.current_a
        db.execute(
            "INSERT INTO meter_minute AS t VALUES (?, ?, 1, ?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (connector_id, minute) DO UPDATE SET n = t.n + 1, "
            "l1_sum = t.l1_sum + excluded.l1_sum, l2_sum = t.l2_sum + excluded.l2_sum, "
            "l3_sum = t.l3_sum + excluded.l3_sum, power_sum = t.power_sum + excluded.power_sum, "
            "power_n = t.power_n + excluded.power_n, "
            f"energy_wh = {top}(COALESCE(t.energy_wh, excluded.energy_wh), "
            "COALESCE(excluded.energy_wh, t.energy_wh)), "
            "soc_pct = COALESCE(excluded.soc_pct, t.soc_pct)",
            (
                r.connector_id,
                minute,
                c.get("L1", 0.0),
                c.get("L2", 0.0),
                c.get("L3", 0.0),
                power or 0.0,
                0 if power is None else 1,
                r.energy_wh,
                r.soc_pct,
            ),
        )
        if r.energy_wh is not None:
            # the register only grows: keep the session's highest value
            if r.transaction_id is not None:
                db.execute(
                    f"UPDATE sessions SET energy_wh = {top}(COALESCE(energy_wh, 0), ?) "
                    "WHERE station_id = ? AND transaction_id = ? AND ended_at IS NULL",
                    (r.energy_wh, station_of(r.connector_id), r.transaction_id),
                )
            else:
                db.execute(
                    f"UPDATE sessions SET energy_wh = {top}(COALESCE(energy_wh, 0), ?) "
                    "WHERE connector_id = ? AND ended_at IS NULL",
                    (r.energy_wh, r.connector_id),
                )

    def meter_last_all(self) -> dict[str, dict[str, Any]]:
        out = {}
        for row in self._db.execute("SELECT * FROM meter_last"):
            d = dict(row)
            d["current_a"] = json.loads(d.pop("current_json") or "{}")
            out[d["connector_id"]] = d
        return out

    def meter_minutes_since(self, since: datetime) -> list[dict[str, Any]]:
        """One-minute averages of every connector from ``since`` on, by minute (a
        rolled-up interval: one row at its start)."""
        start = iso(since.replace(second=0, microsecond=0))
        rows = self._db.execute(
            f"SELECT * FROM ({_MINUTES_AND_ROLLUPS}) AS m WHERE minute >= ? "
            "ORDER BY minute, connector_id",
            (start,),
        ).fetchall()
        return [
            {
                "connector_id": r["connector_id"],
                "minute": datetime.fromisoformat(r["minute"]),
                "current_a": _mean_current(r),
                "power_w": r["power_sum"] / r["power_n"] if r["power_n"] else None,
            }
            for r in rows
        ]

    def meter_last(self, connector_id: str) -> dict[str, Any] | None:
        row = self._db.execute(
            "SELECT * FROM meter_last WHERE connector_id = ?", (connector_id,)
        ).fetchone()
        if row is None:
            return None
        out = dict(row)
        out["current_a"] = json.loads(out.pop("current_json") or "{}")
        return out

    def meter_minutes(self, connector_id: str) -> list[dict[str, Any]]:
        """The connector's one-minute rows (a rolled-up interval: one row at its start)."""
        rows = self._db.execute(
            f"SELECT * FROM ({_MINUTES_AND_ROLLUPS}) AS m WHERE connector_id = ? ORDER BY minute",
            (connector_id,),
        ).fetchall()
        return [
            {
                "minute": r["minute"],
                "samples": r["n"],
                "current_a": _mean_current(r),
                "power_w": r["power_sum"] / r["power_n"] if r["power_n"] else None,
                "energy_wh": r["energy_wh"],
                "soc_pct": r["soc_pct"],
            }
            for r in rows
        ]

    def meter_energy(
        self, since: datetime, until: datetime, connector_ids: list[str] | None = None
    ) -> dict[str, float]:
        """Energy (Wh) each connector imported in [since, until): the growth of its
        highest register. Exact over rolled-up data when both ends fall on the
        roll-up interval's boundaries (a DSO reporting interval does)."""
        lo, hi = str(iso(since)), str(iso(until))
        if connector_ids is None:
            connector_ids = [r[0] for r in self._db.execute("SELECT connector_id FROM meter_last")]
        out = {}
        for cid in connector_ids:
            highest = _highest_register_before(self._db, cid, lo)
            total = 0.0
            rows = self._db.execute(
                f"SELECT * FROM ({_MINUTES_AND_ROLLUPS}) AS m WHERE connector_id = ? "
                "AND minute >= ? AND minute < ? ORDER BY minute",
                (cid, lo, hi),
            )
            for r in rows:
                if r["rolled"]:
                    total += r["rolled_wh"]
                    register = r["energy_wh"]
                elif (register := r["energy_wh"]) is not None and highest is not None:
                    total += max(0.0, register - highest)
                if register is not None:
                    highest = register if highest is None else max(highest, register)
            out[cid] = total
        return out


_MINUTES_AND_ROLLUPS = (
    "SELECT connector_id, minute, n, l1_sum, l2_sum, l3_sum, power_sum, power_n, energy_wh, "
    "soc_pct, 0 AS rolled, NULL AS rolled_wh FROM meter_minute UNION ALL "
    "SELECT connector_id, start, n, l1_sum, l2_sum, l3_sum, power_sum, power_n, register_wh, "
    "soc_pct, 1, energy_wh FROM meter_rollup"
)
"""One-minute rows and roll-up rows alike (the latter at their start)."""


def _mean_current(r: Any) -> dict[str, float]:
    n = r["n"]
    return {"L1": r["l1_sum"] / n, "L2": r["l2_sum"] / n, "L3": r["l3_sum"] / n}


def _highest_register_before(db: Db, connector_id: str, at: str) -> float | None:
    """The highest register a connector showed before ``at`` (None: none seen)."""
    rolled = db.execute(
        "SELECT register_wh FROM meter_rollup WHERE connector_id = ? AND start < ? "
        "AND register_wh IS NOT NULL ORDER BY start DESC LIMIT 1",
        (connector_id, at),
    ).fetchone()
    raw = db.execute(
        "SELECT MAX(energy_wh) FROM meter_minute WHERE connector_id = ? AND minute < ?",
        (connector_id, at),
    ).fetchone()
    found = [v for v in (rolled and rolled[0], raw[0]) if v is not None]
    return max(found) if found else None
