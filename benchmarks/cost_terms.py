"""Planning time with a site's money and carbon terms on, against the bare LP
solve of the very same LP, in one run.

    python benchmarks/cost_terms.py [--sizes 100 1000] [--repeat 5]

The "flat" sites of `plan_speed.py` (N connectors × 96 slots of 15 min), with
a building behind the connection (an office day), a time-of-use price, a
carbon forecast priced at 0.1 per kg and a peak-demand charge (15 per kW of
the month's peak, 15-minute intervals, a peak so far half the connection's
limit). Per size: the median full `optimizer.solve` with the terms, the
reference (the same LP arrays straight to highspy: passModel + run), their
ratio, the same two with the terms but without the hedge (``hedge_share =
0``: money may move energy up to the stated departure) and without the terms,
the hedge's time against the unhedged terms, and a warm re-plan after one
session is added (kept `HighsPlanner`).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from dataclasses import replace
from datetime import timedelta
from functools import partial
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from plan_speed import NOW, flat_site, median_ms, problem_for

from gridshare.commands.options import ListOption
from optimizer import HighsPlanner, PlanningProblem, SessionDemand, solve
from optimizer.cost_signal import CostSignal, PeakCharge
from optimizer.highs_backend import solve_arrays
from optimizer.prepare import prepare
from optimizer.site import LINES


def with_costs(prob: PlanningProblem) -> PlanningProblem:
    grid = prob.grid
    hours = np.array([(grid.slot_start(i).hour + 1) % 24 for i in range(grid.slots)])
    office = np.where((hours >= 8) & (hours < 18), 0.15, 0.04)  # of the grid's per-line limit
    limit = float(prob.capacity.limit_a[prob.site.root.id][0])
    house = {prob.site.root.id: {ln: office * limit for ln in LINES}}
    price = np.where((hours >= 16) & (hours < 21), 0.45, np.where(hours >= 8, 0.15, 0.28))
    moer = 0.3 + 0.1 * np.sin(np.arange(grid.slots) / 8.0)
    peak_kw = 0.5 * limit * 3 * prob.site.site.voltage_v / 1000.0
    costs = CostSignal(
        energy_price=price,
        carbon_kg_per_kwh=moer,
        carbon_price_per_kg=0.1,
        peak=PeakCharge(15.0, so_far_kw=peak_kw, interval_minutes=15),
    )
    return replace(prob, capacity=prob.capacity.with_non_ev(house), costs=costs)


def bench(n: int, repeat: int) -> dict[str, object]:
    site = flat_site(n + max(1, n // 10), 0.5)
    base = replace(problem_for(site), sessions=problem_for(site).sessions[:n])
    priced = with_costs(base)
    plain = replace(priced, costs=None)
    assert priced.costs is not None
    unhedged = replace(priced, costs=replace(priced.costs, hedge_share=0.0))
    row: dict[str, object] = {"connectors": n}
    full_ms: dict[str, float] = {}
    for label, prob in (("terms", priced), ("unhedged", unhedged), ("no terms", plain)):
        lp = prepare(prob)
        ref = median_ms(partial(solve_arrays, lp), repeat)
        full = median_ms(partial(solve, prob), repeat)
        row[f"{label} columns"] = lp.n_col
        row[f"{label} reference_ms"] = ref
        row[f"{label} solve_ms"] = full
        row[f"{label} ratio"] = full / ref
        full_ms[label] = full
    row["hedged / unhedged solve"] = full_ms["terms"] / full_ms["unhedged"]
    idle = next(c for c in site.connectors if c not in {s.connector_id for s in base.sessions})
    extra = SessionDemand("extra", idle, NOW, NOW + timedelta(hours=5), 25.0)
    added = replace(priced, sessions=(*priced.sessions, extra))
    planner = HighsPlanner()
    times = []
    for _ in range(max(1, repeat)):
        solve(priced, planner=planner)
        t0 = time.perf_counter()
        solve(added, planner=planner)
        times.append((time.perf_counter() - t0) * 1000.0)
    row["warm session added ms"] = statistics.median(times)
    return row


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, action=ListOption, default=[100, 1000])
    ap.add_argument("--repeat", type=int, default=5)
    return ap


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    keys = None
    for n in args.sizes:
        row = bench(n, args.repeat)
        if keys is None:
            keys = list(row)
            print(" | ".join(keys))
            print(" | ".join("---" for _ in keys))
        print(" | ".join(f"{v:.1f}" if isinstance(v, float) else str(v) for v in row.values()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
