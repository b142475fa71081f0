"""Charging sessions: started, told what the EV needs, changed by an operator, ended.

A session is keyed by (station id, transaction id): in OCPP 2.0.1 the station
chooses the transaction id, so two stations may use the same one. Each session
also gets a ``session_id`` that is unique in the database (the transaction id
itself unless another station's session has it already): the operator's name
for it. OCPP 1.6 transaction ids come from `SessionTable.next_transaction_id`,
a sequence committed before the id is handed out, so no id is issued twice for
the life of the database.
"""

from __future__ import annotations

import itertools
from datetime import datetime
from typing import Any

from forecasts.demand import PastSession
from gridshare.store.audit import write_audit
from gridshare.store.connection import Db, Tables, from_iso, iso
from gridshare.store.errors import SessionConflict, StoreError
from gridshare.store.records import StoredSession, ended_key
from gridshare.store.schema import MAX_TRANSACTION_ID
from ocpp_adapter.events import (
    EvChargingNeeds,
    PriorityChargingNotified,
    SessionEnded,
    SessionStarted,
)
from optimizer.site import station_of

PRIORITY_CHARGING_WEIGHT = 10.0
"""A session's priority while its driver asked for priority charging (OCPP 2.1
NotifyPriorityCharging): its unmet energy weighs ten times any other's, so the
plan serves it first within every limit. Stopped: back to the default (1)."""


