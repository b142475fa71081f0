"""``gridshare stations``: run simulated OCPP stations against a central system.

    gridshare stations --url ws://127.0.0.1:9000/ocpp --config examples/depot.toml
    gridshare stations --url ws://127.0.0.1:9000/ocpp --count 50 --connectors 2 \\
        --version 2.0.1 --arrivals 20 --speed 60 --duration 300

Stations come from a site config (one per charger, passwords from its
``[server.station_passwords]``) or are generated (SIM00001…). EVs arrive at
random (``--arrivals`` per simulated hour over the fleet), charge under the
limits the central system sets and leave after their dwell time. Runs until
Ctrl-C or ``--duration`` wall seconds and prints a summary every
``--report-s`` seconds.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import random
from datetime import datetime, timedelta

from gridshare.commands.options import (
    OptionError,
    at_least_zero,
    check_url,
    command_parser,
    positive,
)
from gridshare.errors import UserError
from gridshare.logs import configure_logging
from gridshare.peers.ev import EvSpec
from gridshare.peers.fleet import StationFleet
from gridshare.peers.specs import SimStationSpec, generated_specs, specs_from_site


def parser() -> argparse.ArgumentParser:
    p = command_parser("stations", __doc__)
    p.add_argument("--url", required=True, help="central system endpoint, e.g. ws://HOST:9000/ocpp")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--config", help="site TOML: one station per charger")
    src.add_argument("--count", type=int, default=10, help="generated stations")
    p.add_argument("--connectors", type=int, default=2, help="connectors per generated station")
    p.add_argument("--prefix", default="SIM", help="generated station id prefix")
    p.add_argument("--password", help="HTTP Basic password for generated stations")
    p.add_argument(
        "--version",
        choices=["1.6", "2.0.1", "2.1"],
        default="1.6",
        help="OCPP version the stations speak",
    )
    p.add_argument(
        "--meter-interval", type=positive, default=60.0, help="simulated s between meter values"
    )
    p.add_argument("--speed", type=positive, default=1.0, help="simulated seconds per wall second")
    p.add_argument(
        "--arrivals", type=at_least_zero, default=0.0, help="EV arrivals per simulated hour (fleet)"
    )
    p.add_argument(
        "--initial-evs", type=float, default=0.5, help="fraction of connectors with an EV at start"
    )
    p.add_argument("--dwell-h", type=positive, default=4.0, help="mean simulated stay (h)")
    p.add_argument("--seed", type=int, default=1, help="random draw of the cars")
    p.add_argument(
        "--duration", type=at_least_zero, default=None, help="wall seconds (default: forever)"
    )
    p.add_argument(
        "--report-s", type=positive, default=10.0, help="wall seconds between two summaries"
    )
    p.add_argument("--concurrency", type=int, default=100, help="connections opened at once")
    return p


def build_specs(args: argparse.Namespace) -> list[SimStationSpec]:
    if args.config:
        from gridshare.config import load_config

        config = load_config(args.config)
        passwords = {k: v.get_secret_value() for k, v in config.server.station_passwords.items()}
        return specs_from_site(
            config.site,
            version=args.version,
            passwords=passwords,
            meter_interval_s=args.meter_interval,
        )
    return [
        SimStationSpec(
            s.id,
            s.connectors,
            version=args.version,
            password=args.password,
            meter_interval_s=args.meter_interval,
        )
        for s in generated_specs(args.count, connectors=args.connectors, prefix=args.prefix)
    ]


def random_ev(rng: random.Random) -> EvSpec:
    battery = rng.choice([40.0, 60.0, 77.0, 100.0])
    soc = rng.uniform(0.1, 0.6)
    return EvSpec(
        battery_kwh=battery,
        soc_start=soc,
        soc_target=rng.choice([0.8, 0.9, 1.0]),
        max_current_a=rng.choice([16.0, 16.0, 32.0]),
        phases=rng.choice([1, 3, 3, 3]),
    )


class Arrivals:
    """EVs arriving and leaving at random (simulated time)."""

    def __init__(self, fleet: StationFleet, args: argparse.Namespace) -> None:
        self.fleet = fleet
        self.args = args
        self.rng = random.Random(args.seed)
        self.keys = [
            f"{st.spec.id}/{c.id}" for st in fleet.stations.values() for c in st.spec.connectors
        ]
        self.leaving: dict[str, datetime] = {}
        self.arrived = 0
        self.left = 0

    def _arrive(self, key: str, now: datetime) -> None:
        dwell = timedelta(hours=self.rng.expovariate(1.0 / self.args.dwell_h))
        dwell = max(dwell, timedelta(minutes=15))
        ev = random_ev(self.rng)
        need = (ev.soc_target - ev.soc_start) * ev.battery_kwh * 1000
        self.fleet.plug_in(key, ev, departure=now + dwell, energy_wh=need)
        self.leaving[key] = now + dwell
        self.arrived += 1

    def seed(self) -> None:
        now = self.fleet.clock()
        for key in self.keys:
            if self.rng.random() < self.args.initial_evs:
                self._arrive(key, now)

    def step(self, sim_s: float) -> None:
        now = self.fleet.clock()
        for key, when in list(self.leaving.items()):
            if when <= now:
                self.fleet.unplug(key)
                del self.leaving[key]
                self.left += 1
        expected = self.args.arrivals * sim_s / 3600.0
        count = int(expected) + (self.rng.random() < expected - int(expected))
        free = [k for k in self.keys if k not in self.leaving]
        for key in self.rng.sample(free, min(count, len(free))):
            self._arrive(key, now)


def summary(fleet: StationFleet, arrivals: Arrivals) -> str:
    s = fleet.stats
    booted = sum(1 for st in fleet.stations.values() if st.booted)
    total_a = sum(sum(fleet.draw(k).values()) for k in arrivals.keys)
    p50, p99 = s.percentile_s(50), s.percentile_s(99)
    lat = "-" if p50 is None or p99 is None else f"{p50 * 1000:.1f}/{p99 * 1000:.1f} ms"
    down = [st for st in fleet.stations.values() if not st.booted]
    why = next((st.last_error for st in down if st.last_error), None)
    return (
        f"[stations] {booted}/{len(fleet.stations)} booted, {len(arrivals.leaving)} EVs, "
        f"drawing {total_a:.0f} A (sum over lines), calls {s.calls_sent} "
        f"(errors {s.call_errors}, timeouts {s.call_timeouts}), "
        f"server calls {s.calls_received}, p50/p99 {lat}, reconnects {s.disconnects}"
        + (f"; {len(down)} not connected: {reason(why)}" if down and why else "")
    )


def reason(error: str) -> str:
    """A station's last connection error, with what it likely means."""
    if "ConnectionRefused" in error or "Connect call failed" in error:
        return f"nothing listens there ({error})"
    if "HTTP 404" in error:
        return f"{error}: the central system does not know these station ids (--config SITE.toml)"
    if "HTTP 401" in error:
        return f"{error}: the central system wants the stations' passwords (--config or --password)"
    return error


