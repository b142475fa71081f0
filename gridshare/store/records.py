"""What the store gives back: a session and a limit as they are kept."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from ocpp_adapter.events import SessionEnded
from optimizer.site import station_of


def ended_key(e: SessionEnded) -> tuple[str, str] | None:
    """(station, transaction) of the session an end names: its station, else its
    connector's. None when it names neither: a transaction id alone is unique per
    station only, so no session is guessed (the OCPP adapter always names the station)."""
    station = e.station_id or (station_of(e.connector_id) if e.connector_id else None)
    return None if station is None else (station, e.transaction_id)


@dataclass(frozen=True)
class StoredSession:
    transaction_id: str
    station_id: str
    session_id: str
    """Unique in the database (the transaction id unless another station's has it)."""
    connector_id: str
    id_tag: str | None
    started_at: datetime
    meter_start_wh: float | None
    energy_wh: float | None
    """Last Energy.Active.Import.Register seen during the session."""
    departure: datetime | None
    energy_need_wh: float | None
    """The session's whole need, counted from its start (an EV states what it
    still wants: what was delivered by then is added)."""
    ev_max_current_a: float | None
    ev_min_current_a: float | None
    ended_at: datetime | None = None
    meter_stop_wh: float | None = None
    priority: float | None = None
    """Set by an operator (None: never set)."""
    charge_mode: str | None = None
    """fast, solar or min+solar, once set (None: its idTag's default)."""

    @property
    def delivered_wh(self) -> float:
        end = self.meter_stop_wh if self.meter_stop_wh is not None else self.energy_wh
        if end is None or self.meter_start_wh is None:
            return 0.0
        return max(0.0, end - self.meter_start_wh)


@dataclass(frozen=True)
class StoredLimit:
    connector_id: str
    purpose: str
    start: datetime
    periods: tuple[tuple[int, float], ...]
    accepted_at: datetime