class SessionTable(Tables):
    """The ``sessions`` table and the 1.6 transaction id sequence."""

    def next_transaction_id(self) -> int:
        """A 1.6 transaction id never handed out before by this database: committed
        before it is returned, so a crash and restart cannot issue it again."""
        with self._tx() as db:
            # one statement: two writers (two nodes on one PostgreSQL) never read one value
            n = (
                int(
                    db.execute(
                        "UPDATE meta SET value = CAST(CAST(value AS BIGINT) + 1 AS TEXT) "
                        "WHERE key = 'next_transaction_id' RETURNING value"
                    ).fetchone()[0]
                )
                - 1
            )
            if n > MAX_TRANSACTION_ID:
                raise StoreError("the 1.6 transaction ids of this database are used up")
        return n

    def _session_started(self, db: Db, e: SessionStarted) -> None:
        station = station_of(e.connector_id)
        row = db.execute(
            "SELECT connector_id, started_at FROM sessions "
            "WHERE station_id = ? AND transaction_id = ?",
            (station, e.transaction_id),
        ).fetchone()
        if row is not None:
            if row["connector_id"] == e.connector_id and row["started_at"] == iso(e.at):
                return  # the station sent it again (its answer was lost)
            raise SessionConflict(
                station,
                e.transaction_id,
                f"stored as started on {row['connector_id']} at {row['started_at']}, "
                f"now said to start on {e.connector_id} at {iso(e.at)}",
            )
        db.execute(
            "INSERT INTO sessions (station_id, transaction_id, session_id, connector_id, "
            "id_tag, started_at, meter_start_wh, energy_wh, offline) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                station,
                e.transaction_id,
                self._new_session_id(db, station, e.transaction_id),
                e.connector_id,
                e.id_tag,
                iso(e.at),
                e.meter_start_wh,
                e.meter_start_wh,
                int(e.offline),
            ),
        )

    @staticmethod
    def _new_session_id(db: Db, station: str, tx: str) -> str:
        """The transaction id, unless a session of another station has it."""
        candidates = itertools.chain(
            (tx, f"{tx}@{station}"), (f"{tx}@{station}~{n}" for n in itertools.count(2))
        )
        for candidate in candidates:
            if (
                db.execute("SELECT 1 FROM sessions WHERE session_id = ?", (candidate,)).fetchone()
                is None
            ):
                return candidate
        raise AssertionError("unreachable")

    def _session_ended(self, db: Db, e: SessionEnded) -> None:
        key = ended_key(e)
        if key is None:
            return
        # only an open session ends: a repeated stop changes nothing already stored
        cur = db.execute(
            "UPDATE sessions SET ended_at = ?, meter_stop_wh = ?, stop_reason = ?, "
            "energy_wh = COALESCE(?, energy_wh) "
            "WHERE station_id = ? AND transaction_id = ? AND ended_at IS NULL",
            (iso(e.at), e.meter_stop_wh, e.reason, e.meter_stop_wh, *key),
        )
        if cur.rowcount:
            db.execute(
                "DELETE FROM limits_in_force WHERE purpose = 'tx' AND connector_id = "
                "(SELECT connector_id FROM sessions WHERE station_id = ? AND transaction_id = ?)",
                key,
            )

    @staticmethod
    def _priority_charging(db: Db, e: PriorityChargingNotified) -> None:
        db.execute(
            "UPDATE sessions SET priority = ? "
            "WHERE station_id = ? AND transaction_id = ? AND ended_at IS NULL",
            (PRIORITY_CHARGING_WEIGHT if e.activated else None, e.station_id, e.transaction_id),
        )

    @staticmethod
    def _ev_needs(db: Db, e: EvChargingNeeds) -> None:
        db.execute(
            "UPDATE sessions SET departure = COALESCE(?, departure), "
            "energy_need_wh = COALESCE("
            f"? + {db.dialect.greatest}(COALESCE(energy_wh - meter_start_wh, 0), 0), "
            "energy_need_wh), "
            "ev_max_a = COALESCE(?, ev_max_a), ev_min_a = COALESCE(?, ev_min_a) "
            "WHERE connector_id = ? AND ended_at IS NULL",
            (
                iso(e.departure),
                e.energy_wh,
                e.ev_max_current_a,
                e.ev_min_current_a,
                e.connector_id,
            ),
        )

    @staticmethod
    def _session(row: Any) -> StoredSession:
        return StoredSession(
            transaction_id=row["transaction_id"],
            station_id=row["station_id"],
            session_id=row["session_id"],
            connector_id=row["connector_id"],
            id_tag=row["id_tag"],
            started_at=datetime.fromisoformat(row["started_at"]),
            meter_start_wh=row["meter_start_wh"],
            energy_wh=row["energy_wh"],
            departure=from_iso(row["departure"]),
            energy_need_wh=row["energy_need_wh"],
            ev_max_current_a=row["ev_max_a"],
            ev_min_current_a=row["ev_min_a"],
            ended_at=from_iso(row["ended_at"]),
            meter_stop_wh=row["meter_stop_wh"],
            priority=row["priority"],
            charge_mode=row["charge_mode"],
        )

    def active_sessions(self) -> list[StoredSession]:
        """Open sessions, by start; of two with one start, the one stored last last."""
        rows = self._db.execute(
            "SELECT * FROM sessions WHERE ended_at IS NULL "
            f"ORDER BY started_at, {self._db.dialect.insert_order}"
        ).fetchall()
        return [self._session(r) for r in rows]

    def session(self, station_id: str, transaction_id: str) -> StoredSession | None:
        """The station's session of that transaction."""
        row = self._db.execute(
            "SELECT * FROM sessions WHERE station_id = ? AND transaction_id = ?",
            (station_id, transaction_id),
        ).fetchone()
        return None if row is None else self._session(row)

    def session_by_id(self, session_id: str) -> StoredSession | None:
        """The session with that ``session_id`` (the API's id, unique in the database)."""
        row = self._db.execute(
            "SELECT * FROM sessions WHERE session_id = ?", (session_id,)
        ).fetchone()
        return None if row is None else self._session(row)

    def end_superseded(
        self, station_id: str, transaction_id: str, at: datetime, by_transaction_id: str
    ) -> None:
        """End an open session another one started after on its connector (the
        station never said it ended). Its connector's limits stay: they are the
        later session's."""
        with self._tx() as db:
            cur = db.execute(
                "UPDATE sessions SET ended_at = ?, stop_reason = 'Superseded' "
                "WHERE station_id = ? AND transaction_id = ? AND ended_at IS NULL",
                (iso(at), station_id, transaction_id),
            )
            if cur.rowcount:
                write_audit(
                    db,
                    at,
                    "session_superseded",
                    f"{station_id}/{transaction_id}",
                    {"by": by_transaction_id},
                )

    def past_sessions(self, id_tag: str, limit: int = 20) -> list[PastSession]:
        """The idTag's last ``limit`` finished sessions, oldest first (of two ended
        at one time, the one stored first first)."""
        rows = self._db.execute(
            "SELECT * FROM sessions WHERE id_tag = ? AND ended_at IS NOT NULL "
            f"ORDER BY ended_at DESC, {self._db.dialect.insert_order} DESC LIMIT ?",
            (id_tag, limit),
        ).fetchall()
        out = []
        for s in map(self._session, reversed(rows)):
            if s.ended_at is not None:
                out.append(PastSession(id_tag, s.started_at, s.ended_at, s.delivered_wh / 1000.0))
        return out

    def update_session(
        self,
        session_id: str,
        *,
        priority: float | None = None,
        departure: datetime | None = None,
        energy_need_wh: float | None = None,
        charge_mode: str | None = None,
    ) -> None:
        """An operator's change to a running session (None leaves a field as it is)."""
        with self._tx() as db:
            db.execute(
                "UPDATE sessions SET priority = COALESCE(?, priority), "
                "departure = COALESCE(?, departure), "
                "energy_need_wh = COALESCE(?, energy_need_wh), "
                "charge_mode = COALESCE(?, charge_mode) WHERE session_id = ?",
                (priority, iso(departure), energy_need_wh, charge_mode, session_id),
            )

    def recent_sessions(self, limit: int = 50) -> list[StoredSession]:
        """Ended sessions, the latest first (of two ended at one time, the one stored
        last first)."""
        rows = self._db.execute(
            "SELECT * FROM sessions WHERE ended_at IS NOT NULL "
            f"ORDER BY ended_at DESC, {self._db.dialect.insert_order} DESC LIMIT ?",
            (limit,),
        ).fetchall()
        return [self._session(r) for r in rows]
