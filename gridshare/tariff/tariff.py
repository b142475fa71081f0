"""A site's tariff over time, and what the planner is told of it (`CostSignal`).

Energy price at a moment: the table's step in force at the site's local time
of day, unless a ``energy_prices_csv`` row covers it (a row holds from its
start to the next row's; the last one for the files' usual step). A slot's
price is the mean over its 5-minute parts. The billing period is the calendar
month in the site's time zone.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np

from forecasts.carbon import CarbonSignal
from gridshare.csvio import InputError, _float, _rows, parse_time
from gridshare.tariff import TariffError
from gridshare.tariff.config import TariffConfig
from optimizer import TimeGrid
from optimizer.cost_signal import CostSignal, PeakCharge

PART = timedelta(minutes=5)


@dataclass(frozen=True)
class PriceRows:
    """``start,price`` rows: each price from its start to the next row's."""

    starts: np.ndarray
    """UTC timestamps (s), increasing."""
    prices: np.ndarray
    last_s: float
    """How long the last row holds (the rows' median step)."""

    def at(self, stamps: np.ndarray) -> np.ndarray:
        """Price at each of ``stamps`` (NaN where no row covers it)."""
        k = np.searchsorted(self.starts, stamps, side="right") - 1
        ok = (k >= 0) & (stamps < self.starts[-1] + self.last_s)
        return np.where(ok, self.prices[np.clip(k, 0, len(self.prices) - 1)], np.nan)


def read_price_rows(path: Path, zone: ZoneInfo) -> PriceRows:
    points = []
    for where, row in _rows(path, ("start", "price")):
        t = parse_time(row["start"], where, "start", zone)
        points.append((t.timestamp(), _float(row["price"], where, "price", minimum=None)))
    if not points:
        raise InputError(f"{path}:2: no price rows")
    points.sort()
    starts = np.array([t for t, _ in points])
    if len(starts) > 1 and np.any(np.diff(starts) == 0):
        raise InputError(f"{path}: two rows start at the same time")
    step = float(np.median(np.diff(starts))) if len(starts) > 1 else 3600.0
    return PriceRows(starts, np.array([v for _, v in points]), step)


@dataclass(frozen=True)
class Tariff:
    config: TariffConfig
    zone: ZoneInfo
    rows: PriceRows | None = None

    @classmethod
    def of(cls, config: TariffConfig, zone: str, folder: Path | None = None) -> Tariff:
        """The tariff of ``config``; its CSV is read from ``folder`` if relative."""
        tz = ZoneInfo(zone)
        rows = None
        if config.energy_prices_csv is not None:
            p = config.energy_prices_csv
            if not p.is_absolute() and folder is not None:
                p = folder / p
            rows = read_price_rows(p, tz)
        return cls(config, tz, rows)

    @property
    def has_energy_price(self) -> bool:
        return bool(self.config.energy_prices) or self.rows is not None

    def price_at(self, times: Sequence[datetime]) -> np.ndarray:
        """Price per kWh imported at each of ``times``."""
        stamps = np.array([t.timestamp() for t in times], dtype=float)
        out = np.full(len(stamps), np.nan)
        steps = self.config.energy_prices
        if steps:
            minutes = np.array([s.minutes for s in steps])
            prices = np.array([s.price for s in steps])
            local = [t.astimezone(self.zone) for t in times]
            tod = np.array([t.hour * 60 + t.minute for t in local])
            # before the first step of a day: the last step of the day before
            out = prices[(np.searchsorted(minutes, tod, side="right") - 1) % len(prices)]
        if self.rows is not None:
            given = self.rows.at(stamps)
            out = np.where(np.isnan(given), out, given)
            if np.any(np.isnan(out)):  # only a CSV: hold its first or last price
                out = np.where(
                    np.isnan(out),
                    np.where(
                        stamps < self.rows.starts[0], self.rows.prices[0], self.rows.prices[-1]
                    ),
                    out,
                )
        return out

    def slot_prices(self, grid: TimeGrid) -> np.ndarray:
        """Mean price over each slot's 5-minute parts."""
        per = max(grid.slot_minutes // 5, 1)
        times = [grid.start + k * PART for k in range(grid.slots * per)]
        return self.price_at(times).reshape(grid.slots, per).mean(axis=1)

    def period_start(self, t: datetime) -> datetime:
        """Start of the billing period holding ``t`` (UTC)."""
        local = t.astimezone(self.zone)
        first = datetime(local.year, local.month, 1, tzinfo=self.zone)
        return first.astimezone(UTC)

    def next_period_start(self, t: datetime) -> datetime:
        local = t.astimezone(self.zone)
        year, month = (local.year + 1, 1) if local.month == 12 else (local.year, local.month + 1)
        return datetime(year, month, 1, tzinfo=self.zone).astimezone(UTC)

    def interval_start(self, t: datetime) -> datetime:
        """Start of the peak interval holding ``t`` (clock-aligned)."""
        n = self.config.peak_interval_minutes
        t = t.astimezone(UTC)
        return t.replace(minute=t.minute - t.minute % n, second=0, microsecond=0)


@dataclass(frozen=True)
class SignalInputs:
    """What changes between re-plans: the peak so far and what the meters know."""

    peak_so_far_kw: float = 0.0
    elapsed_kwh: float = 0.0
    generation_kw: np.ndarray | None = None
    optimum_kw: np.ndarray | None = None


def cost_signal(
    tariff: Tariff | None,
    carbon: CarbonSignal | None,
    grid: TimeGrid,
    now: datetime,
    inputs: SignalInputs | None = None,
) -> CostSignal | None:
    """What the planner is told at ``now``: prices, the carbon forecast
    published by then, the peak charge (None: nothing to plan with)."""
    if tariff is None and carbon is None:
        return None
    inputs = inputs or SignalInputs()
    cfg = tariff.config if tariff is not None else None
    price = tariff.slot_prices(grid) if tariff is not None and tariff.has_energy_price else None
    moer = None
    if carbon is not None and cfg is not None and cfg.carbon_price_per_kg > 0:
        moer = carbon.forecast(now, grid.start, grid.slots, grid.slot_minutes)
        if np.any(np.isnan(moer)):
            moer = None  # nothing published yet: no carbon term
    peak = None
    if tariff is not None and cfg is not None and cfg.peak_price_per_kw > 0:
        nxt = tariff.next_period_start(now)
        reset = int(np.ceil(grid.position(nxt))) if nxt < grid.end else None
        peak = PeakCharge(
            cfg.peak_price_per_kw,
            so_far_kw=max(inputs.peak_so_far_kw, 0.0),
            interval_minutes=cfg.peak_interval_minutes,
            elapsed_kwh=max(inputs.elapsed_kwh, 0.0),
            reset_slot=reset,
        )
    try:
        return CostSignal(
            energy_price=price,
            carbon_kg_per_kwh=moer,
            carbon_price_per_kg=cfg.carbon_price_per_kg if cfg is not None else 0.0,
            peak=peak,
            generation_kw=inputs.generation_kw,
            value_of_unmet_kwh=cfg.value_of_unmet_kwh if cfg is not None else None,
            optimum_kw=inputs.optimum_kw,
            hedge_share=cfg.hedge_share if cfg is not None else CostSignal.hedge_share,
        )
    except ValueError as e:  # the optimizer's checks, in the tariff's terms
        raise TariffError(f"tariff: {e}") from None
