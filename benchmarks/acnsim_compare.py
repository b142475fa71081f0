"""gridshare against acnportal's algorithms and an offline bound, in Caltech's acnsim, on JPL 2019.

    .venv/bin/python benchmarks/acnsim_compare.py                # 2019-05-07, 30/50/80 kW
    .venv/bin/python benchmarks/acnsim_compare.py --from 2019-06-03 --days 14 --no-baselines
    .venv/bin/python benchmarks/acnsim_compare.py --days 14 --budget-min 60
    .venv/bin/python benchmarks/acnsim_compare.py --solve-cost   # exact vs linear limits

acnsim's JPL network (`acnsim.sites.jpl_acn`, AeroVironment stations: pilots 0 or
6-32 A; ``--basic``: continuous 0-32 A) with the floors 3-4 transformer at each
capacity (the 45 kW first-floor transformer as it is), ideal batteries taking
each car's real energy, the drivers' real departures, 5-minute periods. Each
day is simulated on its own (the sessions arriving that day, from arrival to
departure), every algorithm in the same simulator on the same events:
gridshare (`gridshare.integrations.acnportal.GridshareAlgorithm`, re-planning
every period) and acnportal's EDF, LLF, round robin and uncontrolled charging;
figures are pooled over the days. ``--budget-min`` starts no further day after
that many minutes (acnportal's sorted algorithms take up to seconds a call:
one weekday with them is about 15 minutes on a busy two-core machine, gridshare
and the bound alone about 1-3).

The offline bound (`gridshare.integrations.acnbound`): the day's sessions with
perfect knowledge on the network's own constraints (exact phasor magnitudes)
with continuous pilots, gridshare's offline LP: no algorithm delivers more in
the simulator. Its schedule is replayed in acnsim (`FixedSchedule`, pilots
floored to what each station takes), which checks it.

Printed per capacity and algorithm: % of the energy delivered, % of the
offline bound, the site's peak kW, how far the transformer's secondary is used
(largest |I_line| / limit), violations as acnsim counts them (schedules it
warned about + periods whose pilots break a constraint), and the time of each
call of the algorithm with a car plugged in (p50/p99, acnportal's own
``solve_stats``; baselines are called on arrivals and departures, gridshare
every period; the bound's row: its LP per day).

``--solve-cost`` runs gridshare once at each capacity, keeps every planning
problem, and solves each again twice with kept planners, interleaved: with
the site's phasor limits exact, and with the same site read linearly (Σ|a|·I:
the model before exact limits); it prints the per-solve times and their ratio.
``--with-linear`` adds gridshare with magnitudes summed to the comparison,
``--with-hedged`` gridshare sharing the slot evenly as it does for departures
that may be wrong, ``--no-baselines`` leaves acnportal's algorithms out.

Data: ACN-Data (Lee, Li, Low, e-Energy 2019), CC BY 4.0; see data/README.md.
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import time
import warnings
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
from acnportal import acnsim, algorithms

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from gridshare.commands.options import ListOption  # noqa: E402
from gridshare.integrations.acnbound import FixedSchedule, OfflineBound, offline_bound  # noqa: E402
from gridshare.integrations.acnportal import (  # noqa: E402
    GridshareAlgorithm,
    acn_events,
    acn_evs,
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


@dataclass
class Tally:
    """One algorithm's figures, pooled over the days simulated."""

    delivered_kwh: float = 0.0
    requested_kwh: float = 0.0
    bound_kwh: float = 0.0
    peak_kw: float = 0.0
    use: float = 0.0
    violations: int = 0
    days: int = 0
    ms: list[float] = field(default_factory=list)

    def add(self, sim: Any, network: Any, ms: list[float], bound_kwh: float) -> None:
        pilots = np.asarray(sim.pilot_signals)
        currents = np.abs(network.constraint_current(pilots))
        names = list(network.constraint_index)
        secondary = [i for i, c in enumerate(names) if "Third/Fourth" in c and "Secondary" in c]
        limits = np.asarray(network.magnitudes)[secondary, None]
        self.use = max(self.use, 100.0 * float(np.max(currents[secondary] / limits)))
        self.delivered_kwh += float(acnsim.analysis.total_energy_delivered(sim))
        self.requested_kwh += float(acnsim.analysis.total_energy_requested(sim))
        self.bound_kwh += bound_kwh
        self.peak_kw = max(self.peak_kw, float(np.max(acnsim.analysis.aggregate_power(sim))))
        self.violations += infeasible_periods(sim)
        self.days += 1
        self.ms += ms

    def row(self, cap: float, name: str) -> str:
        pct = 100.0 * self.delivered_kwh / max(self.requested_kwh, 1e-9)
        of_bound = 100.0 * self.delivered_kwh / max(self.bound_kwh, 1e-9)
        p50, p99 = np.percentile(self.ms or [0.0], [50, 99])
        # the LP's own row: no simulator run, so no peak, use or violation
        sim = (
            f"{self.peak_kw:.1f} | {self.use:.1f} % | {self.violations}"
            if self.days
            else "– | – | –"
        )
        return (
            f"| {cap:g} kW | {name} | {pct:.2f} % | {of_bound:.2f} % | {sim} | "
            f"{p50:.1f} | {p99:.1f} |"
        )


