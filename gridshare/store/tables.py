"""Every table's part together, and each station event routed to its tables.

`SqliteStore` and `PostgresStore` are this class on their own connection:
what they store and answer is written once, here and in the parts.
"""

from __future__ import annotations

from gridshare.store.audit import AuditLog, write_audit
from gridshare.store.forecasts import ForecastTables
from gridshare.store.meter_readings import MeterReadingTables
from gridshare.store.meter_values import MeterTables
from gridshare.store.plans import PlanTable
from gridshare.store.profiles import ProfileTables
from gridshare.store.sessions import SessionTable
from gridshare.store.stations import StationTables
from ocpp_adapter.events import (
    ConnectorStatusChanged,
    DomainEvent,
    EvChargingNeeds,
    ExternalLimitNotified,
    MeterReading,
    PriorityChargingNotified,
    SessionEnded,
    SessionStarted,
    StationBooted,
    StationConnected,
    StationDisconnected,
)


class StoreTables(
    StationTables,
    SessionTable,
    MeterTables,
    MeterReadingTables,
    ProfileTables,
    PlanTable,
    ForecastTables,
    AuditLog,
):
    """The store's tables on one connection (either engine's)."""

    def close(self) -> None:
        self._db.close()

    def record_event(self, event: DomainEvent) -> None:
        """Store what the event says; committed when this returns."""
        with self._tx() as db:
            match event:
                case StationConnected():
                    self._station_connected(db, event)
                case StationBooted():
                    self._station_booted(db, event)
                case StationDisconnected():
                    self._station_disconnected(db, event)
                case ConnectorStatusChanged():
                    self._connector_status(db, event)
                case SessionStarted():
                    self._session_started(db, event)
                case SessionEnded():
                    self._session_ended(db, event)
                case MeterReading():
                    self._meter_reading(db, event)
                case EvChargingNeeds():
                    self._ev_needs(db, event)
                case PriorityChargingNotified():
                    self._priority_charging(db, event)
                    what = {"transaction_id": event.transaction_id, "activated": event.activated}
                    write_audit(db, event.at, "priority_charging", event.station_id, what)
                case ExternalLimitNotified():
                    write_audit(
                        db,
                        event.at,
                        "external_limit",
                        event.connector_id or event.station_id,
                        {"source": event.source, "limit_a": event.limit_a},
                    )
