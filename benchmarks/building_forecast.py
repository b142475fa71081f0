"""The building-load forecaster against seasonal-naive and persistence, on a year.

    .venv/bin/python benchmarks/building_forecast.py                 # 2025, Berlin, G1
    .venv/bin/python benchmarks/building_forecast.py --quantile 0.95 --seed 3
    .venv/bin/python benchmarks/building_forecast.py --write-load examples/jpl-office-load.csv \\
        --group third-fourth-floor-transformer --from 2019-05-01 --to 2019-09-01 \\
        --timezone America/Los_Angeles --country US --voltage 120 --annual-kwh 300000

The building: BDEW's G1 office profile (`forecasts.bdew`) scaled to
``--annual-kwh``, with the country's public holidays as Sundays, and what a
real building adds to a standard profile: a day-to-day factor (weather,
occupancy; AR(1), φ 0.8, σ 8 %), quarter-hour noise (AR(1), φ 0.7, σ 6 %),
about one event a workday (HVAC start, a kitchen, a lab: +15-40 % of the
day's mean for 15-90 minutes), a few bridge days run as Saturdays, and lines
loaded unevenly (36/33/31 %). Readings are quarter-hour means per line.

The forecaster refits every midnight on the readings so far (after a
``--warmup`` of days that are not scored) and is scored on two questions the
planner asks: every hour, the next hour (4 quarter hours, knowing the reading
just in); every midnight, the day ahead (96 quarter hours). Against the same
questions answered by seasonal-naive (the same quarter hour a week before) and
persistence (the latest reading). Printed per method: pinball loss at the
quantile (A per line; lower is better), coverage (share of quarter hours whose
load the forecast covered; the forecaster aims at the quantile) and the mean
margin (forecast - load, A: headroom held back from the cars).

``--write-load`` writes the building instead (a ``--site-load`` CSV for
``gridshare simulate``, times local to ``--timezone``), and scores nothing.
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd

from forecasts.building_load import (
    LINE_COLUMNS,
    SATURDAY,
    WORKDAY,
    BuildingLoadForecaster,
    DayTypes,
    ForecastSettings,
    Reading,
    StandardProfile,
)

SHARES = np.array([0.36, 0.33, 0.31])
"""Of the building's power per line."""


def synthetic_building(
    start: date,
    end: date,
    *,
    annual_kwh: float,
    timezone: str,
    country: str | None,
    voltage_v: float,
    seed: int = 0,
    profile: str = "g1",
) -> pd.DataFrame:
    """Quarter-hour mean load per line (A) from local ``start`` to ``end`` (excluded)."""
    rng = np.random.default_rng(seed)
    idx = pd.date_range(str(start), str(end), freq="15min", inclusive="left", tz=timezone)
    days = DayTypes(country).of(idx)
    day_no = np.asarray((idx.normalize() - idx.normalize()[0]).days)
    n_days = int(day_no[-1]) + 1
    # bridge days: a few workdays run as Saturdays
    bridge = rng.random(n_days) < 0.03
    days = np.where((days == WORKDAY) & bridge[day_no], SATURDAY, days)
    kw = StandardProfile(profile, annual_kwh, voltage_v).kw(idx, days)
    daily = np.zeros(n_days)
    for d in range(1, n_days):
        daily[d] = 0.8 * daily[d - 1] + rng.normal(0, 0.08 * np.sqrt(1 - 0.8**2))
    noise = np.zeros(len(idx))
    shocks = rng.normal(0, 0.06 * np.sqrt(1 - 0.7**2), len(idx))
    for i in range(1, len(idx)):
        noise[i] = 0.7 * noise[i - 1] + shocks[i]
    kw = kw * (1 + daily[day_no]) * (1 + noise)
    mean_kw = annual_kwh / 8760.0
    for d in range(n_days):
        first = np.searchsorted(day_no, d)
        if days[first] != WORKDAY or rng.random() > 0.9:
            continue
        at = first + int(rng.integers(28, 72))  # 07:00 - 18:00
        span = int(rng.integers(1, 7))
        kw[at : at + span] += rng.uniform(0.15, 0.4) * mean_kw * 2.5
    kw = np.maximum(kw, 0.0)
    amps = kw[:, None] * 1000.0 / voltage_v * SHARES[None, :]
    return pd.DataFrame(amps, index=idx.tz_convert("UTC"), columns=list(LINE_COLUMNS))


def pinball(y: np.ndarray, f: np.ndarray, q: float) -> float:
    d = y - f
    return float(np.mean(np.maximum(q * d, (q - 1) * d)))


def _score(name: str, y: np.ndarray, f: np.ndarray, q: float) -> dict[str, object]:
    return {
        "method": name,
        "pinball_a": pinball(y, f, q),
        "coverage": float(np.mean(y <= f + 1e-9)),
        "margin_a": float(np.mean(f - y)),
    }


def _reading(times: pd.DatetimeIndex, y: np.ndarray, i: int) -> Reading:
    l1, l2, l3 = (float(v) for v in y[i])
    return Reading(times[i].to_pydatetime(), (l1, l2, l3))