def day_evs(day: date, station_ids: list[str]) -> list[Any]:
    """acnsim EVs of the sessions arriving on ``day`` (local), from its midnight."""
    sessions = between(read_acn(SESSIONS), day, day, "America/Los_Angeles")
    start = datetime.combine(day, datetime.min.time(), LA)
    return acn_evs(sessions, start, PERIOD_MIN, station_ids)


def run_day(
    algorithm: Any, cap_kw: float, day: date, basic: bool, bound: OfflineBound | None
) -> tuple[Any, Any, OfflineBound, int]:
    """One day in acnsim: (simulator, network, the day's offline bound, schedules
    acnsim warned about). ``algorithm`` None: the bound's own schedule replayed."""
    network = acnsim.sites.jpl_acn(third_fourth_transformer_cap=cap_kw, basic_evse=basic)
    evs = day_evs(day, network.station_ids)
    queue = acnsim.EventQueue([acnsim.PluginEvent(ev.arrival, ev) for ev in evs])
    start = datetime.combine(day, datetime.min.time(), LA)
    replay = algorithm is None
    algo = FixedSchedule({}) if replay else algorithm
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        sim = acnsim.Simulator(network, algo, queue, start, period=PERIOD_MIN, verbose=False)
        if bound is None:  # before the run: the EVs are not charged yet
            bound = offline_bound(algo.interface.infrastructure_info(), evs, PERIOD_MIN)
        if replay:
            algo.pilots = bound.pilots
        sim.run()
    invalid = sum("Invalid schedule" in str(w.message) for w in caught)
    return sim, network, bound, invalid


def algorithms_to_run(with_linear: bool, others: bool, hedged: bool = False) -> dict[str, Any]:
    """Fresh algorithms, by name (a new one each day: no state carried over)."""
    ours: dict[str, Any] = {"gridshare": GridshareAlgorithm()}
    if hedged:
        ours["gridshare, slot shared evenly"] = GridshareAlgorithm(departures_known=False)
    if with_linear:
        ours["gridshare, magnitudes summed"] = GridshareAlgorithm(exact_limits=False)
    return {**ours, **(baselines() if others else {})}


