"""What calibrating drivers' statements recovers of the realistic gap (JPL 2019).

    .venv/bin/python benchmarks/acn_calibration.py                  # 50 kW, one week each way
    .venv/bin/python benchmarks/acn_calibration.py --weeks 2 --capacity-kw 50 80

Learns `gridshare.simulation.information.StatementCalibration` on two months and measures it on
the other two (May-June → July-August, and the reverse): first how far the
stated and the calibrated stays and energies are from the real ones over the
whole test months, then gridshare on the realistic models over ``--weeks``
weeks of the test months, told what drivers stated, the calibrated stays, the
calibrated energies, both, and the truth (informed). "recovered" is the share
of the gap between as stated and informed that calibration closes.

The data has no idTag, so a driver's own history is not available: the classes
are the day type, arrival hour and the statement itself.

Data: ACN-Data (Lee, Li, Low, e-Energy 2019), CC BY 4.0.
"""

from __future__ import annotations

import argparse
import statistics
from concurrent.futures import ProcessPoolExecutor
from datetime import date, timedelta
from pathlib import Path

from gridshare.commands.options import ListOption
from gridshare.config import load_site
from gridshare.simulation import build_simulation
from gridshare.simulation.engine import Simulation
from gridshare.simulation.information import StatementCalibration, calibrated, statements, told
from gridshare.simulation.sessions import SimSession, between, read_acn
from gridshare.simulation.strategies import GridshareStrategy

ROOT = Path(__file__).resolve().parent.parent
SITE = ROOT / "examples" / "acn-jpl.toml"
SESSIONS = ROOT / "data" / "acn" / "jpl" / "2019-05-01_2019-08-31.csv.gz"
GROUP = "third-fourth-floor-transformer"

SPLITS = {
    "train May-Jun, test Jul-Aug": (("2019-05-01", "2019-06-30"), ("2019-07-01", "2019-08-31")),
    "train Jul-Aug, test May-Jun": (("2019-07-01", "2019-08-31"), ("2019-05-01", "2019-06-30")),
}
TEST_START = {
    "train May-Jun, test Jul-Aug": "2019-07-08",
    "train Jul-Aug, test May-Jun": "2019-06-03",
}
VARIANTS = ("as stated", "calibrated stays", "calibrated energies", "calibrated both", "informed")


def _sessions(start: str, end: str) -> list[SimSession]:
    site = load_site(SITE)
    return between(
        read_acn(SESSIONS), date.fromisoformat(start), date.fromisoformat(end), site.site.timezone
    )


QUANTILE = 0.5


def _calibration(split: str) -> StatementCalibration:
    (a, b), _ = SPLITS[split]
    past = statements(_sessions(a, b), load_site(SITE).site.timezone)
    return StatementCalibration.fit(past, quantile=QUANTILE)


def errors(split: str) -> dict[str, float]:
    """Median absolute error (h, kWh) over the test months: stated and calibrated."""
    cal = _calibration(split)
    tz = load_site(SITE).site.timezone
    test = statements(_sessions(*SPLITS[split][1]), tz)
    return {
        "stay stated": statistics.median(abs(s.real_dwell_h - s.stated_dwell_h) for s in test),
        "stay calibrated": statistics.median(
            abs(s.real_dwell_h - cal.dwell_h(s.arrival_local, s.stated_dwell_h)) for s in test
        ),
        "energy stated": statistics.median(abs(s.real_kwh - s.stated_kwh) for s in test),
        "energy calibrated": statistics.median(
            abs(s.real_kwh - cal.energy_kwh(s.stated_kwh)) for s in test
        ),
        "late stated %": 100 * statistics.mean(s.real_dwell_h > s.stated_dwell_h for s in test),
        "late calibrated %": 100
        * statistics.mean(
            s.real_dwell_h > cal.dwell_h(s.arrival_local, s.stated_dwell_h) for s in test
        ),
    }


def one_run(work: tuple[str, str, float, int]) -> tuple[str, str, float, float]:
    split, variant, cap, weeks = work
    site = load_site(SITE)
    start = date.fromisoformat(TEST_START[split])
    end = start + timedelta(days=7 * weeks - 1)
    sim, _ = build_simulation(
        site, _sessions(start.isoformat(), end.isoformat()), capacity_kw=cap, capacity_group=GROUP
    )
    cal = _calibration(split)
    tz = site.site.timezone
    sessions = {
        "as stated": list(sim.sessions),
        "calibrated stays": calibrated(sim.sessions, cal, tz, energies=False),
        "calibrated energies": calibrated(sim.sessions, cal, tz, departures=False),
        "calibrated both": calibrated(sim.sessions, cal, tz),
        "informed": told(sim.sessions, departures="real", energies="real"),
    }[variant]
    variant_sim = Simulation(
        sim.site, sessions, limits=sim.limits, car=sim.car, defaults=sim.defaults
    )
    r = variant_sim.run(GridshareStrategy())
    return split, variant, cap, 100.0 * float(r.delivered_kwh.sum()) / float(r.need_kwh.sum())


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--capacity-kw", type=float, action=ListOption, default=[50.0])
    p.add_argument("--weeks", type=int, default=1)
    p.add_argument("--jobs", type=int, default=2)
    p.add_argument(
        "--quantile", type=float, default=0.5, help="of the stay shifts (energies: 1 - it)"
    )
    return p


def main() -> None:
    global QUANTILE  # the workers are forked after it is set
    args = parser().parse_args()
    QUANTILE = args.quantile
    for split in SPLITS:
        e = errors(split)
        print(
            f"{split}: median |error| of the stay {e['stay stated']:.2f} h stated, "
            f"{e['stay calibrated']:.2f} h calibrated; of the energy {e['energy stated']:.2f} "
            f"kWh stated, {e['energy calibrated']:.2f} kWh calibrated; stays longer than "
            f"planned {e['late stated %']:.0f} % stated, {e['late calibrated %']:.0f} % calibrated",
            flush=True,
        )
    work = [(s, v, c, args.weeks) for s in SPLITS for c in args.capacity_kw for v in VARIANTS]
    with ProcessPoolExecutor(max_workers=args.jobs) as pool:
        pct = {(s, v, c): x for s, v, c, x in pool.map(one_run, work)}
    print()
    print("| test weeks | kW | " + " | ".join(VARIANTS) + " | recovered (both) |")
    print("|---|---|" + "---|" * (len(VARIANTS) + 1))
    for s in SPLITS:
        for c in args.capacity_kw:
            base, top = pct[s, "as stated", c], pct[s, "informed", c]
            cells = [f"{pct[s, v, c]:.2f}" for v in VARIANTS]
            gain = pct[s, "calibrated both", c] - base
            share = f"{100 * gain / (top - base):.0f} %" if top > base else "n/a"
            print(f"| {s}, from {TEST_START[s]} | {c:g} | " + " | ".join(cells) + f" | {share} |")


if __name__ == "__main__":
    main()
