"""Re-plan time of the planning engine against the bare LP solve, in one run.

    python benchmarks/plan_speed.py [--sizes 10 100 1000 5000] [--repeat 5] [--pulp]

For each site: the median time of a full `optimizer.solve` (prepare + LP +
dispatch rule + plan) next to the reference — the very same LP arrays handed
straight to highspy (passModel + run, nothing else) — and their ratio; then
warm re-plans with a kept `HighsPlanner` after a small change (one limit
changed, one session added). ``--pulp`` also times the PuLP route (slow at
scale: it is the readable reference, not the production route).

Sites: "flat" — one grid limit and two panels (per-line limits), N connectors
× 96 slots of 15 min, N sessions; "deep" — 1000 connectors under 50 panels
under 5 boards, per-line limits everywhere. ``--congestion`` sets the grid
limit as a fraction of what every connector could draw (default 0.5): the
more congested, the more simplex iterations.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gridshare.commands.options import ListOption
from optimizer import (
    Capacity,
    HighsPlanner,
    PlanningProblem,
    SessionDemand,
    Site,
    TimeGrid,
    solve,
)
from optimizer.highs_backend import solve_arrays
from optimizer.prepare import prepare

NOW = datetime(2026, 11, 23, 16, 5, tzinfo=UTC)


def flat_site(n: int, congestion: float) -> Site:
    """Grid limit = ``congestion`` × what every connector could draw per line."""
    per_line = 16 * n * 1.0  # average per-line maximum of the connector mix below
    return Site.model_validate(
        {
            "site": {"name": f"flat-{n}", "horizon_hours": 24},
            "groups": [
                {"id": "grid", "limit_a": per_line * congestion},
                {"id": "p0", "parent": "grid", "limit_a": per_line / 2 * congestion * 1.2},
                {"id": "p1", "parent": "grid", "limit_a": per_line / 2 * congestion * 1.2},
            ],
            "chargers": [
                {
                    "id": f"C{i:05d}",
                    "group": f"p{i % 2}",
                    "connectors": [
                        {
                            "id": 1,
                            "max_current_a": 16 if i % 3 else 32,
                            "phases": [["L1", "L2", "L3"], ["L2", "L3", "L1"], ["L3"]][i % 3],
                        }
                    ],
                }
                for i in range(n)
            ],
        }
    )


def deep_site(congestion: float, n: int = 1000, panels: int = 50, boards: int = 5) -> Site:
    per_line = 16 * n * 0.8
    groups: list[dict[str, object]] = [{"id": "grid", "limit_a": per_line * congestion}]
    for b in range(boards):
        groups.append(
            {"id": f"b{b}", "parent": "grid", "limit_a": per_line / boards * congestion * 1.2}
        )
    for p in range(panels):
        groups.append(
            {
                "id": f"p{p}",
                "parent": f"b{p % boards}",
                "limit_a": per_line / panels * congestion * 1.5,
            }
        )
    return Site.model_validate(
        {
            "site": {"name": "deep", "horizon_hours": 24},
            "groups": groups,
            "chargers": [
                {
                    "id": f"C{i:05d}",
                    "group": f"p{i % panels}",
                    "connectors": [
                        {
                            "id": 1,
                            "max_current_a": 16 if i % 3 else 32,
                            "phases": [["L1", "L2", "L3"], ["L2"], ["L3", "L1"]][i % 3],
                            **({"voltage_v": 400.0} if i % 3 == 2 else {}),
                        }
                    ],
                }
                for i in range(n)
            ],
        }
    )


def sessions_for(site: Site, seed: int = 7) -> list[SessionDemand]:
    rng = random.Random(seed)
    out = []
    for k, cid in enumerate(site.connectors):
        arrival = NOW + timedelta(minutes=rng.randint(-180, 240))
        departure = arrival + timedelta(hours=rng.uniform(2, 12))
        out.append(SessionDemand(f"s{k}", cid, arrival, departure, rng.uniform(5, 60)))
    return out


def problem_for(site: Site) -> PlanningProblem:
    grid = TimeGrid.covering(NOW, 15, 24)
    return PlanningProblem(site, grid, NOW, tuple(sessions_for(site)), Capacity.static(site, grid))


def median_ms(fn: Callable[[], object], repeat: int, budget_s: float = 60.0) -> float:
    fn()  # warm-up
    times = []
    t_end = time.perf_counter() + budget_s
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1000.0)
        if time.perf_counter() > t_end:
            break
    return statistics.median(times)


def small_changes(prob: PlanningProblem) -> list[tuple[str, PlanningProblem]]:
    # one limit changed: the first panel's limit 10 % lower for the next two hours
    panel = prob.site.children(prob.site.root.id)[0]
    lowered = replace(
        prob,
        capacity=prob.capacity.lowered(
            panel,
            np.arange(prob.grid.slots) < 8,
            limit_a=float(prob.capacity.limit_a[panel][0]) * 0.9,
            limit_kw=None,
        ),
    )
    idle = next(c for c in prob.site.connectors if c not in {s.connector_id for s in prob.sessions})
    extra = SessionDemand("extra", idle, NOW, NOW + timedelta(hours=5), 25.0)
    added = replace(prob, sessions=(*prob.sessions, extra))
    return [("limit changed", lowered), ("session added", added)]


def bench(name: str, prob: PlanningProblem, repeat: int, with_pulp: bool) -> dict[str, object]:
    lp = prepare(prob)
    ref = median_ms(lambda: solve_arrays(lp), repeat)
    full = median_ms(lambda: solve(prob), repeat)
    row: dict[str, object] = {
        "site": name,
        "connectors": len(prob.site.connectors),
        "columns": lp.n_col,
        "rows": lp.n_row,
        "reference_ms": ref,
        "solve_ms": full,
        "ratio": full / ref,
    }
    planner = HighsPlanner()
    for label, changed in small_changes(prob):
        times = []
        for _ in range(max(1, repeat)):
            solve(prob, planner=planner)  # the model the change starts from
            t0 = time.perf_counter()
            solve(changed, planner=planner)
            times.append((time.perf_counter() - t0) * 1000.0)
        row[f"warm {label} ms"] = statistics.median(times)
    if with_pulp:
        row["pulp_ms"] = median_ms(lambda: solve(prob, backend="pulp"), max(1, repeat // 3))
    return row


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, action=ListOption, default=[10, 100, 1000, 5000])
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--pulp", action="store_true")
    ap.add_argument("--no-deep", action="store_true")
    ap.add_argument(
        "--congestion",
        type=float,
        default=0.5,
        help="grid limit as a fraction of what all connectors could draw",
    )
    return ap


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    print(
        f"congestion {args.congestion:.2f}: the grid limit is {args.congestion:.0%} of what "
        "every connector could draw; sessions need 5-60 kWh over 2-12 h"
    )
    rows = []
    for n in args.sizes:
        site = flat_site(n + max(1, n // 10), args.congestion)  # idle ones for "session added"
        prob = problem_for(site)
        prob = replace(prob, sessions=prob.sessions[:n])
        rows.append(bench(f"flat {n}", prob, args.repeat, args.pulp))
        print_row(rows[-1], header=len(rows) == 1)
    if not args.no_deep:
        site = deep_site(args.congestion, 1100)
        prob = problem_for(site)
        prob = replace(prob, sessions=prob.sessions[:1000])
        rows.append(bench("deep 1000/50 panels", prob, args.repeat, args.pulp))
        print_row(rows[-1], header=False)
    return 0


def print_row(row: dict[str, object], header: bool) -> None:
    keys = [
        "site",
        "columns",
        "rows",
        "reference_ms",
        "solve_ms",
        "ratio",
        "warm limit changed ms",
        "warm session added ms",
    ] + (["pulp_ms"] if "pulp_ms" in row else [])
    if header:
        print(" | ".join(keys))
        print(" | ".join("---" for _ in keys))
    cells = []
    for k in keys:
        v = row.get(k)
        cells.append(f"{v:.1f}" if isinstance(v, float) else str(v))
    print(" | ".join(cells), flush=True)


if __name__ == "__main__":
    raise SystemExit(main())
