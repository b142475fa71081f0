"""What V2X changes in a plan under a DSO cut, and what it costs to plan, in one run.

    python benchmarks/v2x_plan.py [--connectors 200] [--share 0.2] [--repeat 3]

A depot of 3-phase 32 A connectors under one grid limit, cut to a quarter for
the first two hours. A ``share`` of the cars are bidirectional (they stay all
evening and need little: 5 kWh, they may give 30 kWh); the others leave
within three hours needing 20 kWh. The same problem is planned with the
bidirectional cars charge-only (the reference) and with V2X, the discharge
confirmed in force (as after the first rollout): energy the LP plans for
the leaving cars by their departure (the dispatched plan counts a discharge
in the slot now only: later slots are re-planned before they are in force),
the energy it plans to discharge, and the re-plan time of a full
`optimizer.solve` (median of ``repeat``), with their ratios.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from optimizer import Bidirectional, Capacity, PlanningProblem, SessionDemand, Site, TimeGrid
from optimizer import solve as plan_site
from optimizer.highs_backend import solve_arrays
from optimizer.prepare import prepare
from optimizer.problem import LimitWindow
from optimizer.v2x import discharging

NOW = datetime(2026, 11, 23, 17, 0, tzinfo=UTC)


def problem(n: int, share: float, v2x: bool, seed: int = 1) -> PlanningProblem:
    rng = random.Random(seed)
    site = Site.model_validate(
        {
            "site": {"name": f"v2x-{n}", "horizon_hours": 12},
            "groups": [{"id": "grid", "limit_a": 16.0 * n}],
            "chargers": [
                {"id": f"C{i}", "group": "grid", "connectors": [{"id": 1, "max_current_a": 32}]}
                for i in range(n)
            ],
        }
    )
    grid = TimeGrid.covering(NOW, 15, 12)
    cut = LimitWindow("grid", None, NOW + timedelta(hours=2), limit_a=4.0 * n)
    cap = Capacity.static(site, grid).limited(grid, [cut])
    sessions = []
    for i in range(n):
        if i < share * n:
            v = Bidirectional(16.0, min_kwh=-30.0, confirmed_a=16.0) if v2x else None
            dep = NOW + timedelta(hours=rng.uniform(8, 11))
            sessions.append(SessionDemand(f"s{i}", f"C{i}/1", NOW, dep, 5.0, v2x=v))
        else:
            dep = NOW + timedelta(hours=rng.uniform(1.5, 3))
            sessions.append(SessionDemand(f"s{i}", f"C{i}/1", NOW, dep, 20.0))
    return PlanningProblem(site, grid, NOW, tuple(sessions), cap)


def measure(p: PlanningProblem, repeat: int) -> tuple[float, float, float]:
    """(median ms of a full re-plan, kWh the LP plans for the leaving cars,
    kWh it plans to discharge)."""
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        plan_site(p)
        times.append((time.perf_counter() - t0) * 1000)
    lp = prepare(p)
    raw = solve_arrays(lp, 60.0)
    assert raw.x is not None
    leaving = np.array([d.energy_kwh == 20.0 for d in p.sessions])[lp.x_session]
    delivered = float(np.sum((lp.x_kwh * raw.x)[leaving]))
    given = 0.0
    if raw.extra is not None and lp.extras:
        kwh = np.concatenate([lp.sessions[i].kwh_per_a for i in discharging(p, lp.sessions)])
        given = float(raw.extra[: len(kwh)] @ kwh)
    return statistics.median(times), delivered, given


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--connectors", type=int, default=200)
    ap.add_argument("--share", type=float, default=0.2)
    ap.add_argument("--repeat", type=int, default=3)
    return ap


def main() -> None:
    a = parser().parse_args()
    ref = problem(a.connectors, a.share, v2x=False)
    ms0, kwh0, _ = measure(ref, a.repeat)
    ms1, kwh1, given = measure(problem(a.connectors, a.share, v2x=True), a.repeat)
    print(f"{a.connectors} connectors, {a.share:.0%} bidirectional, cut to 1/4 for 2 h")
    print(f"charge only (reference): {ms0:8.1f} ms  leaving cars get {kwh0:8.1f} kWh")
    print(f"V2X:                     {ms1:8.1f} ms  leaving cars get {kwh1:8.1f} kWh")
    print(f"ratio V2X / reference:   time {ms1 / ms0:.2f}, energy {kwh1 / max(kwh0, 1e-9):.3f}")
    print(f"discharge planned: {given:.1f} kWh")


if __name__ == "__main__":
    main()