def compare(
    caps: list[float],
    days: list[date],
    with_linear: bool,
    others: bool = True,
    basic: bool = False,
    budget_min: float = math.inf,
    hedged: bool = False,
) -> None:
    """Every algorithm and the offline bound on each day in turn (a day's sessions
    from arrival to departure in a simulator of their own), figures pooled over
    the days run; after ``budget_min`` minutes no further day is started."""
    stations = "continuous pilots (BASIC)" if basic else "AeroVironment pilots 0, 6-32 A"
    print(
        f"JPL {days[0]}..{days[-1]}, acnsim, {stations}, ideal batteries, real departures, "
        f"{PERIOD_MIN}-min periods"
    )
    names = ["offline bound (LP)", "offline bound, replayed"]
    names += list(algorithms_to_run(with_linear, others, hedged))
    tally = {(cap, n): Tally() for cap in caps for n in names}
    t0 = time.perf_counter()
    done: list[date] = []
    for day in days:
        if (time.perf_counter() - t0) / 60.0 > budget_min:
            break
        for cap in caps:
            sim, network, bound, invalid = run_day(None, cap, day, basic, None)
            lp = tally[(cap, "offline bound (LP)")]
            lp.delivered_kwh += bound.kwh
            lp.requested_kwh += bound.requested_kwh
            lp.bound_kwh += bound.kwh
            lp.ms.append(bound.solve_ms)
            tally[(cap, "offline bound, replayed")].add(sim, network, [], bound.kwh)
            tally[(cap, "offline bound, replayed")].violations += invalid
            for name, algo in algorithms_to_run(with_linear, others, hedged).items():
                sim, network, _, invalid = run_day(algo, cap, day, basic, bound)
                # calls with a car plugged in (an empty call costs nothing)
                ms = [st["solve_time"] * 1000.0 for st in algo.solve_stats if st["active_sessions"]]
                tally[(cap, name)].add(sim, network, ms, bound.kwh)
                tally[(cap, name)].violations += invalid
        done.append(day)
        print(f"  {day} done, {(time.perf_counter() - t0) / 60.0:.1f} min", flush=True)
    print(f"{len(done)} of {len(days)} days, {(time.perf_counter() - t0) / 60.0:.1f} min")
    print(
        "| transformer | algorithm | delivered | % of bound | peak kW | secondary use "
        "| violations | p50 ms | p99 ms |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for cap in caps:
        for name in names:
            print(tally[(cap, name)].row(cap, name), flush=True)


def simulate(algorithm: Any, cap_kw: float, first: date, last: date) -> None:
    """Every period of ``first`` .. ``last`` in one acnsim run (for `solve_cost`)."""
    sessions = between(read_acn(SESSIONS), first, last, "America/Los_Angeles")
    start = datetime.combine(first, datetime.min.time(), LA)
    network = acnsim.sites.jpl_acn(third_fourth_transformer_cap=cap_kw)
    queue, _ = acn_events(sessions, start, PERIOD_MIN, network.station_ids)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        acnsim.Simulator(network, algorithm, queue, start, period=PERIOD_MIN, verbose=False).run()


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
    ap.add_argument(
        "--from",
        dest="first",
        type=date.fromisoformat,
        default=date(2019, 5, 7),
        help="first day (default: %(default)s)",
    )
    ap.add_argument(
        "--to",
        dest="last",
        type=date.fromisoformat,
        default=date(2019, 5, 7),
        help="last day (default: %(default)s)",
    )
    ap.add_argument(
        "--days",
        type=int,
        default=None,
        help="this many days from --from (instead of --to)",
    )
    ap.add_argument(
        "--budget-min",
        type=float,
        default=math.inf,
        help="start no further day after this many minutes (default: no limit)",
    )
    ap.add_argument(
        "--basic",
        action="store_true",
        help="continuous pilots (acnsim's BASIC stations) instead of AeroVironment's 0, 6-32 A",
    )
    ap.add_argument(
        "--caps",
        type=float,
        action=ListOption,
        default=[30.0, 50.0, 80.0],
        help="transformer capacities in kW (default: 30 50 80)",
    )
    ap.add_argument("--solve-cost", action="store_true", help="exact vs linear limits' solve time")
    ap.add_argument("--no-baselines", action="store_true", help="gridshare only")
    ap.add_argument(
        "--with-linear", action="store_true", help="also gridshare with magnitudes summed"
    )
    ap.add_argument(
        "--with-hedged",
        action="store_true",
        help="also gridshare sharing the slot evenly (as for departures that may be wrong)",
    )
    return ap


def main(argv: list[str] | None = None) -> int:
    ap = parser()
    args = ap.parse_args(argv)
    last = args.last if args.days is None else args.first + timedelta(days=args.days - 1)
    if last < args.first:
        ap.error(f"--to {last} is before --from {args.first}")
    if args.solve_cost:
        solve_cost(args.caps, args.first, last)
    else:
        days = [args.first + timedelta(days=k) for k in range((last - args.first).days + 1)]
        others = not args.no_baselines
        compare(
            args.caps, days, args.with_linear, others, args.basic, args.budget_min, args.with_hedged
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
