"""Meter values: the last reading of each connector and its one-minute aggregates.

A reading also raises its session's energy register (it only grows).
"""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime
from typing import Any

from gridshare.store.connection import SqliteTables, iso
from ocpp_adapter.events import MeterReading
from optimizer.site import station_of


class MeterTables(SqliteTables):
    """The ``meter_last`` and ``meter_minute`` tables."""

    def _meter_reading(self, db: sqlite3.Connection, r: MeterReading) -> None:
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
            "INSERT INTO meter_minute VALUES (?, ?, 1, ?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (connector_id, minute) DO UPDATE SET n = n + 1, "
            "l1_sum = l1_sum + excluded.l1_sum, l2_sum = l2_sum + excluded.l2_sum, "
            "l3_sum = l3_sum + excluded.l3_sum, power_sum = power_sum + excluded.power_sum, "
            "power_n = power_n + excluded.power_n, "
            "energy_wh = MAX(COALESCE(energy_wh, 0), COALESCE(excluded.energy_wh, 0)), "
            "soc_pct = COALESCE(excluded.soc_pct, soc_pct)",
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
                    "UPDATE sessions SET energy_wh = MAX(COALESCE(energy_wh, 0), ?) "
                    "WHERE station_id = ? AND transaction_id = ? AND ended_at IS NULL",
                    (r.energy_wh, station_of(r.connector_id), r.transaction_id),
                )
            else:
                db.execute(
                    "UPDATE sessions SET energy_wh = MAX(COALESCE(energy_wh, 0), ?) "
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
        """One-minute averages of every connector from ``since`` on, by minute."""
        rows = self._db.execute(
            "SELECT * FROM meter_minute WHERE minute >= ? ORDER BY minute, connector_id",
            (iso(since.replace(second=0, microsecond=0)),),
        ).fetchall()
        return [
            {
                "connector_id": r["connector_id"],
                "minute": datetime.fromisoformat(r["minute"]),
                "current_a": {
                    "L1": r["l1_sum"] / r["n"],
                    "L2": r["l2_sum"] / r["n"],
                    "L3": r["l3_sum"] / r["n"],
                },
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
        rows = self._db.execute(
            "SELECT * FROM meter_minute WHERE connector_id = ? ORDER BY minute", (connector_id,)
        ).fetchall()
        out = []
        for r in rows:
            n = r["n"]
            out.append(
                {
                    "minute": r["minute"],
                    "samples": n,
                    "current_a": {
                        "L1": r["l1_sum"] / n,
                        "L2": r["l2_sum"] / n,
                        "L3": r["l3_sum"] / n,
                    },
                    "power_w": r["power_sum"] / r["power_n"] if r["power_n"] else None,
                    "energy_wh": r["energy_wh"],
                    "soc_pct": r["soc_pct"],
                }
            )
        return out
