"""Meter safety: from the Modbus reading that shows a group over its limit to
the last lowering SetChargingProfile written, at N connectors.

    .venv/bin/python benchmarks/meter_safety.py [--connectors 500] [--rounds 20]
        [--reference 50] [--interval 0.5]

One process on 127.0.0.1: the service (`gridshare.service.Service`, SQLite in a
temporary folder) with a connection meter read over Modbus TCP every
``--interval`` s from a simulated meter (a pymodbus server, Eastron SDM630
registers), and N one-connector stations (`gridshare.peers`), each with a car
charging. Each round the building jumps from 5 % to 35 % of the connection's
limit; the figure is the time from the reading that shows it (taken by the
service's meter reader) to the last lowering handed to a station's connection,
and to the last station's answer. The same run at ``--reference`` connectors
first; the ratio of the two p99s is printed. The polling interval comes on
top of these figures (a spike waits for the next poll). Bounded: ``--rounds``
rounds of at most 10 s each.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from gridshare.config import parse_config  # noqa: E402
from gridshare.peers.ev import EvSpec  # noqa: E402
from gridshare.peers.fleet import StationFleet  # noqa: E402
from gridshare.peers.modbus_meter import SimulatedMeter  # noqa: E402
from gridshare.peers.specs import specs_from_site  # noqa: E402
from gridshare.service import Service  # noqa: E402

PER_CONNECTOR_A = 12.0


def config(n: int, port: int, interval_s: float, folder: Path) -> Any:
    limit = n * PER_CONNECTOR_A
    data = {
        "site": {"name": "bench", "slot_minutes": 15, "horizon_hours": 2},
        "groups": [{"id": "grid", "limit_a": limit, "fallback_limit_a": limit}],
        "chargers": [
            {"id": f"CP{i}", "group": "grid", "connectors": [{"id": 1, "max_current_a": 32}]}
            for i in range(n)
        ],
        "meters": [
            {
                "id": "main",
                "group": "grid",
                "measures": "connection",
                "interval_s": interval_s,
                "stale_after_s": 30,
                "max_non_ev_a": 0.4 * limit,
                "source": {"type": "modbus", "host": "127.0.0.1", "port": port},
            }
        ],
        "server": {"host": "127.0.0.1", "ocpp_port": 0, "http_port": 0, "meter_interval_s": 5},
        "controller": {"coalesce_s": 0.05},
    }
    return parse_config(data, "bench.toml", folder / "bench.toml", environ={})


async def wait_for(cond: Any, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while not cond():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.02)
    return True


async def run(n: int, rounds: int, interval_s: float) -> dict[str, Any]:
    meter = SimulatedMeter()
    await meter.start()
    folder = Path(tempfile.mkdtemp(prefix="meter-bench-"))
    cfg = config(n, meter.port, interval_s, folder)
    limit = n * PER_CONNECTOR_A
    svc = Service(cfg, db=str(folder / "bench.db"), scheduler=False)
    await svc.start()
    fleet = StationFleet(
        f"ws://127.0.0.1:{svc.ocpp_port}/ocpp", specs_from_site(cfg.site, meter_interval_s=5)
    )
    cars = [f"CP{i}/1" for i in range(n)]
    building = {"L1": 0.05 * limit, "L2": 0.05 * limit, "L3": 0.05 * limit}

    async def feed() -> None:
        while True:
            total = dict(building)
            for cid in cars:
                for line, a in fleet.draw(cid).items():
                    total[line] += a
            meter.set_currents(total)
            await asyncio.sleep(0.05)

    sent: list[float] = []
    answered: list[float] = []
    feeder: asyncio.Task[None] | None = None
    try:
        await fleet.start()
        assert await fleet.wait_booted(120) == n
        for cid in cars:
            fleet.plug_in(cid, EvSpec(battery_kwh=200, soc_start=0.1, lag_s=0.2))
        feeder = asyncio.create_task(feed())
        hub = svc.meters
        assert hub is not None

        def limits() -> float:
            return sum(fleet.limit_in_force(c) for c in cars)

        await wait_for(lambda: limits() >= 0.85 * limit, 60)
        for _ in range(rounds):
            done = len(hub.lowerings)
            for line in building:
                building[line] = 0.35 * limit
            if not await wait_for(lambda done=done: len(hub.lowerings) > done, 10):
                continue
            start, found, all_answered = hub.lowerings[done]
            if found.last_sent is not None:
                sent.append(found.last_sent - start)
                answered.append(all_answered - start)
            await wait_for(lambda: limits() + 0.35 * limit <= limit + 1e-6, 10)
            for line in building:
                building[line] = 0.05 * limit
            await wait_for(lambda: limits() >= 0.8 * limit, 10)
    finally:
        if feeder is not None:
            feeder.cancel()
        await fleet.stop()
        await svc.stop()
        await meter.stop()

    def pct(xs: list[float], q: int) -> float | None:
        if not xs:
            return None
        return statistics.quantiles(xs, n=100, method="inclusive")[q - 1] if len(xs) > 1 else xs[0]

    return {
        "connectors": n,
        "rounds": len(sent),
        "last_sent_p50_ms": round(1000 * (pct(sent, 50) or 0), 1),
        "last_sent_p99_ms": round(1000 * (pct(sent, 99) or 0), 1),
        "all_answered_p99_ms": round(1000 * (pct(answered, 99) or 0), 1),
        "poll_interval_ms": round(1000 * interval_s),
    }


async def main_async(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.ERROR)
    results = []
    for n in (args.reference, args.connectors):
        r = await run(n, args.rounds, args.interval)
        print(r, flush=True)
        results.append(r)
    ref, big = results
    if ref["last_sent_p99_ms"]:
        ratio = big["last_sent_p99_ms"] / ref["last_sent_p99_ms"]
        print(
            f"reading → last lowering written, p99: {big['last_sent_p99_ms']} ms at "
            f"{big['connectors']} connectors, {ref['last_sent_p99_ms']} ms at "
            f"{ref['connectors']} ({ratio:.1f}×), plus up to {big['poll_interval_ms']} ms "
            "of polling"
        )
    return 0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    p.add_argument("--connectors", type=int, default=500)
    p.add_argument("--reference", type=int, default=50)
    p.add_argument("--rounds", type=int, default=20)
    p.add_argument("--interval", type=float, default=0.5, help="meter polling interval (s)")
    return p


def main() -> int:
    return asyncio.run(main_async(parser().parse_args()))


if __name__ == "__main__":
    sys.exit(main())
