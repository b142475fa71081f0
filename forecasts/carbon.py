"""The grid's marginal emission rate (MOER) and its forecasts, as a planner at
each moment could have known them.

Files: ``time,moer,f1..fN`` (CSV, ``.gz`` too), one row per 5 minutes:
``time`` (ISO, UTC unless it has an offset), ``moer`` the rate measured for
the interval starting at ``time`` (kg CO2 per kWh) and ``f1..fN`` the forecast
published at ``time`` for the N intervals starting ``time + k·5 min``. Several
files are merged (overlapping rows: the first file's row is kept).

What a planner at ``now`` sees (`CarbonSignal.forecast`): the latest row
published at or before ``now``; an interval it covers gets its forecast (the
interval in progress gets f1); an interval beyond its N intervals gets the
time-of-day mean of the real rates measured before ``now`` over the
`HISTORY_DAYS` days before (an interval of a day that has no past value: the
last forecast value held). Nothing measured after ``now`` is ever used. The
real rate (`CarbonSignal.real`) is for evaluation and the offline optimum.
"""

from __future__ import annotations

import csv
import gzip
import io
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

from forecasts.errors import ForecastError

STEP = timedelta(minutes=5)
STEP_S = 300
DAY_STEPS = 288
HISTORY_DAYS = 7
"""Days of past real rates whose time-of-day mean stands in beyond the forecast."""


class CarbonFileError(ForecastError):
    """A carbon signal file that cannot be read; the message names file and line."""


