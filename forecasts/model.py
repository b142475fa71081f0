"""Capacity forecasts as domain data: types, phases, units, blocks.

These are the OSCP 2.0 vocabulary (the `oscp` package parses its messages into
them), kept here so the capacity arithmetic depends on no transport.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from forecasts.errors import InvalidForecast, InvalidRecord


class ForecastType(StrEnum):
    CONSUMPTION = "CONSUMPTION"
    """The limit on the group's consumption."""
    GENERATION = "GENERATION"
    FALLBACK_CONSUMPTION = "FALLBACK_CONSUMPTION"
    """The limit to keep while the capacity provider is offline."""
    FALLBACK_GENERATION = "FALLBACK_GENERATION"
    OPTIMUM = "OPTIMUM"
    """Advice (e.g. from a capacity optimizer); shown, never a limit."""


class Phase(StrEnum):
    UNKNOWN = "UNKNOWN"
    ONE = "ONE"
    TWO = "TWO"
    THREE = "THREE"
    ALL = "ALL"


class Unit(StrEnum):
    A = "A"
    W = "W"
    KW = "KW"
    WH = "WH"
    KWH = "KWH"


def _aware_utc(t: datetime, what: str) -> datetime:
    if t.tzinfo is None:
        raise InvalidForecast(f"{what} must be timezone-aware")
    return t.astimezone(UTC)


@dataclass(frozen=True)
class Block:
    """A capacity over ``[start, end)`` as the capacity provider stated it."""

    capacity: float
    unit: Unit
    phase: Phase
    start: datetime
    end: datetime

    def __post_init__(self) -> None:
        object.__setattr__(self, "start", _aware_utc(self.start, "block start"))
        object.__setattr__(self, "end", _aware_utc(self.end, "block end"))
        if not self.end > self.start:
            raise InvalidForecast(f"block ends ({self.end}) before it starts ({self.start})")
        if not (math.isfinite(self.capacity) and self.capacity >= 0):
            raise InvalidForecast(f"block capacity must be finite and ≥ 0, not {self.capacity}")

    @property
    def hours(self) -> float:
        return (self.end - self.start).total_seconds() / 3600.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "capacity": self.capacity,
            "unit": self.unit.value,
            "phase": self.phase.value,
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Block:
        return cls(
            float(d["capacity"]),
            Unit(d["unit"]),
            Phase(d["phase"]),
            datetime.fromisoformat(d["start"]),
            datetime.fromisoformat(d["end"]),
        )


@dataclass(frozen=True)
class Forecast:
    """One forecast message: a group's blocks of one type, as received.

    ``group_id`` is the capacity provider's name of the group (a site group's
    ``oscp_group_id``); ``source`` the provider that sent it.
    """

    group_id: str
    type: ForecastType
    blocks: tuple[Block, ...]
    received_at: datetime
    source: str

    def __post_init__(self) -> None:
        object.__setattr__(self, "received_at", _aware_utc(self.received_at, "received_at"))
        if not self.group_id:
            raise InvalidForecast("forecast needs a group_id")

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready data (for the app's storage); `from_dict` reads it back."""
        return {
            "group_id": self.group_id,
            "type": self.type.value,
            "source": self.source,
            "received_at": self.received_at.isoformat(),
            "blocks": [b.to_dict() for b in self.blocks],
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Forecast:
        try:
            return cls(
                group_id=str(d["group_id"]),
                type=ForecastType(d["type"]),
                source=str(d["source"]),
                received_at=datetime.fromisoformat(d["received_at"]),
                blocks=tuple(Block.from_dict(b) for b in d["blocks"]),
            )
        except (KeyError, TypeError, ValueError) as e:
            raise InvalidRecord(f"bad forecast record: {e}") from None
