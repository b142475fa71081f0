"""The audit log: limit changes and operator actions, newest first."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from gridshare.store.connection import Db, Tables, iso


def write_audit(db: Db, at: datetime, kind: str, subject: str, detail: dict[str, Any]) -> None:
    """One audit entry, inside the caller's transaction."""
    db.execute(
        "INSERT INTO audit (at, kind, subject, detail_json) VALUES (?, ?, ?, ?)",
        (iso(at), kind, subject, json.dumps(detail, default=str)),
    )


class AuditLog(Tables):
    """The ``audit`` table."""

    def audit(self, at: datetime, kind: str, subject: str, detail: dict[str, Any]) -> None:
        with self._tx() as db:
            write_audit(db, at, kind, subject, detail)

    def audit_log(self, limit: int = 100) -> list[dict[str, Any]]:
        rows = self._db.execute("SELECT * FROM audit ORDER BY id DESC LIMIT ?", (limit,)).fetchall()
        return [
            {
                "at": r["at"],
                "kind": r["kind"],
                "subject": r["subject"],
                "detail": json.loads(r["detail_json"]),
            }
            for r in rows
        ]

    def audit_page(self, limit: int, before: int | None = None) -> list[dict[str, Any]]:
        """Audit entries newest first, with their ids: at most ``limit`` with id < ``before``."""
        rows = self._db.execute(
            "SELECT * FROM audit WHERE id < ? ORDER BY id DESC LIMIT ?",
            (before if before is not None else 2**62, limit),
        ).fetchall()
        return [
            {
                "id": r["id"],
                "at": r["at"],
                "kind": r["kind"],
                "subject": r["subject"],
                "detail": json.loads(r["detail_json"]),
            }
            for r in rows
        ]
