"""OCPP scale: N simulated stations against one central-system process.

    .venv/bin/python benchmarks/ocpp_scale.py [--stations 2000] [--duration 60]
        [--meter-interval 10] [--reference-stations 100] [--version 1.6|2.0.1|2.1]
        [--compare-version 2.0.1]

The central system (`ocpp_adapter.CentralSystem`, a generated site of N
one-connector stations, unknown stations allowed, events counted and dropped)
runs in a child process on 127.0.0.1. This process runs the stations
(`gridshare.peers`), connecting in waves of ``--concurrency``.
Every station gets an EV, plug-ins spread over one meter interval so the
MeterValues (every ``--meter-interval`` s) arrive evenly, then the load is
measured for ``--duration`` s:

- accepted connections (stations booted) and how long connecting took;
- messages/s the server answered (station CALLs with a CALLRESULT);
- p50/p99 CALL→CALLRESULT latency, measured at the stations;
- server CPU (% of one core) and RSS per connection (RSS growth from idle / N);
- inside the server: event-loop lag, GC pauses per generation, objects the
  collector freed per message (cyclic garbage), and the longest loop stalls with
  the CPU the process used meanwhile (far less than the stall: it waited for a
  core, i.e. other load on the machine);
- the stations' own GC pauses: they take the latencies, so their pauses would
  count as ours. ``--client-gc on`` (default) treats their process like the
  adapter treats the server's (`AdapterSettings.gc_freeze_interval_s`).

``--adapter-gc off`` runs the server with the collector left alone, for
comparison; ``--server-gc-debug`` keeps the server's cyclic garbage
(``gc.DEBUG_SAVEALL``) and prints it by type with what slow collections scanned
(slow itself: for finding causes, not for figures).

The same run is first made with ``--reference-stations`` stations, and the
ratio of the two is printed. ``--compare-version`` (2.0.1 by default with
``--version 2.1``) then runs the N stations again on that version, so the two
versions' figures come from the same machine at the same time. Everything is
bounded in time and count; the server process is stopped at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import resource
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from gridshare.peers.ev import EvSpec  # noqa: E402
from gridshare.peers.fleet import StationFleet  # noqa: E402
from gridshare.peers.specs import generated_specs  # noqa: E402

PREFIX = "SIM"
VERSIONS = ["1.6", "2.0.1", "2.1"]


# --- the server process ----------------------------------------------------------------


def site_config(n: int) -> dict[str, Any]:
    width = max(5, len(str(n)))
    return {
        "site": {"name": f"scale-{n}"},
        "groups": [{"id": "grid", "limit_a": 32.0 * n}],
        "chargers": [
            {
                "id": f"{PREFIX}{i:0{width}d}",
                "group": "grid",
                "connectors": [{"id": 1, "max_current_a": 32.0}],
            }
            for i in range(1, n + 1)
        ],
        "server": {"host": "127.0.0.1", "ocpp_port": 0, "allow_unknown_stations": True},
    }


async def serve(
    n: int,
    meter_interval_s: int,
    lifetime_s: float,
    gc_freeze: bool,
    gc_debug: bool,
    adapter_gc: bool = True,
) -> None:
    from gridshare.config import parse_config
    from gridshare.service import ocpp_server_settings
    from ocpp_adapter.central_system import AdapterSettings, CentralSystem

    events = 0

    async def on_event(event: object) -> None:
        nonlocal events
        events += 1

    settings = AdapterSettings(meter_interval_s=meter_interval_s, heartbeat_interval_s=300)
    if not adapter_gc:
        settings = replace(settings, gc_freeze_interval_s=None)
    cs = CentralSystem(
        ocpp_server_settings(parse_config(site_config(n))), on_event, settings=settings
    )
    await cs.start()
    print(json.dumps({"port": cs.port}), flush=True)
    loop = asyncio.get_running_loop()
    done = loop.create_future()
    probe = ServerProbe()
    probe.install()
    lag_task = asyncio.create_task(probe.watch_loop())

    reported = False

    def report() -> None:
        nonlocal reported
        reported = True
        figures = probe.report()
        if gc_debug:
            figures.update(garbage_report())
        print(json.dumps({"events": events, **figures}), flush=True)

    # stdin: "mark" starts the measured window, "end" reports it; end of file stops us.
    # The lifetime bounds us if the parent dies.
    def on_stdin() -> None:
        data = os.read(sys.stdin.fileno(), 256)
        if not data:
            if not done.done():
                done.set_result(0)
        elif b"mark" in data:
            if gc_freeze:
                # everything alive now (the connected stations) leaves the GC's scans
                import gc

                gc.freeze()
            if gc_debug:
                import gc

                gc.collect()
                gc.set_debug(gc.DEBUG_SAVEALL)
                probe.census = True
            probe.reset()
        if b"end" in data:
            report()

    loop.add_reader(sys.stdin.fileno(), on_stdin)
    try:
        await asyncio.wait_for(done, lifetime_s)
    except TimeoutError:
        pass
    finally:
        loop.remove_reader(sys.stdin.fileno())
        lag_task.cancel()
        if not reported:
            report()
        await cs.stop()


class ServerProbe:
    """Event-loop lag and garbage-collector pauses inside the server process."""

    def __init__(self) -> None:
        self.lags: list[float] = []
        self.gc_pauses: list[float] = []
        self.gc_runs = [0, 0, 0]
        self.gc_ms = [0.0, 0.0, 0.0]
        self.stalls: list[tuple[float, float, float]] = []
        """Loop stalls of 50 ms or more: (stall, CPU used meanwhile, GC in it), ms."""
        self.gc_collected = 0
        """Objects the collector freed: cyclic garbage (refcounting frees the rest)."""
        self._gc_start = 0.0
        self.census = False
        """Look at what each collection scans (slow; --server-gc-debug)."""
        self.slow: list[str] = []
        self._young: list[Any] = []

    def install(self) -> None:
        import gc

        def on_gc(phase: str, info: dict[str, int]) -> None:
            if phase == "start":
                if self.census:
                    gen = info["generation"]
                    self._young = [o for g in range(gen + 1) for o in gc.get_objects(g)]
                self._gc_start = time.perf_counter()
            else:
                pause = time.perf_counter() - self._gc_start
                if self.census and pause >= 0.02:
                    # what the slow collection had to scan, by type
                    import collections

                    kinds = collections.Counter(
                        getattr(o, "__qualname__", "")
                        if type(o).__name__
                        in ("coroutine", "builtin_function_or_method", "function")
                        else type(o).__qualname__
                        for o in self._young
                    )
                    self.slow.append(
                        f"gen{info['generation']} {pause * 1000:.0f}ms {len(self._young)} objs "
                        f"{kinds.most_common(14)}"
                    )
                self._young = []
                pause = time.perf_counter() - self._gc_start
                self.gc_pauses.append(pause)
                gen = info["generation"]
                self.gc_runs[gen] += 1
                self.gc_ms[gen] += pause * 1000
                self.gc_collected += info["collected"]

        gc.callbacks.append(on_gc)

    def reset(self) -> None:
        self.lags.clear()
        self.gc_pauses.clear()
        self.gc_runs = [0, 0, 0]
        self.gc_ms = [0.0, 0.0, 0.0]
        self.gc_collected = 0
        self.stalls.clear()

    async def watch_loop(self, tick_s: float = 0.01) -> None:
        loop = asyncio.get_running_loop()
        while True:
            t, cpu, gc_before = loop.time(), time.process_time(), sum(self.gc_ms)
            await asyncio.sleep(tick_s)
            lag = max(0.0, loop.time() - t - tick_s)
            self.lags.append(lag)
            if lag >= 0.05:
                # Was the process busy (our work, GC) or waiting for a CPU (other load)?
                busy = time.process_time() - cpu
                self.stalls.append((lag * 1000, busy * 1000, sum(self.gc_ms) - gc_before))

    def report(self) -> dict[str, Any]:
        lags = sorted(self.lags) or [0.0]
        return {
            "lag_p99_ms": round(lags[int(0.99 * (len(lags) - 1))] * 1000, 2),
            "lag_max_ms": round(lags[-1] * 1000, 2),
            "gc_total_ms": round(sum(self.gc_pauses) * 1000, 1),
            "gc_max_ms": round(max(self.gc_pauses, default=0.0) * 1000, 2),
            "gc_runs": "/".join(str(n) for n in self.gc_runs),
            "gc_ms_by_gen": "/".join(f"{ms:.0f}" for ms in self.gc_ms),
            "gc_collected": self.gc_collected,
            "slow_collections": self.slow[-8:],
            "stalls": " ".join(
                f"{lag:.0f}/{cpu:.0f}/{gc:.0f}" for lag, cpu, gc in sorted(self.stalls)[-6:]
            ),
        }


def garbage_report(top: int = 25) -> dict[str, Any]:
    """What the collector found unreachable since DEBUG_SAVEALL was set, by type."""
    import collections
    import gc

    gc.collect()
    counts = collections.Counter(type(o).__qualname__ for o in gc.garbage)
    samples: dict[str, str] = {}
    for o in gc.garbage:
        name = type(o).__qualname__
        if name in ("function", "frame", "coroutine", "method", "cell") and name not in samples:
            samples[name] = repr(o)[:160]
    gc.set_debug(0)
    gc.garbage.clear()
    return {"garbage": dict(counts.most_common(top)), "garbage_samples": samples}


# --- measuring ---------------------------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    try:
        import psutil

        t = psutil.Process(pid).cpu_times()
        return float(t.user + t.system)
    except ImportError:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_bytes(pid: int) -> int:
    try:
        import psutil

        return int(psutil.Process(pid).memory_info().rss)
    except ImportError:
        pages = int(Path(f"/proc/{pid}/statm").read_text().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE")


async def loop_lag(duration_s: float, tick_s: float = 0.01) -> list[float]:
    """Sleep in small steps for duration_s; return the sorted oversleeps."""
    loop = asyncio.get_running_loop()
    end = loop.time() + duration_s
    lags = []
    while loop.time() < end:
        t = loop.time()
        await asyncio.sleep(tick_s)
        lags.append(max(0.0, loop.time() - t - tick_s))
    return sorted(lags) or [0.0]


def raise_fd_limit(need: int) -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = need if hard == resource.RLIM_INFINITY else min(need, hard)
    if soft != resource.RLIM_INFINITY and soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
        soft = want
    return soft


@dataclass
class Result:
    stations: int
    version: str
    accepted: int
    connect_s: float
    measured_s: float
    messages_per_s: float
    calls_per_station_per_min: float
    p50_ms: float | None
    p99_ms: float | None
    timeouts: int
    call_errors: int
    server_cpu_pct: float
    client_cpu_pct: float
    server_rss_mb: float
    rss_per_connection_kb: float
    client_lag_p99_ms: float
    """Event-loop lag of this (station) process: the part of the latency that is ours."""
    host_load_1m: float
    """Load average when measuring: other work on the machine skews the tail."""
    client_gc_max_ms: float = 0.0
    """Longest GC pause of this (station) process in the window."""
    client_lag_max_ms: float = 0.0
    over_100ms: str = ""
    """Answers slower than 100 ms, and in how many distinct seconds of the window."""
    slow_seconds: str = ""
    """Which seconds of the window (about: answers are binned by arrival order)."""
    server_lag_p99_ms: float = 0.0
    """Event-loop lag inside the server: time it could not react at all."""
    server_lag_max_ms: float = 0.0
    server_gc_total_ms: float = 0.0
    server_gc_max_ms: float = 0.0
    server_gc_runs: str = ""
    """Collections of generation 0/1/2 in the measured window."""
    server_gc_ms_by_gen: str = ""
    server_gc_freed_per_msg: float = 0.0
    """Objects the collector freed per answered message: cyclic garbage."""
    server_stalls: str = ""
    """The longest server loop stalls ≥ 50 ms as stall/CPU-used/GC ms: CPU far
    below the stall means the process waited for a core (other load)."""
    garbage: dict[str, Any] | None = None
    """With --server-gc-debug: the cyclic garbage by type."""


async def client_gc_keeper(interval_s: float = 1.0) -> None:
    """What the adapter does in the server (AdapterSettings.gc_*), done to the stations.

    They are the measuring instrument: thousands of simulated stations in one
    process otherwise add their own full-collection pauses to the latencies
    measured. Their remaining pauses are reported (client_gc_max_ms).
    """
    import gc

    saved = gc.get_threshold()
    gc.set_threshold(10_000, *saved[1:])
    try:
        while True:
            gc.freeze()
            await asyncio.sleep(interval_s)
    finally:
        gc.set_threshold(*saved)
        gc.unfreeze()


async def run_load(args: argparse.Namespace, n: int, duration_s: float) -> Result:
    raise_fd_limit(n + 256)
    server = subprocess.Popen(
        [
            sys.executable,
            __file__,
            "--serve",
            "--stations",
            str(n),
            "--meter-interval",
            str(int(args.meter_interval)),
            "--lifetime",
            str(duration_s + args.meter_interval + 300),
            *(["--server-gc-freeze"] if args.server_gc_freeze else []),
            *(["--adapter-gc", "off"] if args.adapter_gc == "off" else []),
            *(["--server-gc-debug"] if args.server_gc_debug else []),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    try:
        assert server.stdout is not None
        line = await asyncio.wait_for(asyncio.to_thread(server.stdout.readline), 60)
        port = json.loads(line)["port"]
        await asyncio.sleep(0.5)
        idle_rss = rss_bytes(server.pid)
        specs = generated_specs(
            n, connectors=1, version=args.version, prefix=PREFIX, meter_interval_s=60.0
        )
        fleet = StationFleet(
            f"ws://127.0.0.1:{port}/ocpp",
            specs,
            connect_concurrency=args.concurrency,
            call_timeout_s=30.0,
        )
        t0 = time.monotonic()
        # The stations measure the latency: their own GC pauses count too, so show them.
        client_probe = ServerProbe()
        client_probe.install()
        await fleet.start()
        accepted = await fleet.wait_booted(args.connect_timeout)
        connect_s = time.monotonic() - t0
        # plug in every car, spread over one interval so samples are not in lockstep
        keys = [f"{s.id}/1" for s in specs]
        step = args.meter_interval / max(len(keys), 1)
        for i, key in enumerate(keys):
            asyncio.get_running_loop().call_later(
                i * step, fleet.plug_in, key, EvSpec(battery_kwh=200.0)
            )
        await asyncio.sleep(args.meter_interval * 1.2 + 0.5)

        stats = fleet.stats
        lat0, res0 = len(stats.latencies_s), stats.call_results
        to0, err0 = stats.call_timeouts, stats.call_errors
        assert server.stdin is not None
        server.stdin.write(b"mark\n")
        server.stdin.flush()
        cpu0, me0, w0 = cpu_seconds(server.pid), time.process_time(), time.monotonic()
        keeper = asyncio.create_task(client_gc_keeper()) if args.client_gc == "on" else None
        client_probe.reset()
        lags = await loop_lag(duration_s)
        client_gc = client_probe.report()
        if keeper is not None:
            keeper.cancel()
            await asyncio.gather(keeper, return_exceptions=True)
        wall = time.monotonic() - w0
        server_cpu = (cpu_seconds(server.pid) - cpu0) / wall * 100
        client_cpu = (time.process_time() - me0) / wall * 100
        rss = rss_bytes(server.pid)
        server.stdin.write(b"end\n")
        server.stdin.flush()
        in_order = stats.latencies_s[lat0:]
        window = sorted(in_order)
        answered = stats.call_results - res0
        # Are the slow answers a few bursts (something stalled) or spread out?
        per_s = max(1, round(len(in_order) / wall))
        slow = [i // per_s for i, lat in enumerate(in_order) if lat > 0.1]

        def pct(q: float) -> float | None:
            if not window:
                return None
            return window[min(len(window) - 1, int(q / 100 * len(window)))] * 1000

        await fleet.stop()
        probe = await stop_server(server)
        return Result(
            stations=n,
            version=args.version,
            accepted=accepted,
            connect_s=round(connect_s, 2),
            measured_s=round(wall, 1),
            messages_per_s=round(answered / wall, 1),
            calls_per_station_per_min=round(answered / wall * 60 / max(accepted, 1), 2),
            p50_ms=None if pct(50) is None else round(pct(50) or 0.0, 2),
            p99_ms=None if pct(99) is None else round(pct(99) or 0.0, 2),
            timeouts=stats.call_timeouts - to0,
            call_errors=stats.call_errors - err0,
            server_cpu_pct=round(server_cpu, 1),
            client_cpu_pct=round(client_cpu, 1),
            server_rss_mb=round(rss / 2**20, 1),
            rss_per_connection_kb=round((rss - idle_rss) / max(accepted, 1) / 1024, 1),
            client_lag_p99_ms=round(lags[int(0.99 * (len(lags) - 1))] * 1000, 2),
            client_gc_max_ms=client_gc["gc_max_ms"],
            client_lag_max_ms=round(lags[-1] * 1000, 2),
            over_100ms=f"{len(slow)} in {len(set(slow))} s",
            slow_seconds=" ".join(str(b) for b in sorted(set(slow))[:20]),
            host_load_1m=round(os.getloadavg()[0], 2),
            server_lag_p99_ms=probe.get("lag_p99_ms", 0.0),
            server_lag_max_ms=probe.get("lag_max_ms", 0.0),
            server_gc_total_ms=probe.get("gc_total_ms", 0.0),
            server_gc_max_ms=probe.get("gc_max_ms", 0.0),
            server_gc_runs=str(probe.get("gc_runs", "")),
            server_stalls=str(probe.get("stalls", "")),
            server_gc_ms_by_gen=str(probe.get("gc_ms_by_gen", "")),
            server_gc_freed_per_msg=round(
                float(probe.get("gc_collected", 0)) / max(answered, 1), 2
            ),
            garbage=(
                {
                    **probe["garbage"],
                    "samples": probe.get("garbage_samples"),
                    "slow_collections": probe.get("slow_collections"),
                }
                if "garbage" in probe
                else None
            ),
        )
    finally:
        await stop_server(server)


async def stop_server(server: subprocess.Popen[bytes]) -> dict[str, Any]:
    """Close the server's stdin, wait for it (kill if stuck); return its last report."""
    if server.stdin is not None and not server.stdin.closed:
        server.stdin.close()
    try:
        await asyncio.to_thread(server.wait, 20)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait(timeout=10)
    report: dict[str, Any] = {}
    if server.stdout is not None and not server.stdout.closed:
        for line in server.stdout.read().decode().splitlines():
            with contextlib.suppress(ValueError):
                report = json.loads(line)
        server.stdout.close()
    return report


