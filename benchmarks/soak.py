"""Soak: weeks of a site's life in under an hour, watching what grows.

    .venv/bin/python benchmarks/soak.py [--days 30] [--connectors 300] [--speed 1200]
        [--meter-interval 1800] [--out soak.csv] [--trace-memory]

The real service (`gridshare.service.Service`) runs in a child process on
127.0.0.1 with a clock ``--speed`` times faster than real time. This process
runs the load on the same clock:

- a generated site of ``--connectors`` connectors (two per station, ten
  panels under one grid connection), half the stations OCPP 1.6J and half
  2.0.1 (`gridshare.peers.fleet.StationFleet`), meter values every
  ``--meter-interval`` simulated seconds and a charging car's physics stepped
  every ``--physics-tick`` simulated seconds (both raised from a site's usual
  60 and the stations' 10, so that the load per wall second stays that of a
  busy site rather than a thousand);
- cars arriving and leaving on a daily pattern: commuters in the morning,
  overnight fleet cars in the evening, about 1.4 sessions per connector a day;
- the simulated DSO (`gridshare.peers.dso.SimulatedDso`) over OSCP: a
  forecast (24 h of 15-minute blocks with an evening cut) every slot and a
  heartbeat every 5 simulated minutes;
- API pollers: /api/status, /api/groups and /metrics (open reads on loopback)
  every second of wall time.

The service re-plans at every slot boundary of the fast clock (as the demo
does) and on its own events. At the end of every simulated day it prints a
row: resident memory and open files of the service (from /proc), the
database's size (file and WAL), re-plan p50/p99 (measured in the service as
its metrics measure it), API p99 seen by the pollers, errors logged by the
service (ERROR and Traceback lines), the size of the saved capacity book, the
memory blocks Python holds (flat while RSS grows: the growth is below Python); then
the least-squares slope per day of each column over the days after the first.

``--trace-memory`` runs the service under tracemalloc and prints, at the end,
where its allocations grew most between the end of day 1 and the last day.

Bounded: it stops by itself after ``--days`` simulated days (and at the
latest twice the planned wall time plus two minutes), talks only to
127.0.0.1, and stops the service process at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import csv
import json
import logging
import os
import random
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402

from forecasts.model import ForecastType  # noqa: E402
from gridshare.commands.demo import Arrival, Cars  # noqa: E402
from gridshare.peers import station_protocol  # noqa: E402
from gridshare.peers.dso import SimulatedDso, evening_peak_cut  # noqa: E402
from gridshare.peers.ev import EvSpec  # noqa: E402
from gridshare.peers.fleet import StationFleet  # noqa: E402
from gridshare.peers.specs import SimConnectorSpec, SimStationSpec  # noqa: E402

PANELS = 10
SLOT_MINUTES = 15
DAY = timedelta(days=1)
FORECAST_EVERY = timedelta(minutes=SLOT_MINUTES)
DSO_HEARTBEAT_EVERY = timedelta(minutes=5)
POLL_EVERY_S = 1.0
POLLED = ("/api/status", "/api/groups", "/metrics")
ROOT_GROUP = "grid"
OSCP_GROUP = "grid"


# --- the shared clock ---------------------------------------------------------------------


@dataclass(frozen=True)
class SoakClock:
    """Simulated UTC time, ``speed`` times faster than the wall clock since ``wall0``
    (wall time, so that both processes read the same simulated time)."""

    sim0: datetime
    wall0: float
    speed: float

    def __call__(self) -> datetime:
        return self.sim0 + timedelta(seconds=(time.time() - self.wall0) * self.speed)

    def wall_at(self, t: datetime) -> float:
        return self.wall0 + (t - self.sim0).total_seconds() / self.speed

    def to_dict(self) -> dict[str, Any]:
        return {"sim0": self.sim0.isoformat(), "wall0": self.wall0, "speed": self.speed}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SoakClock:
        return cls(datetime.fromisoformat(d["sim0"]), float(d["wall0"]), float(d["speed"]))


# --- the site -------------------------------------------------------------------------------


def site_config(connectors: int, meter_interval_s: int) -> dict[str, Any]:
    """A site of ``connectors`` connectors, two per station, ten panels under a grid
    connection too small for every car at once."""
    stations = max(1, connectors // 2)
    return {
        "site": {"name": f"soak-{connectors}", "slot_minutes": SLOT_MINUTES, "horizon_hours": 24},
        "groups": [
            {"id": ROOT_GROUP, "limit_a": connectors * 12.0, "oscp_group_id": OSCP_GROUP},
            *(
                {"id": f"p{k}", "parent": ROOT_GROUP, "limit_a": connectors * 32.0 / PANELS * 0.7}
                for k in range(PANELS)
            ),
        ],
        "chargers": [
            {
                "id": station_id(i),
                "group": f"p{i % PANELS}",
                "connectors": [{"id": k, "max_current_a": 32, "min_current_a": 6} for k in (1, 2)],
            }
            for i in range(stations)
        ],
        "server": {
            "host": "127.0.0.1",
            "ocpp_port": 0,
            "http_port": 0,
            "meter_interval_s": meter_interval_s,
            "heartbeat_interval_s": 3600,
        },
        "api": {"open_reads_on_loopback": True},
        # passes follow the service's clock; a short pause between steps (in wall
        # time) keeps up with days of a minute; every horizon within a week, so
        # that the database's steady state shows within the run
        "retention": {
            "pause_s": 0.02,
            "plans": "7d",
            "profiles": "7d",
            "oscp_messages": "7d",
        },
    }


def station_id(i: int) -> str:
    return f"S{i:04d}"


def station_specs(config: dict[str, Any], meter_interval_s: int) -> list[SimStationSpec]:
    """One simulated station per charger, alternating OCPP 1.6J and 2.0.1."""
    return [
        SimStationSpec(
            ch["id"],
            tuple(SimConnectorSpec(c["id"]) for c in ch["connectors"]),
            version="2.0.1" if k % 2 else "1.6",
            meter_interval_s=float(meter_interval_s),
        )
        for k, ch in enumerate(config["chargers"])
    ]


def connector_ids(config: dict[str, Any]) -> list[str]:
    return [f"{ch['id']}/{c['id']}" for ch in config["chargers"] for c in ch["connectors"]]


def day_of_cars(cids: Sequence[str], day0: datetime, rng: random.Random) -> list[Arrival]:
    """One day's cars: per connector a commuter in the morning (most days) and an
    overnight car in the evening (some days), never two on a connector at once."""
    out = []
    for cid in cids:
        free_from = day0
        if rng.random() < 0.85:
            arrives = day0 + timedelta(hours=min(11.0, max(5.0, rng.gauss(8.0, 1.2))))
            departs = arrives + timedelta(hours=rng.uniform(3.0, 9.0))
            out.append(arrival(cid, arrives, departs, rng))
            free_from = departs + timedelta(minutes=10)
        if rng.random() < 0.55:
            arrives = max(
                free_from, day0 + timedelta(hours=min(23.0, max(15.0, rng.gauss(18.5, 1.5))))
            )
            # the next morning at the latest: the commuter's turn
            departs = min(
                arrives + timedelta(hours=rng.uniform(6.0, 12.0)), day0 + DAY + timedelta(hours=4)
            )
            if departs > arrives + timedelta(hours=1):
                out.append(arrival(cid, arrives, departs, rng))
    return sorted(out, key=lambda a: a.arrives)


def arrival(cid: str, arrives: datetime, departs: datetime, rng: random.Random) -> Arrival:
    ev = EvSpec(
        battery_kwh=rng.choice([40.0, 60.0, 77.0]),
        soc_start=rng.uniform(0.15, 0.6),
        max_current_a=rng.choice([16.0, 32.0]),
        phases=1 if rng.random() < 0.2 else 3,
    )
    return Arrival(cid, ev, arrives, departs, f"car-{rng.randrange(10**6):06d}")


# --- the service's process ------------------------------------------------------------------


def service_main(spec_path: str) -> None:
    """The child: the service on the fast clock, answering the parent's day requests
    on stdin/stdout (one JSON line each)."""
    spec = json.loads(Path(spec_path).read_text())
    from gridshare.logs import configure_logging

    handler_path = spec["log"]
    configure_logging(logging.INFO, "%(asctime)s %(levelname)s %(name)s: %(message)s")
    root = logging.getLogger()
    for h in list(root.handlers):
        root.removeHandler(h)
    fh = logging.FileHandler(handler_path)
    fh.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root.addHandler(fh)
    root.setLevel(logging.WARNING)
    if spec["trace_memory"]:
        import tracemalloc

        tracemalloc.start(spec.get("trace_frames", 12))
    asyncio.run(_serve(spec))


async def _serve(spec: dict[str, Any]) -> None:
    import tracemalloc

    from gridshare.config import parse_config
    from gridshare.controller import static_capacity
    from gridshare.dso_link import CAPACITY_BOOK_STATE
    from gridshare.service import Service
    from optimizer.problem import TimeGrid

    clock = SoakClock.from_dict(spec["clock"])
    config = parse_config(spec["config"], "soak.toml", Path(spec["dir"]) / "soak.toml", environ={})
    service = Service(config, db=spec["db"], capacity=static_capacity, clock=clock, scheduler=False)
    await service.start()
    ctl = service.controller
    assert ctl is not None
    replan_ms: list[float] = []

    def timed(plan: Any, report: Any) -> None:
        # as the service's metrics time a re-plan (`LiveFeed.on_plan`)
        since = ctl.plan_requested_at
        seconds = time.perf_counter() - since if since is not None else plan.solve_ms / 1000
        replan_ms.append(seconds * 1000)

    ctl.on_plan.append(timed)
    print(json.dumps({"http": service.http_url, "ocpp": service.ocpp_port}), flush=True)

    async def slots() -> None:
        last = None
        while True:
            await asyncio.sleep(0.1)
            slot = TimeGrid.covering(clock(), SLOT_MINUTES, 1).start
            if slot != last:
                ctl.request_replan("slot boundary")
                last = slot

    ticker = asyncio.create_task(slots())
    baseline: Any = None
    loop = asyncio.get_running_loop()
    try:
        while True:
            line = await loop.run_in_executor(None, sys.stdin.readline)
            if not line or line.strip() == "stop":
                break
            store = service.store
            saved = store.get_state(CAPACITY_BOOK_STATE) if store is not None else None
            out: dict[str, Any] = {
                "replans": len(replan_ms),
                "replan_p50_ms": percentile(replan_ms, 50),
                "replan_p99_ms": percentile(replan_ms, 99),
                "book_kb": len(json.dumps(saved)) / 1024 if saved else 0.0,
                # what Python itself holds: flat while RSS grows points below it
                "py_blocks_k": sys.getallocatedblocks() / 1000,
                **heap_mb(),
                "growth": [],
            }
            replan_ms.clear()
            if tracemalloc.is_tracing():
                snap = tracemalloc.take_snapshot().filter_traces(
                    [tracemalloc.Filter(False, tracemalloc.__file__)]
                )
                if baseline is None:
                    baseline = snap
                else:
                    out["growth"] = growth_sites(snap, baseline, 12)
            print(json.dumps(out), flush=True)
    finally:
        ticker.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await ticker
        await service.stop()


def heap_mb() -> dict[str, float]:
    """The C heap (glibc ``mallinfo2``): in use, and free but kept by the process."""
    import ctypes
    import ctypes.util

    class Mallinfo2(ctypes.Structure):
        _fields_ = [
            (n, ctypes.c_size_t)
            for n in (
                "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks",
                "uordblks", "fordblks", "keepcost",
            )
        ]  # fmt: skip

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c"))
        libc.mallinfo2.restype = Mallinfo2
        m = libc.mallinfo2()
    except (OSError, AttributeError):
        return {}
    return {"heap_mb": (m.uordblks + m.hblkhd) / 2**20, "heap_free_mb": m.fordblks / 2**20}


def growth_sites(snap: Any, baseline: Any, top: int) -> list[str]:
    """The allocation sites that grew most since ``baseline``, each named by the
    innermost frame in the project's code (what holds on to it), else its own."""

    def by_site(snapshot: Any) -> dict[str, tuple[int, int]]:
        out: dict[str, tuple[int, int]] = {}
        for stat in snapshot.statistics("traceback"):
            frames = list(stat.traceback)
            ours = [f for f in reversed(frames) if ours_path(f.filename)]
            f = ours[0] if ours else frames[-1]
            key = f"{short(f.filename)}:{f.lineno}"
            size, count = out.get(key, (0, 0))
            out[key] = (size + stat.size, count + stat.count)
        return out

    now, then = by_site(snap), by_site(baseline)
    diffs = [
        (size - then.get(key, (0, 0))[0], count - then.get(key, (0, 0))[1], key)
        for key, (size, count) in now.items()
    ]
    diffs.sort(reverse=True)
    return [f"{d / 1024:+9.1f} KiB {c:+7d} blocks  {key}" for d, c, key in diffs[:top]]


