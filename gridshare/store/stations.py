"""Stations (connected, booted, gone) and the last status of each connector."""

from __future__ import annotations

from typing import Any

from gridshare.store.connection import Db, Tables, iso
from ocpp_adapter.events import (
    ConnectorStatusChanged,
    StationBooted,
    StationConnected,
    StationDisconnected,
)


class StationTables(Tables):
    """The ``stations`` and ``connectors`` tables."""

    @staticmethod
    def _station_connected(db: Db, e: StationConnected) -> None:
        db.execute(
            "INSERT INTO stations (id, protocol, connected, connected_at) "
            "VALUES (?, ?, 1, ?) ON CONFLICT (id) DO UPDATE SET "
            "protocol = excluded.protocol, connected = 1, "
            "connected_at = excluded.connected_at",
            (e.station_id, e.protocol, iso(e.at)),
        )

    @staticmethod
    def _station_booted(db: Db, e: StationBooted) -> None:
        db.execute(
            "INSERT INTO stations (id, vendor, model, firmware, booted_at) "
            "VALUES (?, ?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET "
            "vendor = excluded.vendor, model = excluded.model, "
            "firmware = excluded.firmware, booted_at = excluded.booted_at",
            (e.station_id, e.vendor, e.model, e.firmware, iso(e.at)),
        )

    @staticmethod
    def _station_disconnected(db: Db, e: StationDisconnected) -> None:
        db.execute(
            "UPDATE stations SET connected = 0, disconnected_at = ? WHERE id = ?",
            (iso(e.at), e.station_id),
        )

    @staticmethod
    def _connector_status(db: Db, e: ConnectorStatusChanged) -> None:
        db.execute(
            "INSERT INTO connectors (id, status, error_code, at) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (id) DO UPDATE SET status = excluded.status, "
            "error_code = excluded.error_code, at = excluded.at",
            (e.connector_id, e.status, e.error_code, iso(e.at)),
        )

    def stations(self) -> list[dict[str, Any]]:
        return [dict(r) for r in self._db.execute("SELECT * FROM stations ORDER BY id")]
