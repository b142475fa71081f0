"""Re-plan latency: a MeterValues frame arrives → the last changed profile is sent.

    .venv/bin/python benchmarks/replan_latency.py [--sizes 50 500 2000] [--events 100]

(sites above 500 connectors get a third as many events; each event waits at
most 10 s, so the run ends by itself; loopback only)

For each site size N: N/2 simulated OCPP 1.6 stations with two three-phase
32 A connectors each, ten panels under one grid limit at half of what every
connector could draw, a car on every connector (96 slots of 15 min). The real
`Service` runs on loopback (ports 0, SQLite in a temporary directory, its
OCPP central system, default controller settings but ``learn_settle_s=0`` so
back-to-back events are learnt from). The stations are real websocket clients
in a process of their own (as real stations are not on the server's event
loop), driven over a pipe. Periodic meter values and heartbeats are set to an
hour and the scheduler is off, so the only traffic is the events below.

Each event is one MeterValues frame that changes what a car takes: its EV's
maximum current drops to 10 A (one untimed reading arms the learner, the timed
one caps the car's rate and hands the capacity to the others), then goes back
to 32 A (the cap is released; the others are lowered before it is raised).

Two speeds, timed at the central system, instrumented from outside (its
source is not changed), from the MeterValues frame reaching its frame handler
(received and read off the websocket):

* fast: to the moment ``ws.send`` of the last SetChargingProfile of the fast
  re-dispatch it caused returned (written to the socket): the car lowered to
  what it takes, that answered, then the freed current raised on another car.
  This is the time until the freed capacity is given out. Counted over the
  events on which the re-dispatch raised a car ("fast n": a car taking less
  frees current; a car taking more again gets what room is left, the rest
  from the full re-plan, as the others must be lowered first).
* full: to the last SetChargingProfile of the full re-plan it caused (every
  event): parsing, storing (SQLite commit), learning, the fast re-dispatch it
  waits for, the coalescing wait, the solve in a worker thread with the warm
  planner, storing the plan and the safe rollout: lowerings sent and answered
  by the stations before the raisings. Only profiles that changed
  meaningfully are sent (hysteresis), so the last one sent is the last
  changed one ("profiles" counts them, the connectors' own TxDefault limits
  included). The re-plan is the first one requested after the frame arrived;
  the stations' fallback limits it raises into the freed capacity can cause
  more ("fallback installed"): "settled p99" runs until the controller is idle
  again, their rollouts included.

"station p99" is the fast re-dispatch seen by the stations: the MeterValues
frame sent → the last SetChargingProfile of it received (both processes read
the same monotonic clock), an upper bound over loopback. "warm solve" is the
controller's solve (`Plan.solve_ms`), "rollout" the full re-plan's rollout.

Reference, measured in the same run after each event (the controller idle):
the cold solve (`optimizer.solve` without the warm planner: a fresh HiGHS
instance) of the problem the controller plans at that moment, `Plan.solve_ms`
as for the warm one, median over the events; "warm<cold" counts the events
whose warm solve was faster than that cold one. It is the cost of planning the
site once from scratch; the ratios show what each speed costs next to it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import functools
import gc
import logging
import multiprocessing
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from gridshare.commands.options import ListOption
from gridshare.config import GridshareConfig, parse_config
from gridshare.controller import SessionState
from gridshare.peers.ev import EvSpec
from gridshare.peers.fleet import StationFleet
from gridshare.peers.specs import SimStationSpec, specs_from_site
from gridshare.rollout import RolloutReport
from gridshare.service import Service, controller_settings
from ocpp_adapter.central_system import CentralSystem, FrameTap
from optimizer import Plan, solve

PANELS = 10
EVENT_TIMEOUT_S = 10.0


def config(n: int, tmp: Path) -> GridshareConfig:
    stations = max(1, n // 2)
    data: dict[str, Any] = {
        "site": {"name": f"bench-{n}", "slot_minutes": 15, "horizon_hours": 24},
        "groups": [
            {"id": "grid", "limit_a": n * 16.0},
            *(
                {"id": f"p{k}", "parent": "grid", "limit_a": n * 32.0 / PANELS * 0.7}
                for k in range(PANELS)
            ),
        ],
        "chargers": [
            {
                "id": f"S{i:04d}",
                "group": f"p{i % PANELS}",
                "connectors": [{"id": k, "max_current_a": 32, "min_current_a": 6} for k in (1, 2)],
            }
            for i in range(stations)
        ],
        "server": {
            "host": "127.0.0.1",
            "ocpp_port": 0,
            "http_port": 0,
            "meter_interval_s": 3600,
            "heartbeat_interval_s": 3600,
        },
    }
    return parse_config(data, "bench.toml", tmp / f"bench-{n}.toml", environ={})


@dataclass
class Probe:
    """Timestamps (``perf_counter``) of frames at the central system and the stations."""

    watch: str | None = None
    """Station whose next MeterValues is the timed one."""
    arrived: float | None = None
    mv_sent: float | None = None
    server_sent: list[float] = field(default_factory=list)
    """Each SetChargingProfile written to a station's socket."""
    station_received: list[float] = field(default_factory=list)

    def arm(self, station_id: str) -> None:
        self.watch, self.arrived, self.mv_sent = station_id, None, None
        self.server_sent.clear()
        self.station_received.clear()