PROJECT = ("/gridshare/", "/forecasts/", "/optimizer/", "/ocpp_adapter/", "/oscp/")


def ours_path(path: str) -> bool:
    return any(marker in path for marker in PROJECT) and "/peers/" not in path


def short(path: str) -> str:
    for marker in PROJECT:
        if marker in path:
            return path[path.rindex(marker) + 1 :]
    return path.rsplit("/site-packages/", 1)[-1]


def percentile(values: Sequence[float], q: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    return s[min(len(s) - 1, max(0, round(q / 100 * (len(s) - 1))))]


# --- the load -------------------------------------------------------------------------------


@dataclass
class Polls:
    """What the API pollers saw since the last row."""

    ms: list[float] = field(default_factory=list)
    failures: int = 0

    def take(self) -> tuple[float, int]:
        p99, failed = percentile(self.ms, 99), self.failures
        self.ms.clear()
        self.failures = 0
        return p99, failed


async def poll_api(base: str, polls: Polls) -> None:
    async with httpx.AsyncClient(base_url=base, timeout=10.0) as client:
        while True:
            for path in POLLED:
                t0 = time.perf_counter()
                try:
                    r = await client.get(path)
                    ok = r.status_code == 200
                except httpx.HTTPError:
                    ok = False
                polls.ms.append((time.perf_counter() - t0) * 1000)
                polls.failures += not ok
            await asyncio.sleep(POLL_EVERY_S)


async def run_dso(dso: SimulatedDso, clock: SoakClock, base_a: float) -> None:
    """A forecast every slot, a heartbeat every 5 simulated minutes."""
    next_forecast = next_heartbeat = clock()
    while True:
        now = clock()
        try:
            if now >= next_heartbeat:
                # offline after three missed heartbeats, and never sooner than a
                # loaded service may take to answer one in wall time
                await dso.heartbeat(max(3 * DSO_HEARTBEAT_EVERY.total_seconds(), 30 * clock.speed))
                next_heartbeat = now + DSO_HEARTBEAT_EVERY
            if now >= next_forecast:
                blocks = evening_peak_cut(now, base_kw=base_a, cut_kw=base_a * 0.6)
                # per line, in A: the site's limits are in A
                blocks = [replace(b, unit=_amps()) for b in blocks]
                await dso.send_forecast(OSCP_GROUP, ForecastType.CONSUMPTION, blocks)
                next_forecast = now + FORECAST_EVERY
        except httpx.HTTPError as e:
            print(f"  dso: {type(e).__name__}: {e}", file=sys.stderr)
        dso.received.clear()  # what it heard is not what we measure
        wake = min(next_forecast, next_heartbeat)
        await asyncio.sleep(max(0.05, clock.wall_at(wake) - time.time()))


def _amps() -> Any:
    from forecasts.model import Unit

    return Unit.A


async def run_cars(cars: Cars, cids: Sequence[str], clock: SoakClock, days: int, seed: int) -> None:
    rng = random.Random(seed)
    day0 = clock.sim0.replace(hour=0, minute=0, second=0, microsecond=0)
    planned = 0
    while True:
        now = clock()
        # plan a day ahead, so the evening cars of today and tomorrow's commuters line up
        while planned <= days and day0 + DAY * planned <= now + DAY:
            more = [a for a in day_of_cars(cids, day0 + DAY * planned, rng) if a.arrives >= now]
            cars.pending = sorted(cars.pending + more, key=lambda a: a.arrives)
            planned += 1
        cars.tick(now)
        await asyncio.sleep(0.2)


# --- measuring ------------------------------------------------------------------------------


@dataclass
class Row:
    day: int
    rss_mb: float
    db_mb: float
    fds: int
    replans: int
    replan_p50_ms: float
    replan_p99_ms: float
    api_p99_ms: float
    api_failures: int
    errors: int
    book_kb: float
    py_blocks_k: float
    heap_mb: float
    heap_free_mb: float
    cars: int

    HEAD = (
        f"{'day':>4} {'RSS MB':>7} {'DB MB':>7} {'fds':>5} {'replans':>7} {'p50 ms':>7} "
        f"{'p99 ms':>7} {'API p99':>8} {'API err':>7} {'errors':>6} {'book KB':>8} "
        f"{'py kblk':>7} {'heap MB':>7} {'free MB':>7} {'cars':>6}"
    )

    def line(self) -> str:
        return (
            f"{self.day:>4} {self.rss_mb:>7.1f} {self.db_mb:>7.1f} {self.fds:>5} "
            f"{self.replans:>7} {self.replan_p50_ms:>7.1f} {self.replan_p99_ms:>7.1f} "
            f"{self.api_p99_ms:>8.1f} {self.api_failures:>7} {self.errors:>6} "
            f"{self.book_kb:>8.1f} {self.py_blocks_k:>7.0f} {self.heap_mb:>7.1f} "
            f"{self.heap_free_mb:>7.1f} {self.cars:>6}"
        )


SLOPED = (
    "rss_mb",
    "db_mb",
    "fds",
    "replan_p50_ms",
    "replan_p99_ms",
    "api_p99_ms",
    "book_kb",
    "py_blocks_k",
    "heap_mb",
    "heap_free_mb",
)


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def db_mb(path: Path) -> float:
    files = [path, path.with_name(path.name + "-wal")]
    return sum(f.stat().st_size for f in files if f.exists()) / 2**20


def table_sizes(path: Path, top: int = 8) -> str:
    """The largest tables and indexes of the database (read-only, ``dbstat``)."""
    import sqlite3

    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)
        try:
            rows = db.execute(
                "SELECT name, SUM(pgsize) FROM dbstat GROUP BY name ORDER BY 2 DESC LIMIT ?",
                (top,),
            ).fetchall()
            free = db.execute("PRAGMA freelist_count").fetchone()[0]
            page = db.execute("PRAGMA page_size").fetchone()[0]
        finally:
            db.close()
    except sqlite3.Error as e:
        return f"({e})"
    parts = [f"{name} {size / 2**20:.1f}" for name, size in rows]
    return ", ".join([*parts, f"free {free * page / 2**20:.1f}"])