def evaluate(
    load: pd.DataFrame,
    *,
    timezone: str,
    country: str | None,
    quantile: float,
    warmup_days: int,
    prior: StandardProfile,
) -> dict[str, list[dict[str, object]]]:
    """Scores of each method on the next hour and on the day ahead."""
    y = load.to_numpy(float)
    times = pd.DatetimeIndex(load.index)
    local_midnights = np.flatnonzero(
        (times.tz_convert(timezone).hour == 0) & (times.tz_convert(timezone).minute == 0)
    )
    week = 7 * 96
    f = BuildingLoadForecaster(
        prior=prior, timezone=timezone, country=country, settings=ForecastSettings(quantile)
    )
    hour: dict[str, list[np.ndarray]] = {k: [] for k in ("forecaster", "seasonal", "persist", "y")}
    day: dict[str, list[np.ndarray]] = {k: [] for k in ("forecaster", "seasonal", "persist", "y")}
    for m in local_midnights.tolist():
        if m < warmup_days * 96 or m + 96 > len(y):
            continue
        f.fit(load.iloc[:m])
        last = _reading(times, y, m - 1)
        day["forecaster"].append(f.forecast(times[m].to_pydatetime(), 96, 15, last))
        day["seasonal"].append(y[m - week : m - week + 96])
        day["persist"].append(np.repeat(y[m - 1][None, :], 96, axis=0))
        day["y"].append(y[m : m + 96])
        for t in range(m, m + 96, 4):
            last = _reading(times, y, t - 1)
            hour["forecaster"].append(f.forecast(times[t].to_pydatetime(), 4, 15, last))
            hour["seasonal"].append(y[t - week : t - week + 4])
            hour["persist"].append(np.repeat(y[t - 1][None, :], 4, axis=0))
            hour["y"].append(y[t : t + 4])
    names = {
        "forecaster": f"forecaster (q {quantile:g})",
        "seasonal": "seasonal-naive (a week before)",
        "persist": "persistence (latest reading)",
    }
    out: dict[str, list[dict[str, object]]] = {}
    for label, runs in (("next hour", hour), ("day ahead", day)):
        actual = np.concatenate(runs["y"])
        out[label] = [_score(names[k], actual, np.concatenate(runs[k]), quantile) for k in names]
    return out


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--from", dest="start", type=date.fromisoformat, default=date(2025, 1, 1))
    p.add_argument("--to", dest="end", type=date.fromisoformat, default=date(2026, 1, 1))
    p.add_argument("--timezone", default="Europe/Berlin")
    p.add_argument("--country", default="DE", help="holidays of this country ('' for none)")
    p.add_argument("--voltage", type=float, default=230.0, help="line to neutral (V)")
    p.add_argument("--annual-kwh", type=float, default=300_000.0)
    p.add_argument("--quantile", type=float, default=0.9)
    p.add_argument("--warmup", type=int, default=28, help="days not scored")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--write-load", type=Path, help="write the building as a --site-load CSV")
    p.add_argument("--group", default="site", help="group_id of the written CSV")
    return p


def write_load(load: pd.DataFrame, path: Path, group: str, timezone: str) -> None:
    local = pd.DatetimeIndex(load.index).tz_convert(timezone).tz_localize(None)
    frame = load.round(1)
    frame.insert(0, "group_id", group)
    frame.insert(0, "start", local.strftime("%Y-%m-%dT%H:%M"))
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(path, index=False)


def main(argv: list[str]) -> int:
    args = parser().parse_args(argv)
    country = args.country or None
    t0 = time.perf_counter()
    load = synthetic_building(
        args.start,
        args.end,
        annual_kwh=args.annual_kwh,
        timezone=args.timezone,
        country=country,
        voltage_v=args.voltage,
        seed=args.seed,
    )
    if args.write_load:
        write_load(load, args.write_load, args.group, args.timezone)
        peak = load.to_numpy().max()
        print(f"{args.write_load}: {len(load)} quarter hours, peak {peak:.1f} A on a line")
        return 0
    prior = StandardProfile("g1", args.annual_kwh, args.voltage)
    scores = evaluate(
        load,
        timezone=args.timezone,
        country=country,
        quantile=args.quantile,
        warmup_days=args.warmup,
        prior=prior,
    )
    kwh = float(load.to_numpy().sum()) * args.voltage / 1000.0 * 0.25
    print(
        f"building: G1 office, {args.start} to {args.end} ({args.timezone}, holidays "
        f"{country or 'none'}), {kwh:,.0f} kWh, peak {load.to_numpy().max():.0f} A on a line; "
        f"scored after {args.warmup} days, quantile {args.quantile:g}"
    )
    print("| horizon | method | pinball loss (A) | coverage | mean margin (A) |")
    print("|---|---|---|---|---|")
    for horizon, rows in scores.items():
        for r in rows:
            print(
                f"| {horizon} | {r['method']} | {r['pinball_a']:.2f} | "
                f"{r['coverage']:.3f} | {r['margin_a']:+.1f} |"
            )
    print(f"({time.perf_counter() - t0:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