async def run(args: argparse.Namespace) -> int:
    specs = build_specs(args)
    fleet = StationFleet(args.url, specs, speed=args.speed, connect_concurrency=args.concurrency)
    arrivals = Arrivals(fleet, args)
    loop = asyncio.get_running_loop()
    end = None if args.duration is None else loop.time() + args.duration
    print(f"[stations] {len(specs)} OCPP {args.version} stations → {args.url}", flush=True)
    await fleet.start()
    try:
        await fleet.wait_booted(min(30.0, args.duration or 30.0))
        arrivals.seed()
        tick = 1.0
        next_report = loop.time() + args.report_s
        while end is None or loop.time() < end:
            await asyncio.sleep(tick if end is None else max(0.0, min(tick, end - loop.time())))
            arrivals.step(tick * args.speed)
            if loop.time() >= next_report:
                next_report += args.report_s
                print(summary(fleet, arrivals), flush=True)
    finally:
        print(summary(fleet, arrivals), flush=True)
        await fleet.stop()
    if fleet.stats.connects == 0:
        why = next((st.last_error for st in fleet.stations.values() if st.last_error), None)
        raise UserError(f"{args.url}: no station could connect: {reason(why or 'no answer')}")
    return 0


def main(argv: list[str]) -> int:
    args = parser().parse_args(argv)
    configure_logging(logging.WARNING, "%(levelname)s %(name)s: %(message)s")
    if args.count < 1 or args.connectors < 1:
        raise OptionError("--count and --connectors must be at least 1")
    check_url("--url", args.url, "ws", "wss")
    try:
        return asyncio.run(run(args))
    except KeyboardInterrupt:
        return 130