def errors_logged(log: Path) -> int:
    if not log.exists():
        return 0
    with log.open(errors="replace") as f:
        return sum(1 for line in f if " ERROR " in line or line.startswith("Traceback"))


def slope(ys: Sequence[float]) -> float:
    """Least-squares slope per step of ``ys`` (NaN: too few points)."""
    pts = [(x, y) for x, y in enumerate(ys) if y == y]
    if len(pts) < 2:
        return float("nan")
    mx = statistics.fmean(x for x, _ in pts)
    my = statistics.fmean(y for _, y in pts)
    den = sum((x - mx) ** 2 for x, _ in pts)
    return sum((x - mx) * (y - my) for x, y in pts) / den


class Child:
    """The service's process: a JSON request per line on its stdin, a JSON line back."""

    def __init__(self, spec_path: Path, log: Path) -> None:
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        self.proc = subprocess.Popen(
            [sys.executable, __file__, "--service", str(spec_path)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=log.open("a"),
            text=True,
            env=env,
        )

    @property
    def pid(self) -> int:
        return self.proc.pid

    async def read(self, timeout_s: float) -> dict[str, Any]:
        assert self.proc.stdout is not None
        line = await asyncio.wait_for(asyncio.to_thread(self.proc.stdout.readline), timeout_s)
        if not line:
            raise RuntimeError(f"the service exited ({self.proc.poll()})")
        return dict(json.loads(line))

    async def ask(self, timeout_s: float = 120.0) -> dict[str, Any]:
        assert self.proc.stdin is not None
        self.proc.stdin.write("day\n")
        self.proc.stdin.flush()
        return await self.read(timeout_s)

    def stop(self, timeout_s: float = 30.0) -> None:
        if self.proc.poll() is None and self.proc.stdin is not None:
            with contextlib.suppress(BrokenPipeError, OSError):
                self.proc.stdin.write("stop\n")
                self.proc.stdin.flush()
                self.proc.stdin.close()
        try:
            self.proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)


