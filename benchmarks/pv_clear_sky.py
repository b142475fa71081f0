"""Write an array's clear-sky generation as a ``start,kw`` file (``gridshare
simulate --pv``, ``[pv] forecast_csv``), from pvlib by `forecasts.pv`.

    .venv/bin/python benchmarks/pv_clear_sky.py --latitude 34.2 --longitude -118.17 \\
        --tilt 20 --azimuth 180 --kwp 100 --from 2019-05-08 --to 2019-05-08 \\
        --timezone America/Los_Angeles --out examples/jpl-pv-100kwp.csv

One row per ``--minutes`` (15), each the mean over its interval (pvlib every 5
minutes), in the site's local time. A clear sky is the most the array makes:
a study on it is of the planner, not of the weather.
"""

from __future__ import annotations

import argparse
import sys
from datetime import date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from forecasts.pv import PvConfig, clear_sky_slots
from optimizer.problem import TimeGrid


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--latitude", type=float, required=True)
    p.add_argument("--longitude", type=float, required=True)
    p.add_argument("--tilt", type=float, default=20.0)
    p.add_argument("--azimuth", type=float, default=180.0)
    p.add_argument("--kwp", type=float, required=True)
    p.add_argument("--from", dest="start", type=date.fromisoformat, required=True)
    p.add_argument("--to", dest="end", type=date.fromisoformat, required=True)
    p.add_argument("--timezone", default="UTC")
    p.add_argument("--minutes", type=int, default=15)
    p.add_argument("--out", type=Path, required=True)
    return p


def main(argv: list[str]) -> int:
    a = parser().parse_args(argv)
    config = PvConfig(
        group="-", latitude=a.latitude, longitude=a.longitude, tilt=a.tilt,
        azimuth=a.azimuth, kwp=a.kwp,
    )  # fmt: skip
    zone = ZoneInfo(a.timezone)
    start = datetime.combine(a.start, time(), zone)
    days = (a.end - a.start).days + 1
    grid = TimeGrid(start, a.minutes, days * 24 * 60 // a.minutes)
    kw = clear_sky_slots(config, grid)
    rows = [
        f"{(start + i * timedelta(minutes=a.minutes)).strftime('%Y-%m-%dT%H:%M')},{v:.3f}"
        for i, v in enumerate(kw)
    ]
    a.out.write_text("start,kw\n" + "\n".join(rows) + "\n")
    print(f"{a.out}: {len(rows)} rows, {kw.sum() * a.minutes / 60:.1f} kWh, peak {kw.max():.1f} kW")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