def is_call(frame: Any, action: str) -> bool:
    return isinstance(frame, str) and frame.startswith("[2,") and f'"{action}"' in frame[:80]


def server_tap(probe: Probe) -> FrameTap:
    """The central system's frames: when the timed MeterValues arrived, when
    each SetChargingProfile was written."""

    def tap(station_id: str, direction: str, frame: str | bytes) -> None:
        if direction == "in":
            if probe.watch == station_id and is_call(frame, "MeterValues"):
                probe.arrived = time.perf_counter()
        elif is_call(frame, "SetChargingProfile"):
            probe.server_sent.append(time.perf_counter())

    return tap


def station_tap(probe: Probe) -> FrameTap:
    """The stations' frames: when the timed MeterValues was written, when each
    SetChargingProfile was read."""

    def tap(station_id: str, direction: str, frame: str | bytes) -> None:
        if direction == "in":
            if is_call(frame, "SetChargingProfile"):
                probe.station_received.append(time.perf_counter())
        elif probe.watch == station_id and is_call(frame, "MeterValues"):
            probe.mv_sent = time.perf_counter()

    return tap


# --- the stations, in a process of their own ----------------------------------------


def fleet_process(url: str, specs: list[SimStationSpec], conn: Connection) -> None:
    """Runs the fleet; answers the benchmark's requests over ``conn``."""
    logging.basicConfig(level=logging.ERROR)
    asyncio.run(_serve_fleet(url, specs, conn))


async def _serve_fleet(url: str, specs: list[SimStationSpec], conn: Connection) -> None:
    fleet = StationFleet(url, specs, call_timeout_s=60, connect_concurrency=50)
    probe = Probe()
    fleet.frame_taps.append(station_tap(probe))
    loop = asyncio.get_running_loop()
    requests: asyncio.Queue[tuple[Any, ...]] = asyncio.Queue()
    loop.add_reader(conn.fileno(), lambda: requests.put_nowait(conn.recv()))
    await fleet.start()
    try:
        while True:
            cmd, *args = await requests.get()
            reply: Any = None
            if cmd == "stop":
                break
            if cmd == "boot":
                reply = await fleet.wait_booted(args[0])
            elif cmd == "plug_all":
                for cid in args[0]:
                    fleet.plug_in(cid, args[1])
            elif cmd == "tx_ready":
                reply = all(fleet.transaction_id(cid) for cid in args[0])
            elif cmd == "set_ev":
                fleet.set_ev_max_current(args[0], args[1])
            elif cmd == "meter":
                fleet.send_meter_values_now(args[0])
            elif cmd == "timed_meter":
                probe.arm(args[0].rsplit("/", 1)[0])
                fleet.send_meter_values_now(args[0])
            elif cmd == "probe":
                probe.watch = None
                reply = (probe.mv_sent, list(probe.station_received))
            conn.send(reply)
    finally:
        loop.remove_reader(conn.fileno())
        await fleet.stop()
        conn.send(None)