async def soak(args: argparse.Namespace, tmp: Path) -> list[Row]:
    # the simulated stations step a charging car every PHYSICS_TICK_S simulated
    # seconds: at this speed the default would be most of the load's work
    station_protocol.PHYSICS_TICK_S = args.physics_tick
    meter_s = args.meter_interval
    data = site_config(args.connectors, meter_s)
    sim0 = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    to_us, to_them = secrets.token_urlsafe(24), secrets.token_urlsafe(24)
    dso = SimulatedDso(token_to_fp=to_us)
    await dso.start()
    dso.accepted_tokens.add(to_them)
    data["oscp"] = {
        "capacity_providers": [
            {
                "id": "soak-dso",
                "base_url": dso.base_url,
                "token_to_us": to_us,
                "token_to_them": to_them,
                "heartbeat_interval_s": 60,
            }
        ]
    }
    db, log = tmp / "soak.db", tmp / "service.log"
    # the clock starts once the service is up: a few seconds ahead of now
    wall0 = time.time() + 8.0
    clock = SoakClock(sim0 + timedelta(hours=4), wall0, args.speed)
    dso.clock = clock
    spec = {
        "config": data,
        "dir": str(tmp),
        "db": f"sqlite:///{db}",
        "log": str(log),
        "clock": clock.to_dict(),
        "trace_memory": args.trace_memory,
        "trace_frames": args.trace_frames,
    }
    spec_path = tmp / "spec.json"
    spec_path.write_text(json.dumps(spec))
    child = Child(spec_path, log)
    tasks: list[asyncio.Task[None]] = []
    fleet: StationFleet | None = None
    rows: list[Row] = []
    try:
        ready = await child.read(60.0)
        http = ready["http"]
        dso.fp_url = f"{http}/oscp/fp/2.0"
        fleet = StationFleet(
            f"ws://127.0.0.1:{ready['ocpp']}/ocpp",
            station_specs(data, meter_s),
            clock=clock,
            speed=args.speed,
        )
        await fleet.start()
        booted = await fleet.wait_booted(60)
        print(f"service pid {child.pid}, {booted} stations booted, {len(fleet.stations)} stations")
        # the DSO registers with the site (the site may have registered first)
        for attempt in range(6):
            if dso.registered.is_set():
                break
            try:
                await dso.register(timeout_s=30)
            except (httpx.HTTPError, RuntimeError, TimeoutError) as e:
                print(f"  dso: registering: {type(e).__name__} (attempt {attempt + 1})")
                await asyncio.sleep(2)
        cars = Cars(fleet, [])
        polls = Polls()
        tasks = [
            asyncio.create_task(run_dso(dso, clock, args.connectors * 12.0)),
            asyncio.create_task(run_cars(cars, connector_ids(data), clock, args.days, args.seed)),
            asyncio.create_task(poll_api(http, polls)),
        ]
        deadline = time.time() + 2 * args.days * 86400 / args.speed + 120
        print(Row.HEAD)
        for day in range(1, args.days + 1):
            end = clock.sim0 + DAY * day
            while clock() < end:
                if time.time() > deadline:
                    raise TimeoutError("the soak ran past its wall-time bound")
                for t in tasks:
                    if t.done() and t.exception() is not None:
                        raise RuntimeError("load task failed") from t.exception()
                await asyncio.sleep(min(1.0, max(0.05, clock.wall_at(end) - time.time())))
            inside = await child.ask()
            api_p99, failed = polls.take()
            row = Row(
                day=day,
                rss_mb=rss_mb(child.pid),
                db_mb=db_mb(db),
                fds=open_fds(child.pid),
                replans=int(inside["replans"]),
                replan_p50_ms=float(inside["replan_p50_ms"]),
                replan_p99_ms=float(inside["replan_p99_ms"]),
                api_p99_ms=api_p99,
                api_failures=failed,
                errors=errors_logged(log),
                book_kb=float(inside["book_kb"]),
                py_blocks_k=float(inside["py_blocks_k"]),
                heap_mb=float(inside.get("heap_mb", 0.0)),
                heap_free_mb=float(inside.get("heap_free_mb", 0.0)),
                cars=cars.arrived,
            )
            rows.append(row)
            print(row.line(), flush=True)
            if args.tables:
                print(f"  tables MB: {table_sizes(db)}", flush=True)
            if args.out:
                write_csv(args.out, rows)  # as it goes: a run cut short keeps its days
            if inside["growth"] and (args.trace_memory_every or day == args.days):
                print(f"  allocations grown since day 1 (top {len(inside['growth'])}):")
                for g in inside["growth"]:
                    print(f"    {g}")
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if fleet is not None:
            await fleet.stop()
        child.stop()
        await dso.stop()
        if args.keep_log:
            Path(args.keep_log).write_bytes(log.read_bytes() if log.exists() else b"")
    return rows


