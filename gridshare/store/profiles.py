"""Charging profiles sent and their answers, and the limits each station accepted.

An accepted profile becomes the limit in force for its connector (or station)
and purpose, with an audit entry; a session's end forgets its ``tx`` limit.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from gridshare.store.audit import write_audit
from gridshare.store.connection import Db, Tables, iso
from gridshare.store.records import StoredLimit


class ProfileTables(Tables):
    """The ``profiles`` and ``limits_in_force`` tables."""

    def profile_sent(
        self,
        station_id: str,
        connector_id: str | None,
        purpose: str,
        transaction_id: str | None,
        start: datetime,
        periods: list[tuple[int, float]],
        sent_at: datetime,
    ) -> int:
        with self._tx() as db:
            cur = db.execute(
                "INSERT INTO profiles (station_id, connector_id, purpose, transaction_id, start, "
                "periods_json, sent_at) VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING id",
                (
                    station_id,
                    connector_id,
                    purpose,
                    transaction_id,
                    iso(start),
                    json.dumps(periods),
                    iso(sent_at),
                ),
            )
            return int(cur.fetchone()[0])

    def profiles_sent(
        self,
        rows: Sequence[tuple[str, str | None, str, str | None, datetime, list[tuple[int, float]]]],
        sent_at: datetime,
    ) -> list[int]:
        """Many `profile_sent` in one transaction: (station, connector, purpose,
        transaction, start, periods) each; returns their ids in order."""
        ids = []
        with self._tx() as db:
            for station_id, connector_id, purpose, tx, start, periods in rows:
                cur = db.execute(
                    "INSERT INTO profiles (station_id, connector_id, purpose, transaction_id, "
                    "start, periods_json, sent_at) VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING id",
                    (
                        station_id,
                        connector_id,
                        purpose,
                        tx,
                        iso(start),
                        json.dumps(periods),
                        iso(sent_at),
                    ),
                )
                ids.append(int(cur.fetchone()[0]))
        return ids

    def profiles_answered(self, rows: list[tuple[int, str, str]], at: datetime) -> None:
        """Many `profile_answered` in one transaction: (profile id, outcome, detail) each."""
        when = iso(at)
        accepted = [pid for pid, outcome, _ in rows if outcome == "accepted"]
        with self._tx() as db:
            db.executemany(
                "UPDATE profiles SET outcome = ?, detail = ?, answered_at = ? WHERE id = ?",
                [(outcome, detail, when, pid) for pid, outcome, detail in rows],
            )
            for i in range(0, len(accepted), 500):
                chunk = accepted[i : i + 500]
                marks = ",".join("?" * len(chunk))
                detail = db.dialect.json_object(
                    "'purpose'", "purpose", "'periods'", db.dialect.json("periods_json")
                )
                # the last of each (connector, purpose) only: PostgreSQL refuses to
                # update one row twice in a statement (SQLite kept the last anyway)
                db.execute(
                    "INSERT INTO limits_in_force (connector_id, purpose, start, periods_json, "
                    "accepted_at, profile_id) SELECT COALESCE(connector_id, station_id), purpose, "
                    "start, periods_json, ?, id FROM profiles WHERE id IN (SELECT MAX(id) FROM "
                    f"profiles WHERE id IN ({marks}) GROUP BY COALESCE(connector_id, station_id), "
                    "purpose) ORDER BY id ON CONFLICT (connector_id, purpose) DO UPDATE SET "
                    "start = excluded.start, "
                    "periods_json = excluded.periods_json, accepted_at = excluded.accepted_at, "
                    "profile_id = excluded.profile_id",
                    (when, *chunk),
                )
                db.execute(
                    "INSERT INTO audit (at, kind, subject, detail_json) SELECT ?, "
                    "'limit_accepted', COALESCE(connector_id, station_id), "
                    f"{detail} "
                    f"FROM profiles WHERE id IN ({marks}) ORDER BY id",
                    (when, *chunk),
                )

    def unanswered_profiles(self) -> list[StoredLimit]:
        """Transaction profiles sent and never answered (or timed out): possibly in force."""
        rows = self._db.execute(
            "SELECT p.* FROM profiles p JOIN sessions s ON s.station_id = p.station_id "
            "AND s.transaction_id = p.transaction_id WHERE s.ended_at IS NULL AND p.purpose = 'tx' "
            "AND (p.outcome IS NULL OR p.outcome = 'timeout') AND p.id > COALESCE("
            "(SELECT profile_id FROM limits_in_force l WHERE l.connector_id = p.connector_id "
            "AND l.purpose = 'tx'), 0)"
        ).fetchall()
        return [
            StoredLimit(
                r["connector_id"],
                r["purpose"],
                datetime.fromisoformat(r["start"]),
                tuple((int(o), float(a)) for o, a in json.loads(r["periods_json"])),
                datetime.fromisoformat(r["sent_at"]),
            )
            for r in rows
        ]

    def profile_answered(self, profile_id: int, outcome: str, detail: str, at: datetime) -> None:
        with self._tx() as db:
            self._answered(db, profile_id, outcome, detail, at)

    def _answered(self, db: Db, profile_id: int, outcome: str, detail: str, at: datetime) -> None:
        db.execute(
            "UPDATE profiles SET outcome = ?, detail = ?, answered_at = ? WHERE id = ?",
            (outcome, detail, iso(at), profile_id),
        )
        if outcome != "accepted":
            return
        row = db.execute("SELECT * FROM profiles WHERE id = ?", (profile_id,)).fetchone()
        key = row["connector_id"] or row["station_id"]
        db.execute(
            "INSERT INTO limits_in_force VALUES (?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (connector_id, purpose) DO UPDATE SET start = excluded.start, "
            "periods_json = excluded.periods_json, accepted_at = excluded.accepted_at, "
            "profile_id = excluded.profile_id",
            (key, row["purpose"], row["start"], row["periods_json"], iso(at), profile_id),
        )
        write_audit(
            db,
            at,
            "limit_accepted",
            key,
            {"purpose": row["purpose"], "periods": json.loads(row["periods_json"])},
        )

    def limits_in_force(self) -> list[StoredLimit]:
        rows = self._db.execute("SELECT * FROM limits_in_force").fetchall()
        return [
            StoredLimit(
                r["connector_id"],
                r["purpose"],
                datetime.fromisoformat(r["start"]),
                tuple((int(o), float(a)) for o, a in json.loads(r["periods_json"])),
                datetime.fromisoformat(r["accepted_at"]),
            )
            for r in rows
        ]

    def forget_limit(self, connector_id: str, purpose: str) -> None:
        with self._tx() as db:
            db.execute(
                "DELETE FROM limits_in_force WHERE connector_id = ? AND purpose = ?",
                (connector_id, purpose),
            )

    def last_profiles(self) -> dict[str, dict[str, Any]]:
        """Per connector: the last transaction profile sent and its answer (None: pending)."""
        rows = self._db.execute(
            "SELECT p.connector_id, p.periods_json, p.sent_at, p.outcome FROM profiles p "
            "JOIN (SELECT connector_id, MAX(id) AS id FROM profiles "
            "WHERE connector_id IS NOT NULL GROUP BY connector_id) m ON m.id = p.id"
        ).fetchall()
        return {
            r["connector_id"]: {
                "periods": json.loads(r["periods_json"]),
                "sent_at": datetime.fromisoformat(r["sent_at"]),
                "outcome": r["outcome"],
            }
            for r in rows
        }