def _print(results: list[Result]) -> None:
    """One row per figure, one column per run."""
    rows = [asdict(r) for r in results]
    for row in rows:
        garbage = row.pop("garbage")
        if garbage:
            print(f"cyclic garbage at {row['stations']} stations: {json.dumps(garbage)}")
    for name in rows[0]:
        print(f"{name:>26}  " + "  ".join(f"{row[name]!s:>10}" for row in rows))


async def main_async(args: argparse.Namespace) -> int:
    results = []
    if args.reference_stations:
        print(f"reference: {args.reference_stations} stations, {args.duration:.0f} s", flush=True)
        results.append(await run_load(args, args.reference_stations, args.duration))
    print(f"load: {args.stations} stations, {args.duration:.0f} s", flush=True)
    results.append(await run_load(args, args.stations, args.duration))
    if args.compare_version and args.compare_version != args.version:
        other = argparse.Namespace(**{**vars(args), "version": args.compare_version})
        print(f"compare: {args.stations} stations, OCPP {other.version}", flush=True)
        results.append(await run_load(other, args.stations, args.duration))
    _print(results)
    ref, big = results[0], results[1 if args.reference_stations else 0]
    if args.reference_stations and ref.p99_ms and big.p99_ms:
        print(
            f"ratio {big.stations}/{ref.stations} stations: p99 ×{big.p99_ms / ref.p99_ms:.2f}, "
            f"messages/s ×{big.messages_per_s / max(ref.messages_per_s, 1e-9):.1f}, "
            f"server CPU ×{big.server_cpu_pct / max(ref.server_cpu_pct, 1e-9):.1f}"
        )
    if args.json:
        Path(args.json).write_text(json.dumps([asdict(r) for r in results], indent=2))
    return 0 if all(r.accepted == r.stations for r in results) else 1


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--stations", type=int, default=2000)
    p.add_argument("--duration", type=float, default=60.0, help="measured seconds")
    p.add_argument("--meter-interval", type=float, default=10.0)
    p.add_argument("--reference-stations", type=int, default=100, help="0: no reference run")
    p.add_argument("--version", choices=VERSIONS, default="1.6")
    p.add_argument(
        "--compare-version",
        choices=VERSIONS,
        help="also run the N stations on this version (default: 2.0.1 for --version 2.1)",
    )
    p.add_argument("--concurrency", type=int, default=200, help="connections opened at once")
    p.add_argument("--connect-timeout", type=float, default=180.0)
    p.add_argument("--json", help="also write the results here")
    p.add_argument(
        "--server-gc-freeze",
        action="store_true",
        help="also gc.freeze() in the server when the measured window starts",
    )
    p.add_argument(
        "--client-gc",
        choices=["on", "off"],
        default="on",
        help="on: freeze the stations' process like the adapter does the server (see below)",
    )
    p.add_argument(
        "--adapter-gc",
        choices=["on", "off"],
        default="on",
        help="off: the adapter leaves the collector alone (gc_freeze_interval_s=None)",
    )
    p.add_argument(
        "--server-gc-debug",
        action="store_true",
        help="keep the server's cyclic garbage (gc.DEBUG_SAVEALL) and print it by type",
    )
    p.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--lifetime", type=float, default=600.0, help=argparse.SUPPRESS)
    return p


def main() -> int:
    args = parser().parse_args()
    if args.compare_version is None and args.version == "2.1":
        args.compare_version = "2.0.1"
    if args.stations < 1 or args.duration <= 0 or args.meter_interval <= 0:
        raise SystemExit("--stations, --duration and --meter-interval must be positive")
    if args.serve:
        asyncio.run(
            serve(
                args.stations,
                int(args.meter_interval),
                args.lifetime,
                args.server_gc_freeze,
                args.server_gc_debug,
                args.adapter_gc == "on",
            )
        )
        return 0
    return asyncio.run(main_async(args))


if __name__ == "__main__":
    raise SystemExit(main())
