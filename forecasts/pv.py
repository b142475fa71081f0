"""The site's PV generation ahead: clear-sky from the array's place and shape
(pvlib), scaled by what the array really gave over the last hour, or a forecast
file.

```toml
[pv]
group = "grid"            # the group behind whose connection the inverter feeds
latitude = 52.37          # degrees north
longitude = 4.89          # degrees east
tilt = 30                 # degrees from horizontal
azimuth = 180             # degrees clockwise from north (180: facing south)
kwp = 40                  # the array's peak power (kW at 1000 W/m²)
lines = ["L1", "L2", "L3"]   # the lines the inverter feeds (its kW split evenly)
performance_ratio = 0.85  # inverter, wiring, heat and soiling losses
# forecast_csv = "pv-forecast.csv"   # start,kw rows: used as is instead of pvlib
```

A forecast file (and the simulator's ``--pv`` file) has a header ``start,kw``:
each row the mean generation in kW from ``start`` (ISO 8601; without an offset
a local time of the site) until the next row's start, the last row for one
slot. Times outside the rows generate nothing.

The clear-sky index is the energy the array's generation meters measured over
the last hour over what the clear-sky model gives for the same moments (at most
`MAX_INDEX`); before sunrise, or with no reading, the last index measured holds
(at first 1: a clear sky).
"""

from __future__ import annotations

import csv
import math
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Annotated
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, field_validator

from forecasts.errors import ForecastError
from optimizer.problem import TimeGrid
from optimizer.site import LINES, Line

SAMPLES_PER_SLOT_MINUTES = 5
"""The clear-sky model is evaluated every this many minutes and averaged per slot."""
MAX_INDEX = 1.3
"""A clear-sky index above this is a meter's error (cloud edges reach ~1.2)."""
MIN_CLEAR_KWH = 0.01
"""Below this clear-sky energy over the hour the index is not measured (night)."""
INDEX_WINDOW = timedelta(hours=1)
MAX_INDEX_SAMPLES = 60
OBSERVE_EVERY = timedelta(minutes=1)
"""At most this many of the hour's readings measure the index (evenly spread)."""


class PvConfigError(ForecastError):
    """A ``[pv]`` table or a PV forecast file that makes no sense."""


class PvConfig(BaseModel):
    """The ``[pv]`` table of a site file (see the module)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    group: str = Field(min_length=1)
    latitude: Annotated[float, Field(ge=-90, le=90, allow_inf_nan=False)]
    longitude: Annotated[float, Field(ge=-180, le=180, allow_inf_nan=False)]
    tilt: Annotated[float, Field(ge=0, le=90, allow_inf_nan=False)] = 0.0
    azimuth: Annotated[float, Field(ge=0, le=360, allow_inf_nan=False)] = 180.0
    kwp: Annotated[float, Field(gt=0, le=100_000, allow_inf_nan=False)]
    lines: tuple[Line, ...] = LINES
    performance_ratio: Annotated[float, Field(gt=0, le=1, allow_inf_nan=False)] = 0.85
    altitude_m: Annotated[float, Field(ge=-500, le=9000, allow_inf_nan=False)] = 0.0
    forecast_csv: str | None = Field(default=None, min_length=1)

    @field_validator("lines")
    @classmethod
    def _lines(cls, v: tuple[Line, ...]) -> tuple[Line, ...]:
        if not v or len(set(v)) != len(v):
            raise ValueError("lines names each line the inverter feeds once (L1, L2, L3)")
        return v

    @field_validator("kwp")
    @classmethod
    def _kilowatts(cls, v: float) -> float:
        if v > 20_000:
            raise ValueError(f"kwp = {v:g}: looks like watts; kwp is the peak power in kW")
        return v


def clear_sky_kw(config: PvConfig, times: pd.DatetimeIndex) -> np.ndarray:
    """The array's AC output (kW) under a clear sky at each of ``times`` (aware)."""
    import pvlib  # imported here: a site without PV never pays for it

    if times.tz is None:
        raise PvConfigError("clear-sky times must be timezone-aware")
    if len(times) == 0:
        return np.zeros(0)
    place = pvlib.location.Location(config.latitude, config.longitude, altitude=config.altitude_m)
    with warnings.catch_warnings():  # pvlib still reads pandas names pandas deprecates
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", FutureWarning)
        sun = place.get_solarposition(times)
        sky = place.get_clearsky(times, model="ineichen", solar_position=sun)
        poa = pvlib.irradiance.get_total_irradiance(
            config.tilt,
            config.azimuth,
            sun["apparent_zenith"],
            sun["azimuth"],
            sky["dni"],
            sky["ghi"],
            sky["dhi"],
        )["poa_global"]
    kw = np.nan_to_num(poa.to_numpy(float), nan=0.0) / 1000.0 * config.kwp
    return np.clip(kw * config.performance_ratio, 0.0, config.kwp)