def summarize(rows: Sequence[Row]) -> dict[str, float]:
    after_first = rows[1:] if len(rows) > 2 else rows
    return {name: slope([getattr(r, name) for r in after_first]) for name in SLOPED}


def write_csv(path: str, rows: Sequence[Row]) -> None:
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        names = list(Row.__dataclass_fields__)
        w.writerow(names)
        for r in rows:
            w.writerow([getattr(r, n) for n in names])


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--days", type=int, default=30, help="simulated days (1-400)")
    p.add_argument("--connectors", type=int, default=300, help="connectors (2 per station)")
    p.add_argument("--speed", type=float, default=1200.0, help="simulated seconds per second")
    p.add_argument(
        "--meter-interval",
        type=int,
        default=1800,
        help="simulated seconds between meter values (a site uses 60; raised for the speed)",
    )
    p.add_argument(
        "--physics-tick",
        type=float,
        default=300.0,
        help="simulated seconds between two steps of a charging car's physics "
        "(the stations' own is 10; raised for the speed)",
    )
    p.add_argument("--out", help="CSV of the per-day rows")
    p.add_argument("--tables", action="store_true", help="the largest tables every day")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--trace-memory", action="store_true", help="tracemalloc in the service")
    p.add_argument(
        "--trace-frames", type=int, default=12, help="frames kept per allocation (fewer: faster)"
    )
    p.add_argument("--trace-memory-every", action="store_true", help="print the growth every day")
    p.add_argument("--keep-log", help="copy the service's log here at the end")
    p.add_argument("--service", help=argparse.SUPPRESS)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.service:
        service_main(args.service)
        return 0
    if not 1 <= args.days <= 400 or not 2 <= args.connectors <= 4000 or args.speed <= 0:
        print("soak: --days 1-400, --connectors 2-4000, --speed > 0", file=sys.stderr)
        return 2
    wall = args.days * 86400 / args.speed
    print(
        f"soak: {args.days} days, {args.connectors} connectors, x{args.speed:g} "
        f"(a day in {86400 / args.speed:.0f} s, about {wall / 60:.0f} min), "
        f"meter values every {args.meter_interval} simulated s"
    )
    t0 = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="soak-") as tmp:
        rows = asyncio.run(soak(args, Path(tmp)))
    print(f"wall time {time.monotonic() - t0:.0f} s")
    print("slopes per day (least squares over the days after the first):")
    for name, value in summarize(rows).items():
        print(f"  {name:>14}: {value:+.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
