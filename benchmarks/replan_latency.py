"""Re-plan latency: a meter value arrives → the last changed profile is sent.

    .venv/bin/python benchmarks/replan_latency.py [--sizes 50 500 2000] [--events 60]

For each site size N (N three-phase 32 A connectors, ten panels under one grid
limit at half of what every connector could draw; every connector has a car,
96 slots of 15 min), the service's controller runs with its store (SQLite on a
temporary file) and a gateway that answers every profile at once (the station
round trip is not measured: it belongs to the OCPP adapter's benchmark).

Each event is one meter value that changes what a car takes, alternately "the
car draws 5 A" (its rate gets capped, the capacity goes to the others) and
"it takes its limit again" (the cap goes). Timed from handing the reading to
the controller (store commit, learning, the coalescing wait, the solve in a
worker thread with a warm planner, the safe rollout with every lowering
answered before the raisings) to the last SetChargingProfile of that rollout
going out. Prints p50/p99 per size and the number of profiles per re-plan.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from gridshare.controller import Controller, ControllerSettings
from gridshare.rollout import RolloutReport
from gridshare.store import SqliteStore
from ocpp_adapter.events import (
    ChargingLimitSpec,
    CommandOutcome,
    CommandResult,
    MeterReading,
    SessionStarted,
    StationBooted,
)
from optimizer import Plan
from optimizer.site import Site

T0 = datetime(2026, 3, 2, 17, 3, tzinfo=UTC)


def site(n: int) -> Site:
    panels = 10
    return Site.model_validate(
        {
            "site": {"name": f"bench-{n}", "slot_minutes": 15, "horizon_hours": 24},
            "groups": [
                {"id": "grid", "limit_a": n * 16.0},
                *(
                    {"id": f"p{k}", "parent": "grid", "limit_a": n * 32.0 / panels * 0.7}
                    for k in range(panels)
                ),
            ],
            "chargers": [
                {
                    "id": f"S{i:04d}",
                    "group": f"p{i % panels}",
                    "connectors": [{"id": 1, "max_current_a": 32, "min_current_a": 6}],
                }
                for i in range(n)
            ],
        }
    )


class InstantGateway:
    def __init__(self) -> None:
        self.sent = 0

    async def set_limit(self, station_id: str, spec: ChargingLimitSpec) -> CommandResult:
        self.sent += 1
        return CommandResult(CommandOutcome.ACCEPTED)

    async def clear_limit(self, station_id: str, connector: int) -> CommandResult:
        return CommandResult(CommandOutcome.ACCEPTED)


class Clock:
    def __init__(self) -> None:
        self.t = T0

    def __call__(self) -> datetime:
        return self.t


async def run(n: int, events: int, db: Path) -> tuple[list[float], list[int], float, float]:
    s = site(n)
    store = SqliteStore(db)
    gw = InstantGateway()
    clock = Clock()
    ctl = Controller(
        s, store, gw, clock=clock, settings=ControllerSettings(reserve_for_arrivals=False)
    )
    reports: list[RolloutReport] = []
    solves: list[float] = []

    def observe(plan: Plan, report: RolloutReport) -> None:
        reports.append(report)
        solves.append(plan.solve_ms)

    ctl.on_plan.append(observe)
    await ctl.start(scheduler=False)
    try:
        for info in {i.station_id for i in s.connectors.values()}:
            ctl.apply(StationBooted(info, "bench", "sim", clock()))
        for k, cid in enumerate(s.connectors):
            await ctl.on_event(SessionStarted(cid, f"tx{k}", f"tag{k % 50}", 0.0, clock()))
        await ctl.wait_idle(120)
        await asyncio.sleep(0.1)
        await ctl.wait_idle(120)
        # one warm re-plan before timing
        ctl.request_replan("periodic")
        await ctl.wait_idle(120)
        latencies: list[float] = []
        profiles: list[int] = []
        cids = list(s.connectors)
        for e in range(events):
            cid = cids[(e // 2 * 7) % len(cids)]
            low = e % 2 == 0
            amps = 5.0 if low else 32.0
            clock.t += timedelta(seconds=10)
            if low:  # the first low reading only arms the learner
                await ctl.on_event(
                    MeterReading(cid, clock(), current_a={"L1": amps, "L2": amps, "L3": amps})
                )
                clock.t += timedelta(seconds=10)
            before = len(reports)
            t0 = time.monotonic()
            await ctl.on_event(
                MeterReading(cid, clock(), current_a={"L1": amps, "L2": amps, "L3": amps})
            )
            await ctl.wait_idle(120)
            new = reports[before:]
            if not new:
                continue
            last = max(
                (r.last_sent_at for r in new if r.last_sent_at is not None),
                default=new[-1].finished,
            )
            latencies.append((last - t0) * 1000.0)
            profiles.append(sum(r.sent for r in new))
        rollout_s = statistics.median([r.finished - r.started for r in reports[-events:]] or [0.0])
        return latencies, profiles, rollout_s * 1000, statistics.median(solves[-events:])
    finally:
        await ctl.stop()
        store.close()


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    v = sorted(values)
    return v[min(len(v) - 1, round(q * (len(v) - 1)))]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[50, 500, 2000])
    ap.add_argument("--events", type=int, default=60, help="timed meter values per size")
    args = ap.parse_args()
    print(
        f"{'connectors':>10} {'events':>6} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8} "
        f"{'profiles/replan':>15} {'rollout ms':>10} {'solve ms':>8}"
    )
    with tempfile.TemporaryDirectory() as tmp:
        for n in args.sizes:
            events = args.events if n <= 500 else max(10, args.events // 3)
            lat, prof, rollout_ms, solve_ms = asyncio.run(run(n, events, Path(tmp) / f"b{n}.db"))
            print(
                f"{n:>10} {len(lat):>6} {pct(lat, 0.5):>8.1f} {pct(lat, 0.99):>8.1f} "
                f"{max(lat):>8.1f} {statistics.median(prof):>15.0f} {rollout_ms:>10.1f} "
                f"{solve_ms:>8.1f}"
            )


if __name__ == "__main__":
    main()