@dataclass(frozen=True)
class CarbonSignal:
    """Rows on a 5-minute index from ``start``: the real rate and the forecasts."""

    start: datetime
    moer: np.ndarray
    """(rows,) real rate, NaN where there was no row."""
    forecasts: np.ndarray
    """(rows, N) forecast published at each row (NaN where there was no row)."""

    @property
    def horizon(self) -> int:
        return int(self.forecasts.shape[1])

    @property
    def end(self) -> datetime:
        return self.start + len(self.moer) * STEP

    def _index(self, t: datetime) -> int:
        return int((t - self.start).total_seconds() // STEP_S)

    def real(self, times: Sequence[datetime] | np.ndarray) -> np.ndarray:
        """The measured rate of the interval holding each of ``times`` (NaN outside)."""
        idx = np.array([self._index(t) for t in times], dtype=np.int64)
        ok = (idx >= 0) & (idx < len(self.moer))
        out = np.full(len(idx), np.nan)
        out[ok] = self.moer[idx[ok]]
        return out

    def published(self, now: datetime) -> int | None:
        """Row of the latest forecast published at or before ``now``."""
        i = min(self._index(now), len(self.moer) - 1)
        while i >= 0 and np.isnan(self.forecasts[i, 0]):
            i -= 1
        return i if i >= 0 else None

    def forecast(self, now: datetime, start: datetime, steps: int, minutes: int) -> np.ndarray:
        """Per slot of ``minutes`` from ``start`` (``steps`` slots): the mean rate a
        planner at ``now`` is told (module docstring). NaN only when nothing at
        all was published before ``now``."""
        per = max(minutes // 5, 1)
        first = self._index(start)
        targets = first + np.arange(steps * per)
        row = self.published(now)
        out = np.full(len(targets), np.nan)
        if row is None:
            return out.reshape(steps, per).mean(axis=1)
        f = self.forecasts[row]
        k = targets - row
        inside = k <= self.horizon
        out[inside] = f[np.clip(k[inside], 1, self.horizon) - 1]
        beyond = np.flatnonzero(~inside)
        if len(beyond):
            out[beyond] = self._past_mean(targets[beyond], self._index(now))
            hold = f[~np.isnan(f)][-1] if np.any(~np.isnan(f)) else np.nan
            out[np.isnan(out)] = hold
        return out.reshape(steps, per).mean(axis=1)

    def _past_mean(self, targets: np.ndarray, now_index: int) -> np.ndarray:
        """Mean real rate at the same time of day over `HISTORY_DAYS` before now."""
        back = targets[:, None] - DAY_STEPS * np.arange(1, HISTORY_DAYS + 1)[None, :]
        # the interval must have ended by now; a target days ahead looks further back
        back = back - DAY_STEPS * np.maximum((targets[:, None] - now_index) // DAY_STEPS, 0)
        known = (back >= 0) & (back < now_index) & (back < len(self.moer))
        vals = np.where(known, self.moer[np.clip(back, 0, len(self.moer) - 1)], np.nan)
        with np.errstate(all="ignore"):
            count = np.sum(~np.isnan(vals), axis=1)
            total = np.nansum(vals, axis=1)
        return np.where(count > 0, total / np.maximum(count, 1), np.nan)


def _open(path: Path) -> io.TextIOBase:
    try:
        if path.suffix == ".gz":
            return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8", newline="")
        return path.open(encoding="utf-8", newline="")
    except FileNotFoundError:
        raise CarbonFileError(f"{path}: no such file") from None
    except OSError as e:
        raise CarbonFileError(f"{path}: {e.strerror or e}") from None


def _rows(path: Path) -> tuple[list[datetime], list[list[float]], int]:
    """(times, [moer, f1..fN] per row, N) of one file."""
    times: list[datetime] = []
    values: list[list[float]] = []
    try:
        with _open(path) as f:
            reader = csv.reader(f)
            header = [h.strip() for h in next(reader, [])]
            if header[:2] != ["time", "moer"]:
                raise CarbonFileError(f"{path}:1: expected the columns time,moer,f1..fN")
            n = len(header) - 2
            if header[2:] != [f"f{k}" for k in range(1, n + 1)]:
                raise CarbonFileError(f"{path}:1: forecast columns must be f1..f{n} in order")
            for line, row in enumerate(reader, start=2):
                if len(row) != len(header):
                    raise CarbonFileError(
                        f"{path}:{line}: {len(row)} cells, expected {len(header)}"
                    )
                times.append(_time(row[0], f"{path}:{line}"))
                values.append(_floats(row[1:], f"{path}:{line}"))
    except (gzip.BadGzipFile, EOFError, UnicodeDecodeError) as e:
        raise CarbonFileError(f"{path}: not a readable CSV ({e})") from None
    if not times:
        raise CarbonFileError(f"{path}:2: no rows")
    return times, values, n


def _time(text: str, where: str) -> datetime:
    try:
        t = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise CarbonFileError(f"{where}: time: not an ISO time: {text!r}") from None
    t = t.replace(tzinfo=UTC) if t.tzinfo is None else t.astimezone(UTC)
    if t.minute % 5 or t.second or t.microsecond:
        raise CarbonFileError(f"{where}: time: {text!r} is not on a 5-minute boundary")
    return t


def _floats(cells: list[str], where: str) -> list[float]:
    try:
        out = [float(c) for c in cells]
    except ValueError:
        raise CarbonFileError(f"{where}: not a number in {cells[:3]!r}…") from None
    if not all(0.0 <= v < 10.0 for v in out):
        raise CarbonFileError(f"{where}: a rate outside 0–10 kg CO2/kWh (not kg per kWh?)")
    return out


def read_carbon(paths: Sequence[str | Path]) -> CarbonSignal:
    """One signal from the rows of every file (see the module docstring)."""
    if not paths:
        raise CarbonFileError("no carbon signal file given")
    merged: dict[datetime, list[float]] = {}
    n_of: set[int] = set()
    for p in paths:
        times, values, n = _rows(Path(p))
        n_of.add(n)
        if len(n_of) > 1:
            raise CarbonFileError(f"{p}: {n} forecast columns, other files have {min(n_of)}")
        for t, v in zip(times, values, strict=True):
            merged.setdefault(t, v)
    (n,) = n_of
    if n < 1:
        raise CarbonFileError(f"{paths[0]}:1: no forecast columns (f1..fN)")
    start = min(merged)
    size = int((max(merged) - start).total_seconds() // STEP_S) + 1
    table = np.full((size, n + 1), np.nan)
    for t, v in merged.items():
        table[int((t - start).total_seconds() // STEP_S)] = v
    return CarbonSignal(start, table[:, 0], table[:, 1:])
