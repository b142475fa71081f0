"""Capacity and demand over time.

    from forecasts import CapacityBook, Forecast, Block, ForecastType
    book = CapacityBook()
    book.add(forecast)                       # from the oscp package
    capacity = book.capacity(site, grid, now)  # optimizer.problem.Capacity
    frame = book.frame(site, grid, now)        # the same as a pandas DataFrame
    book.applied(group_id, type_, voltage_v)   # what applies, block by block
    book.prune(now - keep)                     # forget what ended

Demand side estimates live in `forecasts.demand`.
"""

from forecasts.capacity_book import MAX_BLOCKS, CapacityBook, Override, Piece, Stretch
from forecasts.compliance import Excess, excesses
from forecasts.demand import (
    DemandDefaults,
    DepartureEstimate,
    EnergyEstimate,
    EvNeeds,
    PastSession,
    RateLearner,
    RateSettings,
    Source,
    TagHistory,
    estimate_departure,
    estimate_energy,
)
from forecasts.errors import ForecastError, InvalidForecast, InvalidRecord
from forecasts.model import Block, Forecast, ForecastType, Phase, Unit
from forecasts.units import NO_LIMIT, Limit, block_limit, normalize

__all__ = [
    "MAX_BLOCKS",
    "NO_LIMIT",
    "Block",
    "CapacityBook",
    "DemandDefaults",
    "DepartureEstimate",
    "EnergyEstimate",
    "EvNeeds",
    "Excess",
    "Forecast",
    "ForecastError",
    "ForecastType",
    "InvalidForecast",
    "InvalidRecord",
    "Limit",
    "Override",
    "PastSession",
    "Phase",
    "Piece",
    "RateLearner",
    "RateSettings",
    "Source",
    "Stretch",
    "TagHistory",
    "Unit",
    "block_limit",
    "estimate_departure",
    "estimate_energy",
    "excesses",
    "normalize",
]