class Stations:
    """The benchmark's end of the fleet process."""

    def __init__(self, url: str, specs: list[SimStationSpec]) -> None:
        ctx = multiprocessing.get_context("spawn")
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=fleet_process, args=(url, specs, child), daemon=True)
        self.proc.start()
        child.close()

    async def call(self, *request: Any, timeout_s: float = 600) -> Any:
        loop = asyncio.get_running_loop()
        answer: asyncio.Future[Any] = loop.create_future()

        def readable() -> None:
            if answer.done():
                return
            try:
                answer.set_result(self.conn.recv())
            except (EOFError, OSError):
                answer.set_exception(RuntimeError("the stations' process ended"))

        self.conn.send(request)
        loop.add_reader(self.conn.fileno(), readable)
        try:
            return await asyncio.wait_for(answer, timeout_s)
        finally:
            loop.remove_reader(self.conn.fileno())

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await self.call("stop", timeout_s=30)
        self.proc.join(10)
        if self.proc.is_alive():
            self.proc.terminate()
            self.proc.join(5)
        self.conn.close()


async def until(cond: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not cond():
        if time.monotonic() > deadline:
            raise TimeoutError(what)
        await asyncio.sleep(0.002)


def armed(session: SessionState) -> bool:
    """The learner has counted one low reading of the car."""
    return session.rate.low_readings >= 1


Rollout = tuple[float | None, Plan, RolloutReport, float]
"""(``perf_counter`` of the request behind the plan, plan, report, rolled out at)."""


def first_since(reports: list[Rollout], first: int, t: float) -> Rollout | None:
    """The first plan requested at or after ``t`` that has been rolled out."""
    return next((r for r in reports[first:] if r[0] is not None and r[0] >= t), None)


def rolled_out(reports: list[Rollout], first: int, t: float) -> bool:
    return first_since(reports, first, t) is not None


FastRun = tuple[float | None, RolloutReport, float]
"""(``perf_counter`` of the request behind it, its rollout, rolled out at)."""


def first_fast(runs: list[FastRun], first: int, t: float) -> FastRun | None:
    """The first fast re-dispatch requested at or after ``t``."""
    return next((r for r in runs[first:] if r[0] is not None and r[0] >= t), None)


@dataclass
class Result:
    n: int
    fast_ms: list[float]
    """Frame → last profile of the fast re-dispatch, for events it gave capacity out on."""
    fast_station_ms: list[float]
    fast_profiles: list[int]
    latencies_ms: list[float]
    settled_ms: list[float]
    station_ms: list[float]
    profiles: list[int]
    solve_ms: list[float]
    rollout_ms: list[float]
    """The full re-plan's rollout: lowerings answered, then raisings."""
    cold_ms: float
    warm_faster: int
    """Events whose warm solve was faster than the cold one after it."""
    missed: int


async def run(n: int, events: int, tmp: Path) -> Result:
    cfg = config(n, tmp)
    settings = dataclasses.replace(controller_settings(cfg), learn_settle_s=0.0)
    svc = Service(cfg, db=str(tmp / f"bench-{n}.db"), scheduler=False, settings=settings)
    await svc.start()
    probe = Probe()
    assert svc.gateway is not None and svc.controller is not None
    cs = svc.gateway
    assert isinstance(cs, CentralSystem)
    ctl = svc.controller
    cs.add_frame_tap(server_tap(probe))
    reports: list[Rollout] = []
    fast_runs: list[FastRun] = []
    ctl.fast.on_done.append(
        lambda asked, report: fast_runs.append((asked, report, time.perf_counter()))
    )
    ctl.on_plan.append(
        lambda plan, report: reports.append(
            (ctl.plan_requested_at, plan, report, time.perf_counter())
        )
    )
    specs = specs_from_site(cfg.site, meter_interval_s=3600)
    cids = [f"{s.id}/{c.id}" for s in specs for c in s.connectors]
    stations = Stations(f"ws://127.0.0.1:{svc.ocpp_port}/ocpp", specs)
    try:
        booted = await stations.call("boot", 300)
        if booted != len(specs):
            raise RuntimeError(f"{booted} of {len(specs)} stations booted")
        await stations.call("plug_all", cids, EvSpec(battery_kwh=200, soc_start=0.1, lag_s=0.0))
        await until(lambda: len(ctl.sessions) == len(cids), 300, "sessions started")
        deadline = time.monotonic() + 300
        while not await stations.call("tx_ready", cids):
            if time.monotonic() > deadline:
                raise TimeoutError("transaction ids")
            await asyncio.sleep(0.1)
        # quiet: fallbacks installed, every car planned, nothing in flight
        quiet_since = time.monotonic()
        seen = len(reports)
        while time.monotonic() - quiet_since < 1.0:
            await asyncio.sleep(0.05)
            if ctl.busy() or len(reports) != seen:
                seen, quiet_since = len(reports), time.monotonic()
        await ctl.replan_now("periodic")  # warm the planner

        fast: list[float] = []
        fast_station: list[float] = []
        fast_profiles: list[int] = []
        latencies: list[float] = []
        settled: list[float] = []
        station: list[float] = []
        profiles: list[int] = []
        solves: list[float] = []
        rollouts: list[float] = []
        cold: list[float] = []
        missed = 0
        for e in range(events):
            cid = cids[(e // 2 * 7) % len(cids)]
            sid, low = cid.rsplit("/", 1)[0], e % 2 == 0
            session = ctl.sessions[cid]
            await stations.call("set_ev", cid, 10.0 if low else 32.0)
            if low:  # the first low reading only arms the learner
                await stations.call("meter", cid)
                await until(functools.partial(armed, session), 5, "arming reading")
            while ctl.busy():
                await asyncio.sleep(0.005)
            before, fast_before = len(reports), len(fast_runs)
            probe.arm(sid)
            await stations.call("timed_meter", cid)
            try:
                await until(lambda: probe.arrived is not None, EVENT_TIMEOUT_S, "arrival")
                arrived = probe.arrived
                assert arrived is not None
                await until(
                    functools.partial(rolled_out, reports, before, arrived),
                    EVENT_TIMEOUT_S,
                    "re-plan",
                )
                await until(lambda: not ctl.busy(), EVENT_TIMEOUT_S, "rollout")
            except TimeoutError as exc:
                logging.warning("event %d on %s: no %s", e, cid, exc)
                missed += 1
                continue
            finally:
                probe.watch = None
            await asyncio.sleep(0.01)  # the last answers reach the stations' probe
            received = await stations.call("probe")
            rollout = first_since(reports, before, arrived)
            assert rollout is not None
            done = rollout[3]
            # that re-plan's rollout; later ones (e.g. stations' fallback limits
            # raised into the freed capacity) count in "settled" only
            sent = [t for t in probe.server_sent if arrived <= t <= done]
            if not sent:
                missed += 1
                continue
            latencies.append((max(sent) - arrived) * 1000.0)
            settled.append((max(probe.server_sent) - arrived) * 1000.0)
            mv_sent, got = received
            got = [t for t in got if t <= done]
            if mv_sent is not None and got:
                station.append((max(got) - mv_sent) * 1000.0)
            profiles.append(len(sent))
            solves.append(rollout[1].solve_ms)
            rollouts.append((rollout[2].finished - rollout[2].started) * 1000.0)
            quick = first_fast(fast_runs, fast_before, arrived)
            if quick is not None and quick[1].raised:  # it gave freed capacity out
                quick_sent = [t for t in probe.server_sent if arrived <= t <= quick[2]]
                fast.append((max(quick_sent) - arrived) * 1000.0)
                fast_profiles.append(len(quick_sent))
                quick_got = [t for t in got if t <= quick[2]]
                if mv_sent is not None and quick_got:
                    fast_station.append((max(quick_got) - mv_sent) * 1000.0)
            # reference: the cold solve of the LP the controller plans now
            problem, _ = ctl.problem(ctl.clock(), steady=True)
            cold.append(solve(problem, time_limit_s=settings.solve_time_limit_s).solve_ms)

        return Result(
            n,
            fast,
            fast_station,
            fast_profiles,
            latencies,
            settled,
            station,
            profiles,
            solves,
            rollouts,
            statistics.median(cold or [float("nan")]),
            sum(w < c for w, c in zip(solves, cold, strict=True)),
            missed,
        )
    finally:
        await stations.close()
        await svc.stop()


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    v = sorted(values)
    return v[min(len(v) - 1, round(q * (len(v) - 1)))]


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--sizes", type=int, action=ListOption, default=[50, 500, 2000])
    ap.add_argument("--events", type=int, default=100, help="timed meter values per size")
    return ap


def main() -> None:
    args = parser().parse_args()
    logging.basicConfig(level=logging.ERROR)
    header = (
        f"{'connectors':>10} {'events':>6} | {'fast n':>6} {'p50 ms':>7} {'p99 ms':>7} "
        f"{'station p99':>11} {'profiles':>8} | {'full p50':>8} {'p99 ms':>7} {'max ms':>7} "
        f"{'settled p99':>11} {'profiles':>8} {'rollout':>7} | {'warm solve':>10} "
        f"{'cold solve':>10} {'warm<cold':>9} "
        f"{'fast p99/cold':>13} {'full p99/cold':>13}"
    )
    with tempfile.TemporaryDirectory() as tmp:
        for k, n in enumerate(args.sizes):
            events = args.events if n <= 500 else max(10, args.events // 3)
            r = asyncio.run(run(n, events, Path(tmp)))
            gc.collect()
            lat, quick = r.latencies_ms, r.fast_ms
            if k == 0:  # after the solver's banner
                print(header)
            print(
                f"{n:>10} {len(lat):>6} | {len(quick):>6} {pct(quick, 0.5):>7.1f} "
                f"{pct(quick, 0.99):>7.1f} {pct(r.fast_station_ms, 0.99):>11.1f} "
                f"{statistics.median(r.fast_profiles or [0]):>8.0f} | "
                f"{pct(lat, 0.5):>8.1f} {pct(lat, 0.99):>7.1f} "
                f"{max(lat, default=float('nan')):>7.1f} {pct(r.settled_ms, 0.99):>11.1f} "
                f"{statistics.median(r.profiles or [0]):>8.0f} "
                f"{statistics.median(r.rollout_ms or [float('nan')]):>7.1f} | "
                f"{statistics.median(r.solve_ms or [float('nan')]):>10.1f} "
                f"{r.cold_ms:>10.1f} {f'{r.warm_faster}/{len(r.solve_ms)}':>9} "
                f"{pct(quick, 0.99) / r.cold_ms:>13.2f} "
                f"{pct(lat, 0.99) / r.cold_ms:>13.2f}"
                + (f"  ({r.missed} events without a re-plan)" if r.missed else ""),
                flush=True,
            )
    print(
        "ms. fast: MeterValues frame at the central system → last SetChargingProfile of the "
        "fast re-dispatch it caused written, over the events on which that re-dispatch gave "
        "current out (fast n); station: the same seen by the stations. "
        "full: → last SetChargingProfile of the full re-plan it caused written (every event); "
        "settled: → last SetChargingProfile before the controller is idle again; "
        "profiles: per event (median); rollout: the full re-plan's, lowerings answered then "
        "raisings (median); warm solve: the controller's (median); cold solve: the same "
        "problem on a fresh HiGHS instance after each event (median: the reference); "
        "warm<cold: the events whose warm solve was faster than that cold one."
    )


if __name__ == "__main__":
    main()
