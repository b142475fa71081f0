"""gridshare against acnportal's own algorithms, inside Caltech's acnsim, on JPL 2019.

    .venv/bin/python benchmarks/acnsim_compare.py                # 2019-05-07, 30/50/80 kW
    .venv/bin/python benchmarks/acnsim_compare.py --from 2019-05-01 --to 2019-05-31 --caps 50
    .venv/bin/python benchmarks/acnsim_compare.py --solve-cost   # exact vs linear limits

The default period is one weekday (2019-05-07: 73 sessions), about 15 minutes
on a busy two-core machine, most of it in acnportal's EDF, LLF and round robin
(up to seconds a call); longer periods are a flag away.

acnsim's JPL network (`acnsim.sites.jpl_acn`, AeroVironment stations: pilots 0 or
6-32 A) with the floors 3-4 transformer at each capacity (the 45 kW first-floor
transformer as it is), the sessions of data/acn/jpl in the period, ideal
batteries taking each car's real energy, the drivers' real departures, 5-minute
periods. Every algorithm runs in the same simulator on the same events:
gridshare (`gridshare.integrations.acnportal.GridshareAlgorithm`, re-planning
every period) and acnportal's EDF, LLF, round robin and uncontrolled charging.
Printed per capacity and algorithm: % of the energy delivered, the site's peak
kW, how far the transformer's secondary is used (largest |I_line| / limit),
violations as acnsim counts them (schedules it warned about + periods whose
pilots break a constraint), and the time of each call of the algorithm
(p50/p99, acnportal's own ``solve_stats``; baselines are called on arrivals
and departures, gridshare every period).

``--solve-cost`` runs gridshare once at each capacity, keeps every planning
problem, and solves each again twice with kept planners, interleaved: with
the site's phasor limits exact, and with the same site read linearly (Σ|a|·I:
the model before exact limits); it prints the per-solve times and their ratio.
``--with-linear`` adds gridshare with magnitudes summed to the comparison,
``--no-baselines`` leaves acnportal's algorithms out.

Data: ACN-Data (Lee, Li, Low, e-Energy 2019), CC BY 4.0; see data/README.md.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import warnings
from dataclasses import replace
from datetime import date, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
from acnportal import acnsim, algorithms

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from gridshare.commands.options import ListOption  # noqa: E402
from gridshare.integrations.acnportal import (  # noqa: E402
    GridshareAlgorithm,
    acn_events,
    infeasible_periods,
)
from gridshare.simulation.sessions import between, read_acn  # noqa: E402
from optimizer import PlanningProblem, Site, solve  # noqa: E402
from optimizer.highs_backend import HighsPlanner  # noqa: E402

SESSIONS = ROOT / "data" / "acn" / "jpl" / "2019-05-01_2019-08-31.csv.gz"
LA = ZoneInfo("America/Los_Angeles")
PERIOD_MIN = 5


def baselines() -> dict[str, Any]:
    return {
        "EDF": algorithms.SortedSchedulingAlgo(algorithms.earliest_deadline_first),
        "LLF": algorithms.SortedSchedulingAlgo(algorithms.least_laxity_first),
        "round robin": algorithms.RoundRobin(algorithms.first_come_first_served),
        "uncontrolled": algorithms.UncontrolledCharging(),
    }


class Recording(GridshareAlgorithm):
    """GridshareAlgorithm that keeps every planning problem it solved."""

    def __init__(self) -> None:
        super().__init__()
        self.problems: list[PlanningProblem] = []

    def problem(self, active_sessions: list[Any]) -> PlanningProblem:
        p = super().problem(active_sessions)
        self.problems.append(p)
        return p


def simulate(algorithm: Any, cap_kw: float, first: date, last: date) -> dict[str, float]:
    sessions = between(read_acn(SESSIONS), first, last, "America/Los_Angeles")
    start = datetime.combine(first, datetime.min.time(), LA)
    network = acnsim.sites.jpl_acn(third_fourth_transformer_cap=cap_kw)
    queue, _ = acn_events(sessions, start, PERIOD_MIN, network.station_ids)
    t0 = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        sim = acnsim.Simulator(network, algorithm, queue, start, period=PERIOD_MIN, verbose=False)
        sim.run()
    wall = time.perf_counter() - t0
    invalid = sum("Invalid schedule" in str(w.message) for w in caught)
    pilots = np.asarray(sim.pilot_signals)
    currents = np.abs(network.constraint_current(pilots))
    names = list(network.constraint_index)
    secondary = [i for i, c in enumerate(names) if "Third/Fourth" in c and "Secondary" in c]
    use = float(np.max(currents[secondary] / np.asarray(network.magnitudes)[secondary, None]))
    ms = [s["solve_time"] * 1000.0 for s in algorithm.solve_stats] or [0.0]
    return {
        "delivered": 100.0 * float(acnsim.analysis.proportion_of_energy_delivered(sim)),
        "peak_kw": float(np.max(acnsim.analysis.aggregate_power(sim))),
        "use": 100.0 * use,
        "violations": float(invalid + infeasible_periods(sim)),
        "p50": float(np.percentile(ms, 50)),
        "p99": float(np.percentile(ms, 99)),
        "wall_s": wall,
    }


def compare(
    caps: list[float], first: date, last: date, with_linear: bool, others: bool = True
) -> None:
    print(
        f"JPL {first}..{last}, acnsim, ideal batteries, real departures, {PERIOD_MIN}-min periods"
    )
    head = "| transformer | algorithm | delivered | peak kW | secondary use | violations "
    print(head + "| p50 ms | p99 ms |")
    print("|---|---|---|---|---|---|---|---|")
    for cap in caps:
        ours = {"gridshare": GridshareAlgorithm()}
        if with_linear:
            ours["gridshare, magnitudes summed"] = GridshareAlgorithm(exact_limits=False)
        for name, algo in {**ours, **(baselines() if others else {})}.items():
            r = simulate(algo, cap, first, last)
            print(
                f"| {cap:g} kW | {name} | {r['delivered']:.2f} % | {r['peak_kw']:.1f} | "
                f"{r['use']:.1f} % | {r['violations']:.0f} | {r['p50']:.1f} | {r['p99']:.1f} |",
                flush=True,
            )


def linear(site: Site) -> Site:
    data = site.model_dump()
    for g in data["groups"]:
        g["phasor"] = False
    return Site.model_validate(data)


def solve_cost(caps: list[float], first: date, last: date) -> None:
    print(
        "| transformer | solves | exact p50 / p99 ms | linear p50 / p99 ms | ratio p50/p99/mean |"
    )
    print("|---|---|---|---|---|")
    for cap in caps:
        rec = Recording()
        simulate(rec, cap, first, last)
        if not rec.problems:
            continue
        flat = linear(rec.problems[0].site)
        exact_planner, linear_planner = HighsPlanner(10.0), HighsPlanner(10.0)
        exact_ms: list[float] = []
        linear_ms: list[float] = []
        for p in rec.problems:  # interleaved: both see the same machine load
            t = time.perf_counter()
            solve(p, planner=exact_planner)
            exact_ms.append((time.perf_counter() - t) * 1000.0)
            t = time.perf_counter()
            solve(replace(p, site=flat), planner=linear_planner)
            linear_ms.append((time.perf_counter() - t) * 1000.0)
        e50, e99 = np.percentile(exact_ms, [50, 99])
        l50, l99 = np.percentile(linear_ms, [50, 99])
        mean = statistics.fmean(exact_ms) / statistics.fmean(linear_ms)
        print(
            f"| {cap:g} kW | {len(exact_ms)} | {e50:.1f} / {e99:.1f} | {l50:.1f} / {l99:.1f} | "
            f"{e50 / l50:.2f} / {e99 / l99:.2f} / {mean:.2f} |",
            flush=True,
        )


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--from", dest="first", type=date.fromisoformat, default=date(2019, 5, 7))
    ap.add_argument("--to", dest="last", type=date.fromisoformat, default=date(2019, 5, 7))
    ap.add_argument("--caps", type=float, action=ListOption, default=[30.0, 50.0, 80.0])
    ap.add_argument("--solve-cost", action="store_true")
    ap.add_argument("--no-baselines", action="store_true", help="gridshare only")
    ap.add_argument(
        "--with-linear", action="store_true", help="also gridshare with magnitudes summed"
    )
    return ap


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.solve_cost:
        solve_cost(args.caps, args.first, args.last)
    else:
        compare(args.caps, args.first, args.last, args.with_linear, not args.no_baselines)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
