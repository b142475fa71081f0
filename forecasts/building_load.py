"""The building's load: a group's non-EV load per line, forecast from its readings.

    f = BuildingLoadForecaster(
        timezone="Europe/Berlin",
        country="DE",
        prior=StandardProfile("g1", annual_kwh=120_000, voltage_v=230.0),
    ).fit(history)                     # aware DatetimeIndex; columns l1_a, l2_a, l3_a
    amps = f.forecast(start, slots=96, slot_minutes=15)   # (slots, 3), A per line

How it forecasts, per line:

* a profile by day type (workday, Saturday, Sunday or public holiday — from the
  ``holidays`` package for the site's country) and time of day, at a high
  quantile (``quantile``, 0.9 by default) of the last ``window_days`` of
  readings, so that the plan is rarely too optimistic;
* for the next ``correction_minutes``, blended towards persistence: the latest
  reading's departure from the median profile carried forward, plus the
  ``quantile`` of how much that departure grew over the same lead time in the
  history; its weight falls linearly from 1 now to 0 at ``correction_minutes``;
* where a (day type, time of day) cell has fewer than ``min_days`` days of
  readings, the ``prior``: a BDEW standard load profile scaled to the
  building's ``annual_kwh`` (`StandardProfile`), or a constant such as the
  meter's ``max_non_ev_a`` (`ConstantLoad`).

Pure: no I/O and no clock; the caller gives the readings and the time.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import holidays
import numpy as np
import pandas as pd

from forecasts.bdew import TABLE, h0_dynamic_factor
from forecasts.errors import ForecastError

LINE_COLUMNS = ("l1_a", "l2_a", "l3_a")
WORKDAY, SATURDAY, SUNDAY = 0, 1, 2
"""Day types; public holidays count as Sundays (as BDEW counts them)."""


class DayTypes:
    """Workday, Saturday or Sunday-or-holiday of local times. The 24th and 31st
    of December count as Saturdays when they fall on a workday (BDEW's rule)."""

    def __init__(self, country: str | None = None, subdivision: str | None = None) -> None:
        self.country = country
        self.subdivision = subdivision
        self._years: dict[int, frozenset[object]] = {}
        if country is not None:
            self._holidays(2000)  # an unknown country fails here, not mid-forecast

    def _holidays(self, year: int) -> frozenset[object]:
        if self.country is None:
            return frozenset()
        if year not in self._years:
            try:
                days = holidays.country_holidays(self.country, subdiv=self.subdivision, years=year)
            except NotImplementedError as e:
                raise ForecastError(f"holidays: {e}") from None
            self._years[year] = frozenset(days.keys())
        return self._years[year]

    def of(self, local: pd.DatetimeIndex) -> np.ndarray:
        weekday = np.asarray(local.day_of_week)
        out = np.where(weekday == 6, SUNDAY, np.where(weekday == 5, SATURDAY, WORKDAY))
        dates = local.date
        eve = (np.asarray(local.month) == 12) & np.isin(np.asarray(local.day), (24, 31))
        out = np.where(eve & (out == WORKDAY), SATURDAY, out)
        if self.country is not None:
            hol = set().union(*(self._holidays(int(y)) for y in np.unique(local.year)))
            out = np.where([d in hol for d in dates], SUNDAY, out)
        return out.astype(np.int64)


class Prior(Protocol):
    """What to assume where the readings do not tell yet."""

    def amps(self, local: pd.DatetimeIndex, day_type: np.ndarray) -> np.ndarray:
        """(len(local), 3): A per line at each local time."""
        ...


@dataclass(frozen=True)
class ConstantLoad:
    """The same load at every moment, e.g. a meter's ``max_non_ev_a``."""

    per_line_a: tuple[float, float, float]

    def amps(self, local: pd.DatetimeIndex, day_type: np.ndarray) -> np.ndarray:
        return np.tile(np.asarray(self.per_line_a, dtype=float), (len(local), 1))


def _season(local: pd.DatetimeIndex) -> np.ndarray:
    """0 winter (1 Nov - 20 Mar), 2 summer (15 May - 14 Sep), 1 transition."""
    md = np.asarray(local.month) * 100 + np.asarray(local.day)
    winter = (md >= 1101) | (md <= 320)
    summer = (md >= 515) & (md <= 914)
    return np.where(winter, 0, np.where(summer, 2, 1))


@dataclass(frozen=True)
class StandardProfile:
    """A BDEW standard load profile (``g0``, ``g1`` or ``h0``) scaled to
    ``annual_kwh``, shared evenly over the building's ``lines`` at
    ``voltage_v`` line to neutral. BDEW's mean profile, not a quantile."""

    profile: str
    annual_kwh: float
    voltage_v: float = 230.0
    lines: int = 3

    def __post_init__(self) -> None:
        if self.profile not in TABLE:
            raise ForecastError(f"profile {self.profile!r}: one of {', '.join(sorted(TABLE))}")
        if not (self.annual_kwh >= 0 and math.isfinite(self.annual_kwh)):
            raise ForecastError("annual_kwh must be ≥ 0")
        if not self.voltage_v > 0 or self.lines not in (1, 2, 3):
            raise ForecastError("voltage_v must be > 0 and lines 1, 2 or 3")

    def kw(self, local: pd.DatetimeIndex, day_type: np.ndarray) -> np.ndarray:
        table = np.asarray(TABLE[self.profile])  # (96, 9)
        quarter = (np.asarray(local.hour) * 60 + np.asarray(local.minute)) // 15
        kw = table[quarter, _season(local) * 3 + day_type] * self.annual_kwh / 1000.0
        if self.profile == "h0":
            kw = kw * np.array([h0_dynamic_factor(d) for d in np.asarray(local.day_of_year)])
        return np.asarray(kw, dtype=float)

    def amps(self, local: pd.DatetimeIndex, day_type: np.ndarray) -> np.ndarray:
        per_line = self.kw(local, day_type) * 1000.0 / (self.voltage_v * self.lines)
        out = np.zeros((len(local), 3))
        out[:, : self.lines] = per_line[:, None]
        return out


@dataclass(frozen=True)
class ForecastSettings:
    quantile: float = 0.9
    """Of the load by day type and time of day: 0.9 → too low one time in ten."""
    bin_minutes: int = 15
    """Time-of-day resolution of the profile (divides a day)."""
    window_days: int = 56
    """Only the latest readings count, so the profile follows the seasons."""
    min_days: int = 3
    """Days of readings a profile cell needs before it replaces the prior."""
    correction_minutes: int = 60
    """How far ahead the latest reading still weighs."""

    def __post_init__(self) -> None:
        if not 0.0 < self.quantile < 1.0:
            raise ForecastError("quantile must be between 0 and 1")
        if self.bin_minutes < 1 or 1440 % self.bin_minutes:
            raise ForecastError("bin_minutes must divide a day")
        if self.window_days < 1 or self.min_days < 1 or self.correction_minutes < 0:
            raise ForecastError("window_days, min_days ≥ 1 and correction_minutes ≥ 0")


@dataclass(frozen=True)
class Reading:
    at: datetime
    amps: tuple[float, float, float]


@dataclass
class _Fit:
    high: np.ndarray
    """(3 day types, bins, 3 lines): the quantile profile, NaN where too few days."""
    median: np.ndarray
    growth: np.ndarray
    """(lead bins + 1, 3): quantile of the growth of the departure from the median."""
    latest: Reading | None


def readings_frame(
    times: Sequence[datetime], amps: np.ndarray | Sequence[Sequence[float]]
) -> pd.DataFrame:
    """Readings as the forecaster takes them: aware times, one column per line."""
    return pd.DataFrame(
        np.asarray(amps, dtype=float).reshape(-1, 3),
        index=pd.DatetimeIndex(list(times)),
        columns=list(LINE_COLUMNS),
    )


@dataclass
class BuildingLoadForecaster:
    """See the module docstring. `fit` learns from readings; `forecast` is then a
    pure function of the time (and optionally a newer reading)."""

    prior: Prior
    timezone: str = "UTC"
    country: str | None = None
    subdivision: str | None = None
    settings: ForecastSettings = field(default_factory=ForecastSettings)
    _fit: _Fit | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        try:
            self._zone = ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ForecastError(f"timezone {self.timezone!r} is not a known time zone") from None
        self._days = DayTypes(self.country, self.subdivision)

    @property
    def bins(self) -> int:
        return 1440 // self.settings.bin_minutes

    def _cells(self, utc: pd.DatetimeIndex) -> tuple[pd.DatetimeIndex, np.ndarray, np.ndarray]:
        local = utc.tz_convert(self._zone)
        minute = np.asarray(local.hour) * 60 + np.asarray(local.minute)
        return local, self._days.of(local), minute // self.settings.bin_minutes

    def fit(self, history: pd.DataFrame) -> BuildingLoadForecaster:
        """Learn from ``history`` (readings in any order; rows with a missing or
        non-finite value are left out). Returns ``self``."""
        s = self.settings
        frame = _clean(history)
        if frame.empty:
            self._fit = None
            return self
        last = frame.index[-1]
        l1, l2, l3 = (float(v) for v in frame.iloc[-1].to_numpy(float))
        latest = Reading(last.to_pydatetime(), (l1, l2, l3))
        frame = frame[frame.index > last - pd.Timedelta(days=s.window_days)]
        # quantiles of the readings themselves: a bin's mean would hide its peaks
        local, day_type, tod = self._cells(pd.DatetimeIndex(frame.index))
        keys = pd.MultiIndex.from_arrays([day_type, tod])
        data = pd.DataFrame(frame.to_numpy(float), index=keys)
        high = np.full((3, self.bins, 3), np.nan)
        median = np.full((3, self.bins, 3), np.nan)
        days = pd.Series(np.asarray(local.date), index=keys).groupby(level=[0, 1]).nunique()
        enough = days[days >= s.min_days].index
        if len(enough):
            grouped = data[data.index.isin(enough)].groupby(level=[0, 1])
            for table, q in ((high, s.quantile), (median, 0.5)):
                cells = grouped.quantile(q)
                dt = cells.index.get_level_values(0).to_numpy()
                b = cells.index.get_level_values(1).to_numpy()
                table[dt, b] = cells.to_numpy(float)
        self._fit = _Fit(high, median, np.zeros((1, 3)), latest)
        binned = frame.resample(f"{s.bin_minutes}min").mean()
        b_local, b_day, b_tod = self._cells(pd.DatetimeIndex(binned.index))
        self._fit.growth = self._growth(binned.to_numpy(float), b_day, b_tod, b_local)
        return self

    def _growth(
        self,
        values: np.ndarray,
        day_type: np.ndarray,
        tod: np.ndarray,
        local: pd.DatetimeIndex,
    ) -> np.ndarray:
        """Per lead time (in bins, 0 .. the correction's reach): the ``quantile``
        of how much the departure from the median grew over that lead."""
        s = self.settings
        lead = math.ceil(s.correction_minutes / s.bin_minutes)
        out = np.zeros((lead + 1, 3))
        _, median = self._profile(local, day_type, tod)
        dev = values - median
        for h in range(1, lead + 1):
            d = dev[h:] - dev[:-h]
            d = d[~np.isnan(d).any(axis=1)]
            if len(d) >= 20:  # fewer says nothing about a tail
                out[h] = np.quantile(d, s.quantile, axis=0)
        return out

    def _profile(
        self, local: pd.DatetimeIndex, day_type: np.ndarray, tod: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """(high, median) per time: the learned cells, the prior elsewhere."""
        prior = np.asarray(self.prior.amps(local, day_type), dtype=float)
        if self._fit is None:
            return prior, prior
        high = self._fit.high[day_type, tod]
        median = self._fit.median[day_type, tod]
        return np.where(np.isnan(high), prior, high), np.where(np.isnan(median), prior, median)

    def forecast(
        self,
        start: datetime,
        slots: int,
        slot_minutes: int,
        reading: Reading | None = None,
    ) -> np.ndarray:
        """(slots, 3): the load per line to plan for in each slot from ``start``
        (aware): the highest of the slot's points. ``reading``: a reading newer
        than those fitted (default: the latest fitted)."""
        if start.tzinfo is None:
            raise ForecastError("start must be timezone-aware")
        if slots < 1 or slot_minutes < 1:
            raise ForecastError("slots and slot_minutes must be ≥ 1")
        s = self.settings
        step = math.gcd(slot_minutes, s.bin_minutes)
        per_slot = slot_minutes // step
        times = pd.date_range(start, periods=slots * per_slot, freq=f"{step}min").tz_convert("UTC")
        local, day_type, tod = self._cells(times)
        high, median = self._profile(local, day_type, tod)
        if reading is None and self._fit is not None:
            reading = self._fit.latest
        if reading is not None and s.correction_minutes > 0:
            high = self._corrected(times, high, median, reading)
        return high.reshape(slots, per_slot, 3).max(axis=1)

    def _corrected(
        self,
        times: pd.DatetimeIndex,
        high: np.ndarray,
        median: np.ndarray,
        reading: Reading,
    ) -> np.ndarray:
        s = self.settings
        at = pd.DatetimeIndex([pd.Timestamp(reading.at)]).tz_convert("UTC")
        r_local, r_day, r_tod = self._cells(at)
        _, r_median = self._profile(r_local, r_day, r_tod)
        departure = np.asarray(reading.amps, dtype=float) - r_median[0]
        lead = np.asarray((times - at[0]) / pd.Timedelta(minutes=1), dtype=float)
        lead = np.maximum(lead, 0.0)
        weight = np.clip(1.0 - lead / s.correction_minutes, 0.0, 1.0)[:, None]
        growth = np.zeros((len(times), 3))
        if self._fit is not None:
            g = self._fit.growth
            pos = np.minimum(lead / s.bin_minutes, len(g) - 1)
            for line in range(3):
                growth[:, line] = np.interp(pos, np.arange(len(g)), g[:, line])
        persistence = median + departure + growth
        return np.asarray(weight * persistence + (1.0 - weight) * high)


def _clean(history: pd.DataFrame) -> pd.DataFrame:
    if not isinstance(history.index, pd.DatetimeIndex) or history.index.tz is None:
        raise ForecastError("readings need a timezone-aware DatetimeIndex")
    missing = [c for c in LINE_COLUMNS if c not in history.columns]
    if missing:
        raise ForecastError(f"readings lack column(s) {', '.join(missing)}")
    frame = history[list(LINE_COLUMNS)].astype(float)
    frame = frame[np.isfinite(frame.to_numpy()).all(axis=1)]
    frame.index = pd.DatetimeIndex(frame.index).tz_convert("UTC")
    return frame.sort_index()