def clear_sky_slots(config: PvConfig, grid: TimeGrid) -> np.ndarray:
    """Per slot of ``grid``: the clear-sky mean output (kW) over the slot."""
    per = max(1, grid.slot_minutes // SAMPLES_PER_SLOT_MINUTES)
    step = grid.step / per
    start = pd.Timestamp(grid.start) + step / 2
    times = pd.date_range(start, periods=grid.slots * per, freq=step)
    return clear_sky_kw(config, times).reshape(grid.slots, per).mean(axis=1)


def clear_sky_index(config: PvConfig, measured: Sequence[tuple[datetime, float]]) -> float | None:
    """What the array gave over what a clear sky gives, at the same moments
    (``measured``: (time, kW) samples); None where the clear sky gives nothing."""
    if not measured:
        return None
    times = pd.DatetimeIndex([pd.Timestamp(t) for t, _ in measured])
    clear = clear_sky_kw(config, times)
    got = np.array([max(kw, 0.0) for _, kw in measured])
    if clear.mean() * INDEX_WINDOW.total_seconds() / 3600.0 < MIN_CLEAR_KWH:
        return None
    return float(min(got.sum() / clear.sum(), MAX_INDEX))


@dataclass(frozen=True)
class PvSeries:
    """A generation series from a forecast file: mean kW from each start on."""

    starts: np.ndarray
    """Start times, epoch seconds, increasing."""
    kw: np.ndarray

    def slots(self, grid: TimeGrid) -> np.ndarray:
        """Per slot of ``grid``: the mean generation (kW) over the slot (0 outside the rows)."""
        if not len(self.starts):
            return np.zeros(grid.slots)
        last = self.starts[-1] + grid.slot_minutes * 60.0
        if len(self.starts) > 1:
            last = self.starts[-1] + float(np.min(np.diff(self.starts)))
        edges = np.append(self.starts, last)
        # energy up to each moment (piecewise linear): a slot's mean is a difference
        energy = np.concatenate([[0.0], np.cumsum(self.kw * np.diff(edges))])
        t0 = grid.start.timestamp() + np.arange(grid.slots + 1) * grid.slot_minutes * 60.0
        e = np.interp(t0, edges, energy, left=0.0, right=float(energy[-1]))
        return np.diff(e) / (grid.slot_minutes * 60.0)


def read_pv_csv(path: str | Path, timezone: str = "UTC") -> PvSeries:
    """A ``start,kw`` file (see the module); `PvConfigError` naming the row otherwise."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as e:
        raise PvConfigError(f"{p}: cannot read the PV forecast ({e.strerror})") from None
    return parse_pv_csv(text.splitlines(), str(p), timezone)


def parse_pv_csv(lines: Iterable[str], name: str, timezone: str = "UTC") -> PvSeries:
    zone = ZoneInfo(timezone)
    rows = csv.reader(lines)
    header = [h.strip().lower() for h in next(rows, [])]
    if header != ["start", "kw"]:
        raise PvConfigError(f"{name}:1: the header must be 'start,kw', not {','.join(header)!r}")
    starts: list[float] = []
    kws: list[float] = []
    for n, row in enumerate(rows, start=2):
        if not row or not "".join(row).strip():
            continue
        if len(row) != 2:
            raise PvConfigError(f"{name}:{n}: two columns (start,kw), not {len(row)}")
        try:
            t = datetime.fromisoformat(row[0].strip())
        except ValueError:
            raise PvConfigError(f"{name}:{n}: start {row[0]!r} is not an ISO 8601 time") from None
        t = t if t.tzinfo is not None else t.replace(tzinfo=zone)
        try:
            kw = float(row[1])
        except ValueError:
            raise PvConfigError(f"{name}:{n}: kw {row[1]!r} is not a number") from None
        if not math.isfinite(kw) or kw < 0:
            raise PvConfigError(f"{name}:{n}: kw must be a finite figure ≥ 0, not {row[1]!r}")
        if starts and t.timestamp() <= starts[-1]:
            raise PvConfigError(f"{name}:{n}: start {row[0]!r} is not after the row before it")
        starts.append(t.timestamp())
        kws.append(kw)
    if not starts:
        raise PvConfigError(f"{name}: no rows of generation")
    return PvSeries(np.array(starts), np.array(kws))


class PvForecast:
    """The array's generation per slot, per line it feeds: a forecast file's,
    or clear-sky scaled by the last index measured (see the module)."""

    def __init__(self, config: PvConfig, voltage_v: float, series: PvSeries | None = None) -> None:
        self.config = config
        self.voltage_v = voltage_v
        self.series = series
        self.index = 1.0
        """The clear-sky index in use (the last measured; 1 before any)."""
        self._observed: datetime | None = None
        """When the index was last measured (at most once per `OBSERVE_EVERY`)."""
        self._clear: tuple[tuple[datetime, int, int], np.ndarray] | None = None
        """The clear sky of the last grid asked for (re-plans within a slot share it)."""

    def observe(self, measured: Sequence[tuple[datetime, float]], now: datetime) -> float:
        """Measure the clear-sky index on the (time, kW) samples of the last hour."""
        if self._observed is not None and timedelta(0) <= now - self._observed < OBSERVE_EVERY:
            return self.index
        self._observed = now
        since = now - INDEX_WINDOW
        recent = [(t, kw) for t, kw in measured if since <= t <= now]
        if (
            len(recent) > MAX_INDEX_SAMPLES
        ):  # a meter read every second: a sample a minute is plenty
            recent = [
                recent[i] for i in np.linspace(0, len(recent) - 1, MAX_INDEX_SAMPLES).astype(int)
            ]
        k = clear_sky_index(self.config, recent)
        if k is not None:
            self.index = k
        return self.index

    def kw(self, grid: TimeGrid) -> np.ndarray:
        """Per slot of ``grid``: the generation (kW)."""
        if self.series is not None:
            return self.series.slots(grid)
        key = (grid.start, grid.slot_minutes, grid.slots)
        if self._clear is None or self._clear[0] != key:
            self._clear = (key, clear_sky_slots(self.config, grid))
        return self._clear[1] * self.index

    def per_line_a(self, grid: TimeGrid) -> dict[Line, np.ndarray]:
        """Per line of the site: the generation's current (A) in each slot."""
        a = self.kw(grid) * 1000.0 / (self.voltage_v * len(self.config.lines))
        return {line: a if line in self.config.lines else np.zeros(grid.slots) for line in LINES}
