from __future__ import annotations

from datetime import UTC, datetime, timedelta

from forecasts import Block, CapacityBook, Forecast, ForecastType, Phase, Unit
from forecasts.capacity_book import Piece
from optimizer import Site

T0 = datetime(2026, 11, 22, 16, 0, tzinfo=UTC)


def minutes(m: float) -> datetime:
    return T0 + timedelta(minutes=m)


def site(voltage: float = 230.0) -> Site:
    return Site.model_validate(
        {
            "site": {"name": "depot", "slot_minutes": 15, "horizon_hours": 4, "voltage_v": voltage},
            "groups": [
                {"id": "grid", "limit_a": 250, "limit_kw": 170},
                {
                    "id": "trafo",
                    "parent": "grid",
                    "limit_a": 160,
                    "oscp_group_id": "trafo-1",
                    "fallback_limit_a": 60,
                },
                {"id": "panel", "parent": "trafo", "limit_a": 63},
            ],
        }
    )


def block(cap: float, m0: float, m1: float, unit: Unit = Unit.A, phase: Phase = Phase.ALL) -> Block:
    return Block(cap, unit, phase, minutes(m0), minutes(m1))


def forecast(
    *blocks: Block,
    type_: ForecastType = ForecastType.CONSUMPTION,
    group: str = "trafo-1",
    source: str = "dso",
    at: float = 0,
) -> Forecast:
    return Forecast(group, type_, tuple(blocks), minutes(at), source)


class CountingBook(CapacityBook):
    """Counts the pieces its views read."""

    read = 0

    def window(
        self,
        group_id: str,
        type_: ForecastType,
        start: datetime | None = None,
        end: datetime | None = None,
    ) -> list[Piece]:
        got = super().window(group_id, type_, start, end)
        self.read += len(got)
        return got
