"""Errors of the forecasts package.

ForecastError
├── InvalidForecast    a forecast or block makes no sense (end ≤ start, negative capacity)
└── InvalidRecord      an exported record cannot be imported again
"""


class ForecastError(ValueError):
    """Root of the forecasts package's errors."""


class InvalidForecast(ForecastError):
    """A forecast or one of its blocks is invalid."""


class InvalidRecord(ForecastError):
    """An exported store record cannot be read back."""
