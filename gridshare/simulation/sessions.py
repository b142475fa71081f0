"""Historical sessions for the simulator: ACN-Data CSVs and a generic CSV.

A `SimSession` carries what really happened (arrival, real departure, the
energy the car took) apart from what the driver told the service (stated
departure and energy, or nothing). The simulator shows the planner only the
stated part.

ACN-Data (``arrival, departure, requested_energy (kWh), delivered_energy (kWh),
station_id, session_id, estimated_departure, claimed``): the car's need is the
energy it took in the real session (the convention of the ACN studies: stated
requests are often far above what a car can take). ``claimed=False`` rows carry
no request: their stated departure and energy are left unknown.

Generic CSV: ``connector_id,arrival,departure,energy_kwh[,stated_departure]
[,stated_energy_kwh]`` with ISO times.

In both, a time without an offset is a local time of the site (its ``[site]
timezone``, given as ``tz``), as in the planner's CSV files.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd

from gridshare.errors import UserError

ACN_COLUMNS = (
    "arrival",
    "departure",
    "requested_energy (kWh)",
    "delivered_energy (kWh)",
    "station_id",
    "session_id",
    "estimated_departure",
    "claimed",
)
GENERIC_COLUMNS = ("connector_id", "arrival", "departure", "energy_kwh")


class SessionsError(UserError, ValueError):
    """A sessions file cannot be read; the message names the file and the field."""


@dataclass(frozen=True)
class SimSession:
    session_id: str
    connector_id: str
    arrival: datetime
    departure: datetime
    energy_kwh: float
    """What the car takes if offered enough (its real need)."""
    stated_departure: datetime | None = None
    stated_energy_kwh: float | None = None
    car_lines: tuple[str, ...] | None = None
    """Lines the car really loads (e.g. ``("L1",)`` for a 1-phase car on a 3-phase
    connector); None: every line the connector is wired to."""
    car_max_current_a: float | None = None
    """The car's own maximum (A per line); None: the simulation's car model."""

    def departure_told(self, dwell_hours: float) -> datetime:
        """The departure the planner is told: the stated one, or the service's
        default dwell after arrival when the driver stated none."""
        return self.stated_departure or self.arrival + timedelta(hours=dwell_hours)


_ZONED = r"\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?\s*(?:[zZ]|[+-]\d{2}(?::?\d{2})?)\s*$"
"""A time that ends in ``Z`` or an offset."""


def _utc(values: pd.Series, name: str, column: str, tz: str = "UTC") -> pd.Series:
    """The column's times in UTC; one without an offset is a local time in ``tz``."""
    try:
        text = values.astype("string").str.strip()
        naive = ~text.str.contains(_ZONED, regex=True).fillna(True) & text.notna()
        out = pd.to_datetime(text.where(~naive), utc=True, format="ISO8601")
        if naive.any():
            local = pd.to_datetime(text[naive], format="ISO8601")
            # the first of a repeated autumn hour, as datetime's fold=0 reads it
            first = np.ones(len(local), dtype=bool)
            out[naive] = local.dt.tz_localize(
                tz, ambiguous=first, nonexistent="shift_forward"
            ).dt.tz_convert("UTC")
        return out
    except (ValueError, TypeError) as e:
        # pandas adds lines of advice; the first says what is wrong
        raise SessionsError(f"{name}: column {column}: {str(e).splitlines()[0]}") from None


_TOKENIZING = re.compile(r"Expected (\d+) fields in line (\d+), saw (\d+)")


def _read_csv(p: Path, **kwargs: Any) -> pd.DataFrame:
    """``pd.read_csv`` with its errors as one line a user can act on."""
    try:
        return pd.read_csv(p, **kwargs)
    except FileNotFoundError:
        raise SessionsError(f"{p}: no such file") from None
    except pd.errors.EmptyDataError:
        raise SessionsError(f"{p}: empty, not a sessions CSV") from None
    except pd.errors.ParserError as e:
        m = _TOKENIZING.search(str(e))
        if m is None:
            raise SessionsError(f"{p}: not a CSV file ({str(e).splitlines()[0]})") from None
        want, line, got = m.groups()
        raise SessionsError(
            f"{p}: line {line}: {got} fields where the header has {want}; not a sessions CSV?"
        ) from None
    except (OSError, UnicodeDecodeError) as e:
        why = type(e).__name__
        raise SessionsError(f"{p}: cannot be read as a CSV text file ({why})") from None
    except ValueError as e:
        raise SessionsError(f"{p}: {str(e).splitlines()[0]}") from None


