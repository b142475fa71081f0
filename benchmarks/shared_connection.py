"""JPL's chargers sharing their transformer with an office: what seeing the building buys.

    .venv/bin/python benchmarks/shared_connection.py               # June 3-28 2019
    .venv/bin/python benchmarks/shared_connection.py --from 2019-06-03 --to 2019-06-07

The JPL site (examples/acn-jpl.toml, its real sessions) with an office on the
floors 3-4 transformer (150 kW, 416.7 A per line): examples/jpl-office-load.csv,
written by ``benchmarks/building_forecast.py --write-load`` (BDEW G1, 200 MWh a
year, US holidays, from three weeks before the first day simulated). Runs
``gridshare`` three times, told of the building what `gridshare.simulation.
site_load` calls ``forecast`` (dynamic load management: the reading now and the
forecaster), ``peak`` (a static EV limit sized for the building's peak, what
operators do without a meter) and ``blind`` (the chargers planned as if alone),
against ``offline-optimal`` (perfect knowledge of cars and building) and
``uncontrolled``. Prints per run the energy delivered, the minutes with any
limit over (chargers + building) and the peak current on a transformer line.
Each run is ``gridshare simulate --site-load examples/jpl-office-load.csv
--holidays US --site-load-view VIEW``.
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import date
from pathlib import Path

from gridshare.config import load_config
from gridshare.csvio import read_site_load
from gridshare.simulation import SiteLoad, SiteLoadSetting, run_strategies
from gridshare.simulation.sessions import between, read_sessions

ROOT = Path(__file__).resolve().parents[1]
SITE = ROOT / "examples" / "acn-jpl.toml"
SESSIONS = ROOT / "data" / "acn" / "jpl" / "2019-05-01_2019-08-31.csv.gz"
LOAD = ROOT / "examples" / "jpl-office-load.csv"

RUNS = (
    ("dynamic (forecast)", "forecast", "gridshare"),
    ("static EV limit (building peak)", "peak", "gridshare"),
    ("building ignored", "blind", "gridshare"),
    ("perfect knowledge", "forecast", "offline-optimal"),
    ("uncontrolled", "forecast", "uncontrolled"),
)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--from", dest="start", type=date.fromisoformat, default=date(2019, 6, 3))
    p.add_argument("--to", dest="end", type=date.fromisoformat, default=date(2019, 6, 28))
    p.add_argument("--load", type=Path, default=LOAD)
    return p


def main(argv: list[str]) -> int:
    args = parser().parse_args(argv)
    config = load_config(SITE, environ={})
    site, defaults = config.site, config.defaults.demand_defaults()
    zone = site.site.timezone
    sessions = between(read_sessions(SESSIONS, zone), args.start, args.end, zone)
    load = SiteLoad(site, read_site_load(args.load, site))
    print(
        f"JPL {args.start} to {args.end}: {len(sessions)} sessions; "
        f"office on the floors 3-4 transformer ({args.load.name})"
    )
    print(
        "| planner told | strategy | delivered % | delivered kWh | overload min | "
        "peak A (limit 416.7) | run s |"
    )
    print("|---|---|---|---|---|---|---|")
    for label, view, strategy in RUNS:
        t0 = time.perf_counter()
        setting = SiteLoadSetting(load, view, holidays="US")
        r = run_strategies(site, sessions, [strategy], defaults=defaults, site_load=setting)[
            strategy
        ]
        need, got = float(r.need_kwh.sum()), float(r.delivered_kwh.sum())
        print(
            f"| {label} | {strategy} | {100 * got / need:.2f} | {got:,.0f} | "
            f"{r.extra['connection_overload_minutes']:,.0f} | {r.extra['peak_connection_a']} | "
            f"{time.perf_counter() - t0:.0f} |",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
