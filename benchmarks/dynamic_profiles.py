"""OCPP 2.1 Dynamic profiles against SetChargingProfile: frames and bytes per re-plan.

    .venv/bin/python benchmarks/dynamic_profiles.py [--stations 200] [--replans 20]
        [--periods 24] [--pull-seconds 5]

Two runs on the same machine, one after the other, each a central system
(`ocpp_adapter.CentralSystem`) on 127.0.0.1 and ``--stations`` simulated 2.1
stations (`gridshare.peers`), one car charging at each:

- ``absolute``: every re-plan sends each station a SetChargingProfile with the
  plan's schedule (``--periods`` periods);
- ``dynamic``: the same plans; the first installs one Dynamic profile per
  transaction, every re-plan after it is an UpdateDynamicSchedule.

Counted on the wire at the stations, both directions (the CALL and its
CALLRESULT), WebSocket payload bytes; meter values and heartbeats are turned
off so only the commands flow. Then (dynamic only) ``--pull-seconds`` with
``dynUpdateInterval`` = 1 s (pulls counted apart from re-plans) measure one
pull exchange, and its cost per station-hour is given at the adapter's
default interval. Bounded in count and
time; everything is stopped at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from gridshare.peers.ev import EvSpec  # noqa: E402
from gridshare.peers.fleet import StationFleet  # noqa: E402
from gridshare.peers.specs import generated_specs  # noqa: E402
from ocpp_adapter.central_system import AdapterSettings, CentralSystem  # noqa: E402
from ocpp_adapter.events import (  # noqa: E402
    ChargingLimitSpec,
    CommandOutcome,
    DomainEvent,
    LimitPeriod,
    LimitPurpose,
    SessionStarted,
)
from ocpp_adapter.settings import ServerSettings  # noqa: E402

PULL = "PullDynamicScheduleUpdate"
COMMANDS = {"SetChargingProfile", "UpdateDynamicSchedule", PULL}


@dataclass
class Wire:
    """Frames and payload bytes per action (CALL and its CALLRESULT)."""

    frames: dict[str, int]
    sizes: dict[str, int]
    actions: dict[tuple[str, str], str]
    """(station, message id) → action of a CALL seen."""

    @classmethod
    def empty(cls) -> Wire:
        return cls({}, {}, {})

    def tap(self, sid: str, way: str, raw: str | bytes) -> None:
        frame = json.loads(raw)
        if frame[0] == 2:
            action = frame[2]
            self.actions[(sid, frame[1])] = action
        else:
            action = self.actions.pop((sid, frame[1]), "")
        if action in COMMANDS:
            size = len(raw.encode() if isinstance(raw, str) else raw)
            self.frames[action] = self.frames.get(action, 0) + 1
            self.sizes[action] = self.sizes.get(action, 0) + size

    def reset(self) -> None:
        self.frames.clear()
        self.sizes.clear()


def plan(tx: str, rng: random.Random, periods: int) -> ChargingLimitSpec:
    """A plan of 15-minute periods, each 6 to 32 A (what a re-plan gives one car)."""
    return ChargingLimitSpec(
        LimitPurpose.TX,
        1,
        datetime.now(UTC) - timedelta(seconds=2),
        tuple(LimitPeriod(i * 900, float(rng.randint(6, 32)), 3) for i in range(periods)),
        transaction_id=tx,
    )


async def run(args: argparse.Namespace, dynamic: bool) -> dict[str, Any]:
    sessions: dict[str, str] = {}

    async def on_event(event: DomainEvent) -> None:
        if isinstance(event, SessionStarted):
            sessions[event.connector_id.split("/")[0]] = event.transaction_id

    # pulls every second here, to measure one (counted apart from the re-plans)
    interval = 1 if dynamic and args.pull_seconds > 0 else 3600
    settings = AdapterSettings(
        meter_interval_s=None,
        heartbeat_interval_s=86400,
        dynamic_profiles=dynamic,
        dyn_update_interval_s=interval,
        gc_freeze_interval_s=None,
    )
    server = ServerSettings(host="127.0.0.1", port=0, allow_unknown_stations=True)
    cs = CentralSystem(server, on_event, settings=settings)
    await cs.start()
    specs = generated_specs(args.stations, connectors=1, version="2.1", meter_interval_s=0)
    fleet = StationFleet(f"ws://127.0.0.1:{cs.port}/ocpp", specs)
    wire = Wire.empty()
    fleet.frame_taps.append(wire.tap)
    rng = random.Random(7)
    await fleet.start()
    try:
        booted = await fleet.wait_booted(60)
        if booted != args.stations:
            raise SystemExit(f"only {booted} of {args.stations} stations booted")
        for spec in specs:
            fleet.plug_in(f"{spec.id}/1", EvSpec(battery_kwh=80, soc_start=0.1, lag_s=0.1))
        async with asyncio.timeout(60):
            while len(sessions) < args.stations:
                await asyncio.sleep(0.05)

        async def replan() -> float:
            t0 = time.perf_counter()
            results = await asyncio.gather(
                *(
                    cs.set_limit(sid, plan(tx, rng, args.periods))
                    for sid, tx in sorted(sessions.items())
                )
            )
            refused = [r for r in results if r.outcome is not CommandOutcome.ACCEPTED]
            if refused:
                raise SystemExit(f"{len(refused)} limits not accepted: {refused[0]}")
            return time.perf_counter() - t0

        await replan()  # the first plan of each transaction: the Dynamic profile's install
        install = {a: n for a, n in wire.sizes.items() if a != PULL}
        wire.reset()
        times = [await replan() for _ in range(args.replans)]
        frames = sum(n for a, n in wire.frames.items() if a != PULL)
        size = sum(n for a, n in wire.sizes.items() if a != PULL)
        out: dict[str, Any] = {
            "mode": "dynamic" if dynamic else "absolute",
            "frames_per_replan": frames / args.replans,
            "bytes_per_replan": size / args.replans,
            "bytes_per_station_replan": size / args.replans / args.stations,
            "first_plan_bytes_per_station": sum(install.values()) / args.stations,
            "replan_s_p50": sorted(times)[len(times) // 2],
            "frames_by_action": {a: n for a, n in wire.frames.items() if a != PULL},
        }
        if dynamic and args.pull_seconds > 0:
            wire.reset()
            await asyncio.sleep(args.pull_seconds)
            out.update(_pull_figures(wire))
        return out
    finally:
        await fleet.stop()
        await cs.stop()


def _pull_figures(wire: Wire) -> dict[str, Any]:
    pulls = wire.frames.get(PULL, 0) // 2
    per_pull = wire.sizes.get(PULL, 0) / max(1, pulls)
    default = AdapterSettings().dyn_update_interval_s
    return {
        "pull_bytes": per_pull,
        "pulls_seen": pulls,
        "pull_bytes_per_station_hour": per_pull * 3600 / default,
    }


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--stations", type=int, default=200)
    p.add_argument("--replans", type=int, default=20)
    p.add_argument("--periods", type=int, default=24, help="periods of each plan sent")
    p.add_argument("--pull-seconds", type=float, default=5.0)
    p.add_argument("--json", help="also write the results here")
    return p


async def main_async(args: argparse.Namespace) -> int:
    rows = [await run(args, dynamic=False), await run(args, dynamic=True)]
    absolute, dynamic = rows
    for row in rows:
        print(json.dumps(row))
    print(
        f"{args.stations} stations, {args.replans} re-plans of {args.periods} periods: "
        f"per re-plan {absolute['frames_per_replan']:.0f} vs {dynamic['frames_per_replan']:.0f} "
        f"frames, {absolute['bytes_per_station_replan']:.0f} vs "
        f"{dynamic['bytes_per_station_replan']:.0f} B per station "
        f"(dynamic/absolute {dynamic['bytes_per_replan'] / absolute['bytes_per_replan']:.2f})"
    )
    if "pull_bytes" in dynamic:
        print(
            f"pulls: {dynamic['pull_bytes']:.0f} B each, "
            f"{dynamic['pull_bytes_per_station_hour']:.0f} B per station-hour "
            f"at dynUpdateInterval {AdapterSettings().dyn_update_interval_s} s"
        )
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))
    return 0


def main() -> int:
    args = parser().parse_args()
    if args.stations < 1 or args.replans < 1:
        parser().error("--stations and --replans must be at least 1")
    return asyncio.run(main_async(args))


if __name__ == "__main__":
    raise SystemExit(main())