def read_acn(path: str | Path, tz: str = "UTC") -> list[SimSession]:
    """Sessions of an ACN-Data CSV (``.csv`` or ``.csv.gz``); connector ``STATION/1``."""
    p = Path(path)
    df = _read_csv(p)
    missing = [c for c in ACN_COLUMNS if c not in df.columns]
    if missing:
        raise SessionsError(f"{p}: missing column(s) {missing}")
    arr = _utc(df["arrival"], str(p), "arrival", tz)
    dep = _utc(df["departure"], str(p), "departure", tz)
    est = _utc(df["estimated_departure"], str(p), "estimated_departure", tz)
    claimed = df["claimed"].astype(str).str.lower().isin(["true", "1"])
    out = []
    for i in range(len(df)):
        c = bool(claimed.iloc[i])
        out.append(
            SimSession(
                session_id=str(df["session_id"].iloc[i]),
                connector_id=f"{df['station_id'].iloc[i]}/1",
                arrival=arr.iloc[i].to_pydatetime(),
                departure=dep.iloc[i].to_pydatetime(),
                energy_kwh=float(df["delivered_energy (kWh)"].iloc[i]),
                stated_departure=est.iloc[i].to_pydatetime() if c else None,
                stated_energy_kwh=float(df["requested_energy (kWh)"].iloc[i]) if c else None,
            )
        )
    return out


def read_generic(path: str | Path, tz: str = "UTC") -> list[SimSession]:
    p = Path(path)
    df = _read_csv(p, dtype={"connector_id": str})
    missing = [c for c in GENERIC_COLUMNS if c not in df.columns]
    if missing:
        raise SessionsError(f"{p}: missing column(s) {missing}")
    arr = _utc(df["arrival"], str(p), "arrival", tz)
    dep = _utc(df["departure"], str(p), "departure", tz)
    sd = (
        _utc(df["stated_departure"], str(p), "stated_departure", tz)
        if ("stated_departure" in df.columns)
        else None
    )
    se = df["stated_energy_kwh"] if "stated_energy_kwh" in df.columns else None
    out = []
    for i in range(len(df)):
        line = i + 2
        energy = pd.to_numeric(df["energy_kwh"].iloc[i], errors="coerce")
        if pd.isna(energy) or energy < 0:
            raise SessionsError(f"{p}: line {line}: energy_kwh must be a number ≥ 0")
        if pd.isna(arr.iloc[i]) or pd.isna(dep.iloc[i]) or not dep.iloc[i] > arr.iloc[i]:
            raise SessionsError(f"{p}: line {line}: departure must be after arrival")
        stated_dep = None
        if sd is not None and not pd.isna(sd.iloc[i]):
            stated_dep = sd.iloc[i].to_pydatetime()
        stated_e = None
        if se is not None and not pd.isna(se.iloc[i]):
            stated_e = float(se.iloc[i])
        out.append(
            SimSession(
                session_id=f"{df['connector_id'].iloc[i]}@{arr.iloc[i].isoformat()}",
                connector_id=str(df["connector_id"].iloc[i]),
                arrival=arr.iloc[i].to_pydatetime(),
                departure=dep.iloc[i].to_pydatetime(),
                energy_kwh=float(energy),
                stated_departure=stated_dep,
                stated_energy_kwh=stated_e,
            )
        )
    return out


def is_acn(path: str | Path) -> bool:
    """Whether a sessions file is an ACN-Data CSV (by its header)."""
    p = Path(path)
    header = _read_csv(p, nrows=0).columns
    return "station_id" in header and "delivered_energy (kWh)" in header


def read_sessions(path: str | Path, tz: str = "UTC") -> list[SimSession]:
    """ACN-Data or generic CSV, told apart by the header; ``tz``: the site's zone."""
    return read_acn(path, tz) if is_acn(path) else read_generic(path, tz)


def between(
    sessions: Iterable[SimSession], start: date | None, end: date | None, tz: str = "UTC"
) -> list[SimSession]:
    """Sessions arriving on the local days ``start`` .. ``end`` (both included)."""
    zone = ZoneInfo(tz)
    lo = datetime.combine(start, datetime.min.time(), zone) if start else None
    hi = datetime.combine(end, datetime.min.time(), zone) + timedelta(days=1) if end else None
    return [
        s for s in sessions if (lo is None or s.arrival >= lo) and (hi is None or s.arrival < hi)
    ]


@dataclass(frozen=True)
class Prepared:
    """Sessions made ready for a simulation on a step grid, and what was dropped."""

    sessions: tuple[SimSession, ...]
    unknown_connector: int
    too_short: int
    overlapping: int


def snap(t: datetime, step: timedelta) -> datetime:
    """Round to the nearest step boundary (counted from 2000-01-01 UTC)."""
    epoch = datetime(2000, 1, 1, tzinfo=t.tzinfo or None)
    return epoch + round((t - epoch) / step) * step


def prepare_sessions(
    sessions: Iterable[SimSession], connectors: Iterable[str], step: timedelta
) -> Prepared:
    """Snap arrivals and departures to the step grid (events happen on steps);
    drop sessions at unknown connectors, with no whole step, or overlapping an
    earlier session on the same connector."""
    known = set(connectors)
    unknown = short = overlap = 0
    kept: list[SimSession] = []
    last_departure: dict[str, datetime] = {}
    for s in sorted(sessions, key=lambda s: (s.arrival, s.session_id)):
        if s.connector_id not in known:
            unknown += 1
            continue
        a, d = snap(s.arrival, step), snap(s.departure, step)
        if d <= a:
            short += 1
            continue
        prev = last_departure.get(s.connector_id)
        if prev is not None and a < prev:
            overlap += 1
            continue
        last_departure[s.connector_id] = d
        kept.append(replace(s, arrival=a, departure=d))
    return Prepared(tuple(kept), unknown, short, overlap)
