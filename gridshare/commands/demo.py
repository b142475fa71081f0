"""``gridshare demo``: the service on a depot, with cars arriving and a DSO's evening cut.

    gridshare demo [--config examples/depot.toml] [--speed 120] [--duration 60]

Starts the service on the site (SQLite in a temporary folder), stations with
cars that arrive over time, and a simulated DSO that lowers the grid
connection's capacity for an evening peak. Time runs ``--speed`` times faster
than real time; the demo stops by itself after ``--duration`` real seconds, or
at Ctrl-C. A live view (off a terminal: a line every 10 s) shows, per group
and line, the capacity against the sum of limits in force and the current
measured, per connector the limit, draw and energy. At the end it prints a
summary and writes a plot (PNG).

The stations are simulated OCPP clients (half of them 1.6J, half 2.0.1) that
connect to the service's central system over WebSockets on loopback and obey
the limit in force as a station computes it from its charging profiles; the
DSO speaks OSCP 2.0 over HTTP. Everything a site would run, on one machine.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import logging
import math
import random
import secrets
import signal
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from gridshare.commands.demo_building import DemoBuilding, with_meter
from gridshare.commands.demo_view import EveningCut, Sample, connector_page, lines_of, plot
from gridshare.commands.options import command_parser, positive
from gridshare.config import (
    ConfigError,
    GridshareConfig,
    OscpConfig,
    OscpProviderConfig,
    load_config,
)
from gridshare.logs import configure_logging
from gridshare.peers.dso import SimulatedDso
from gridshare.peers.ev import EvSpec
from gridshare.peers.fleet import StationFleet
from gridshare.peers.specs import SimStationSpec, specs_from_site
from gridshare.service import Service
from optimizer.problem import TimeGrid
from optimizer.site import LINES, Site, station_of

METER_INTERVAL_S = 60
"""Simulated seconds between two meter values of a connector."""


@dataclass(frozen=True)
class Arrival:
    connector_id: str
    ev: EvSpec
    arrives: datetime
    departs: datetime
    id_tag: str


@dataclass
class Cars:
    """Plugs the cars in and out of the simulated stations on schedule."""

    fleet: StationFleet
    pending: list[Arrival]
    plugged: dict[str, tuple[Arrival, float]] = field(default_factory=dict)
    """Connector → (its car, the register when it plugged in)."""
    finished_wh: float = 0.0
    arrived: int = 0

    def tick(self, now: datetime) -> None:
        for cid, (car, wh0) in list(self.plugged.items()):
            if now >= car.departs:
                self.finished_wh += self.fleet.energy_wh(cid) - wh0
                self.fleet.unplug(cid)
                del self.plugged[cid]
        while self.pending and self.pending[0].arrives <= now:
            car = self.pending.pop(0)
            if car.connector_id in self.plugged:
                continue
            self.plugged[car.connector_id] = (car, self.fleet.energy_wh(car.connector_id))
            self.fleet.plug_in(
                car.connector_id,
                car.ev,
                departure=car.departs,
                energy_wh=car.ev.battery_kwh * (car.ev.soc_target - car.ev.soc_start) * 1000,
                id_tag=car.id_tag,
            )
            self.arrived += 1

    def session_wh(self, cid: str) -> float:
        return self.fleet.energy_wh(cid) - self.plugged[cid][1]

    def delivered_kwh(self) -> float:
        return (self.finished_wh + sum(self.session_wh(c) for c in self.plugged)) / 1000


def make_cars(site: Site, start: datetime, span: timedelta, seed: int) -> list[Arrival]:
    rng = random.Random(seed)
    out = []
    for k, (cid, info) in enumerate(site.connectors.items()):
        bus = info.max_current_a >= 32 and len(info.lines) == 3
        arrives = start + span * 0.45 * rng.random()
        ev = EvSpec(
            battery_kwh=rng.choice([120.0, 200.0]) if bus else rng.choice([50.0, 75.0]),
            soc_start=rng.uniform(0.15, 0.6),
            max_current_a=32.0 if bus else rng.choice([16.0, 32.0]),
            phases=1 if (not bus and rng.random() < 0.3) else 3,
        )
        departs = arrives + timedelta(hours=rng.uniform(3.0, 10.0))
        out.append(Arrival(cid, ev, arrives, departs, f"fleet-{k:02d}"))
    return sorted(out, key=lambda a: a.arrives)


def station_specs(site: Site) -> list[SimStationSpec]:
    """One simulated station per charger, alternating OCPP 1.6J and 2.0.1."""
    specs = specs_from_site(site, meter_interval_s=METER_INTERVAL_S)
    return [
        dataclasses.replace(spec, version="2.0.1" if k % 2 else "1.6")
        for k, spec in enumerate(specs)
    ]


def car_lines(site: Site, cars: Cars, cid: str) -> tuple[str, ...]:
    """The site lines a connector's limit loads: all it is wired to, or only
    those a plugged-in one-phase car uses."""
    lines = tuple(x.value for x in site.connectors[cid].lines)
    plugged = cars.plugged.get(cid)
    return lines[: plugged[0].ev.phases] if plugged else lines


def sample(service: Service, cars: Cars, now: datetime) -> Sample:
    site = service.config.site
    ctl = service.controller
    assert ctl is not None
    grid = TimeGrid.covering(now, site.site.slot_minutes, 1)
    cap = ctl.capacity(grid, now)
    capacity = {g.id: float(cap.limit_a[g.id][0]) for g in site.groups if g.id in cap.limit_a}
    limits = {g.id: dict.fromkeys((x.value for x in LINES), 0.0) for g in site.groups}
    measured = {g.id: dict.fromkeys((x.value for x in LINES), 0.0) for g in site.groups}
    fleet = cars.fleet
    for cid, info in site.connectors.items():
        # every connector counts, idle ones too: a car may plug in at any moment
        limit = fleet.limit_in_force(cid)
        wired = tuple(x.value for x in info.lines)
        drawn = fleet.draw(cid)
        for gid in info.ancestors:
            for name in car_lines(site, cars, cid):
                limits[gid][name] += limit
            for k, name in enumerate(wired):
                measured[gid][name] += drawn.get(f"L{k + 1}", 0.0)
    return Sample(now, capacity, limits, measured)


def sample_at_once(service: Service, cars: Cars, clock: Callable[[], datetime]) -> Sample | None:
    """A sample whose limits were all read within the slot its capacity is for.

    Stations read the (fast) clock themselves: reading 20 of them takes long
    enough in simulated time to straddle a slot boundary, where the limits and
    the capacity would belong to different slots."""
    minutes = service.config.site.site.slot_minutes
    now = clock()
    s = sample(service, cars, now)
    later = clock()
    same = TimeGrid.covering(now, minutes, 1).start == TimeGrid.covering(later, minutes, 1).start
    return s if same else None


CONNECTORS_LEGEND = (
    "limit: what the station enforces now; planned: the plan's current. They differ "
    "for a moment as a plan is rolled out (lowerings first, raisings once those are "
    "accepted; changes under 1 A are not sent); a car follows a lowered limit within "
    "seconds, so its draw may still be above it."
)
GROUPS_LEGEND = (
    "limits in force: the sum of every connector's limit, idle ones too (a car may "
    "plug in and draw it before a plan reaches its station)."
)


def render(
    service: Service, cars: Cars, s: Sample, speed: float, size: tuple[int, int] = (120, 50)
) -> Any:
    """The live view, fitted to a terminal of ``size`` (columns, lines): compact
    tables, and the connectors a page at a time when they do not all fit."""
    from rich import box
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    ctl = service.controller
    assert ctl is not None
    width, height = size

    def compact(**kw: Any) -> Table:
        return Table(box=box.SIMPLE_HEAD, padding=(0, 1), pad_edge=False, show_edge=False, **kw)

    groups = compact(title=f"gridshare demo - {s.at:%H:%M} UTC (×{speed:g})")
    for col in ("group", "capacity A", "limits in force L1/L2/L3", "measured L1/L2/L3"):
        groups.add_column(col)
    for gid, cap in s.capacity.items():
        lim = s.limits[gid]
        worst = max(lim.values())
        style = "red" if worst > cap + 1e-6 else None
        groups.add_row(
            gid,
            f"{cap:.0f}",
            "/".join(f"{v:.0f}" for v in lim.values()),
            "/".join(f"{v:.0f}" for v in s.measured[gid].values()),
            style=style,
        )
    plan = ctl.plan
    fleet = cars.fleet
    status = plan.status.value if plan is not None else "-"
    footer = Text(
        f"{'DSO over OSCP · ' if service.oscp else ''}plans {ctl.plans}, last {status} "
        f"in {plan.solve_ms if plan else 0:.0f} ms · OCPP calls {fleet.stats.calls_received}",
        no_wrap=True,
        overflow="ellipsis",
    )
    meters = service.meters.view(s.at)["groups"] if service.meters is not None else []
    building = [
        Text(
            f"{g['id']}: building {'/'.join(f'{a:.0f}' for a in g['non_ev_a'].values())} A, "
            f"headroom {'/'.join(f'{a:.0f}' for a in g['headroom_a'].values() if a is not None)}"
            f" A{' (meter stale: at its worst case)' if g['blind'] else ''}",
            no_wrap=True,
        )
        for g in meters
    ]
    top = Group(groups, *building, Text(GROUPS_LEGEND, style="dim"))
    bottom = Group(Text(CONNECTORS_LEGEND, style="dim"), footer)
    # the connectors' header, its rule and caption, and the line Live keeps below
    room = height - lines_of(top, width) - lines_of(bottom, width) - 4
    shown, caption = connector_page(sorted(cars.plugged), room, time.monotonic())
    conns = compact(caption=caption)
    for col in ("connector", "OCPP", "limit A", "planned A", "draw A", "kWh", "SoC %", "departs"):
        conns.add_column(col)
    for cid in shown:
        car, _ = cars.plugged[cid]
        planned = plan.now_a(cid) if plan is not None and cid in plan.connector_ids else 0.0
        soc = fleet.soc(cid)
        conns.add_row(
            cid,
            fleet.station(station_of(cid)).spec.version,
            f"{fleet.limit_in_force(cid):.1f}",
            f"{planned:.1f}",
            f"{max(fleet.draw(cid).values(), default=0.0):.1f}",
            f"{cars.session_wh(cid) / 1000:.1f}",
            f"{soc * 100:.0f}" if soc is not None else "-",
            f"{car.departs:%H:%M}",
        )
    return Group(top, conns, bottom)


async def start_dso(
    config: GridshareConfig, clock: Callable[[], datetime], out: Callable[[str], None]
) -> tuple[GridshareConfig, SimulatedDso]:
    """A simulated DSO on a loopback port, and the site configured to trust it."""
    to_us, to_them = secrets.token_urlsafe(24), secrets.token_urlsafe(24)
    dso = SimulatedDso(token_to_fp=to_us, clock=clock, out=out)
    await dso.start()
    dso.accepted_tokens.add(to_them)
    site_data = config.site.model_dump()
    root = config.site.root
    for g in site_data["groups"]:
        if g["id"] == root.id and not g.get("oscp_group_id"):
            g["oscp_group_id"] = root.id
    provider = OscpProviderConfig(
        id="demo-dso",
        base_url=dso.base_url,
        token_to_us=SecretStr(to_us),
        token_to_them=SecretStr(to_them),
        heartbeat_interval_s=3600,
    )
    cfg = config.model_copy(
        update={
            "site": Site.model_validate(site_data),
            "oscp": OscpConfig(capacity_providers=[provider]),
        }
    )
    return cfg, dso


async def send_cut(dso: SimulatedDso, group_id: str, cut: EveningCut, site: Site) -> None:
    from forecasts.model import Block, ForecastType, Phase, Unit

    base = site.root.limit_a or cut.limit_a
    blocks = [
        Block(base, Unit.A, Phase.ALL, cut.start - timedelta(hours=2), cut.start),
        Block(cut.limit_a, Unit.A, Phase.ALL, cut.start, cut.end),
        Block(base, Unit.A, Phase.ALL, cut.end, cut.end + timedelta(hours=24)),
    ]
    await dso.send_forecast(group_id, ForecastType.CONSUMPTION, blocks)


def parser() -> argparse.ArgumentParser:
    p = command_parser("demo", __doc__)
    p.add_argument("--config", default="examples/depot.toml", help="site TOML")
    p.add_argument("--speed", type=positive, default=120.0, help="simulated seconds per second")
    p.add_argument("--duration", type=positive, default=60.0, help="real seconds to run")
    p.add_argument("--out", default="out", help="folder for the plot")
    p.add_argument("--db", help="database URL or SQLite path (default: a temporary SQLite file)")
    p.add_argument("--seed", type=int, default=7, help="random draw of the cars")
    p.add_argument("--no-live", action="store_true", help="no live view (e.g. in CI)")
    return p


class DemoClock:
    """Simulated UTC time from 16:30 today, ``speed`` times faster than real time."""

    def __init__(self, speed: float) -> None:
        self.speed = speed
        self.real0 = time.monotonic()
        self.sim0 = datetime.now(UTC).replace(hour=16, minute=30, second=0, microsecond=0)

    def __call__(self) -> datetime:
        return self.sim0 + timedelta(seconds=(time.monotonic() - self.real0) * self.speed)

    def real_s(self) -> float:
        """Real seconds since the start."""
        return time.monotonic() - self.real0


def evening_cut(site: Site, sim0: datetime, span: timedelta) -> EveningCut:
    """Half the grid connection's limit, from 30 % to 75 % of the run.

    The cut starts and ends on slot boundaries after the DSO announces it: a
    forecast for a slot already running would lower the capacity before any
    station could be told, and that is not what an evening peak cut looks like."""
    root = site.root
    slot_len = timedelta(minutes=site.site.slot_minutes)

    def next_boundary(t: datetime) -> datetime:
        return sim0 + slot_len * math.ceil((t - sim0) / slot_len)

    return EveningCut(
        root.id,
        (root.limit_a or 400.0) * 0.5,
        next_boundary(sim0 + max(span * 0.3, slot_len)),
        next_boundary(sim0 + span * 0.75),
    )


def demo_config(config: GridshareConfig, speed: float) -> GridshareConfig:
    """The site's configuration on free loopback ports, re-planning as time runs."""
    server = config.server.model_copy(
        update={"http_port": 0, "ocpp_port": 0, "meter_interval_s": METER_INTERVAL_S}
    )
    controller = config.controller.model_copy(update={"replan_interval_s": max(0.5, 60.0 / speed)})
    # the dashboard on this machine reads without a token, as the demo always did
    api = config.api.model_copy(update={"open_reads_on_loopback": True})
    return config.model_copy(update={"server": server, "controller": controller, "api": api})


@dataclass
class DemoSite:
    """What the demo runs: the service, its stations and the DSO."""

    service: Service
    fleet: StationFleet
    dso: SimulatedDso
    ocpp_url: str
    dso_lines: list[str]
    """What the DSO printed."""
    building: DemoBuilding | None = None

    async def stop(self) -> None:
        if self.building is not None:
            await self.building.stop_feeding()
        await self.fleet.stop()
        await self.service.stop()
        await self.dso.stop()
        if self.building is not None:
            await self.building.stop()


async def start_site(
    config: GridshareConfig, db: str, clock: DemoClock, cut: EveningCut, duration_s: float
) -> DemoSite:
    """The service, the DSO announcing the cut, and the stations booted; on a
    failure, whatever started is stopped."""
    dso_lines: list[str] = []
    cfg, dso = await start_dso(config, clock, dso_lines.append)
    building = await DemoBuilding.start(config.site, duration_s)
    cfg = with_meter(cfg, building.meter.port, clock.speed)
    service = Service(
        cfg,
        db=db,
        clock=clock,
        scheduler=False,
        # a report of the site's energy each slot of simulated time, as a DSO
        # would get one every 15 minutes, not once a real minute
        oscp_measurement_interval_s=config.site.site.slot_minutes * 60 / clock.speed,
    )
    fleet: StationFleet | None = None
    try:
        await service.start()
        # the DSO announces the evening cut ahead of time, over OSCP
        dso.fp_url = f"{service.http_url}/oscp/fp/2.0"
        await send_cut(dso, cfg.site.root.oscp_group_id or cfg.site.root.id, cut, config.site)
        url = f"ws://{cfg.server.host}:{service.ocpp_port}/ocpp"
        fleet = StationFleet(url, station_specs(config.site), clock=clock, speed=clock.speed)
        await fleet.start()
        await fleet.wait_booted(10)
        hub = service.meters
        building.follow(fleet, clock, clock.real0, lambda: len(hub.lowerings) if hub else 0)
    except BaseException:
        if fleet is not None:
            await fleet.stop()
        await service.stop()
        await dso.stop()
        await building.stop()
        raise
    return DemoSite(service, fleet, dso, url, dso_lines, building)


PROGRESS_S = 10.0
"""Real seconds between two progress lines when there is no live view."""


def progress_line(run: DemoSite, cars: Cars, clock: DemoClock, duration_s: float) -> str:
    """Where the demo is, in one line (off a terminal, instead of the live view)."""
    ctl = run.service.controller
    assert ctl is not None
    return (
        f"[demo] {clock.real_s():.0f} of {duration_s:g} s · simulated {clock():%H:%M} UTC · "
        f"{len(cars.plugged)} cars plugged in · "
        f"{cars.delivered_kwh():.1f} kWh delivered · {ctl.plans} plans"
    )


async def drive(
    run: DemoSite,
    cars: Cars,
    cut: EveningCut,
    clock: DemoClock,
    duration_s: float,
    live: Any,
    stop: asyncio.Event | None = None,
) -> list[Sample]:
    """Cars in and out, a re-plan at each slot boundary and at the cut's edges,
    and a sample (shown live) every tick, for ``duration_s`` real seconds or
    until ``stop`` is set (Ctrl-C). Without a live view, a progress line every
    `PROGRESS_S` seconds."""
    service = run.service
    slot_minutes = service.config.site.site.slot_minutes
    samples: list[Sample] = []
    tick_s = 0.25
    last_slot: datetime | None = None
    was_cut = False
    said = -PROGRESS_S  # a first line at once
    while clock.real_s() < duration_s and not (stop is not None and stop.is_set()):
        if live is None and clock.real_s() - said >= PROGRESS_S:
            said = clock.real_s()
            print(progress_line(run, cars, clock, duration_s), flush=True)
        await asyncio.sleep(tick_s)
        now = clock()
        cars.tick(now)
        ctl = service.controller
        assert ctl is not None
        slot = TimeGrid.covering(now, slot_minutes, 1).start
        in_cut = cut.start <= now < cut.end
        if slot != last_slot or in_cut != was_cut:
            ctl.request_replan("slot boundary" if in_cut == was_cut else "dso forecast")
            last_slot, was_cut = slot, in_cut
        s = sample_at_once(service, cars, clock)
        if s is None:
            continue
        samples.append(s)
        if live is not None:
            size = live.console.size
            live.update(render(service, cars, s, clock.speed, (size.width, size.height)))
    return samples


def dso_summary(dso: SimulatedDso, delivered_kwh: float) -> str:
    """What the simulated DSO received, in a sentence: the forecasts it sent, and
    the site's energy reports (cumulative import, or per interval)."""
    got = [r for r in dso.received if r.message == "update_group_measurements"]
    beats = sum(1 for r in dso.received if r.message == "heartbeat")
    head = f"DSO (simulated, OSCP): sent the evening cut as a forecast; got {beats} heartbeat(s)"
    if not got:
        return head + " and no energy report yet (one goes out each slot of simulated time)."
    last = got[-1]
    m = (last.body.get("measurements") or [{}])[-1]
    value = float(m.get("value", 0.0))
    at = datetime.fromisoformat(str(m.get("measure_time")).replace("Z", "+00:00"))
    if m.get("initial_measure_time"):
        since = datetime.fromisoformat(str(m["initial_measure_time"]).replace("Z", "+00:00"))
        what = (
            f"the last one {value:.1f} kWh imported from {since:%H:%M} to {at:%H:%M} UTC "
            "(each report is one interval's energy, not the total)"
        )
    else:
        what = (
            f"the last one {value:.1f} kWh imported in all by {at:%H:%M} UTC "
            f"(the cars' {delivered_kwh:.1f} kWh include what was metered after it)"
        )
    return f"{head} and {len(got)} energy report(s) of the site, {what}."


def report(
    console: Any,
    run: DemoSite,
    cars: Cars,
    samples: list[Sample],
    cut: EveningCut,
    *,
    sim0: datetime,
    duration_s: float,
    n_cars: int,
    delivered_kwh: float,
    png: Path,
) -> int:
    """Print the summary; 0 if the limits in force never exceeded the capacity."""
    excess = max(
        (max(s.limits[g].values()) - s.capacity[g] for s in samples for g in s.capacity),
        default=0.0,
    )
    ctl = run.service.controller
    assert ctl is not None
    simulated = timedelta(seconds=round((samples[-1].at - sim0).total_seconds())) if samples else 0
    console.print(
        f"[bold]gridshare demo[/bold]: {simulated} simulated in {duration_s:g} s; "
        f"{len(run.fleet.stations)} stations over OCPP, cars {cars.arrived} of {n_cars}, "
        f"energy {delivered_kwh:.1f} kWh, plans {ctl.plans}, "
        f"OCPP calls to stations {run.fleet.stats.calls_received}"
    )
    console.print(
        f"largest excess of limits in force over capacity: {max(0.0, excess):.1f} A "
        f"(DSO cut to {cut.limit_a:.0f} A from {cut.start:%H:%M} to {cut.end:%H:%M} UTC)"
    )
    console.print(dso_summary(run.dso, delivered_kwh))
    if run.building is not None:
        console.print(run.building.summary())
    console.print(f"plot: {png}")
    over = [
        (s.at, g)
        for s in samples
        for g in s.capacity
        if max(s.limits[g].values()) > s.capacity[g] + 1e-6
    ]
    for at, g in over[:5]:
        console.print(f"  over capacity at {at:%H:%M:%S} in {g}")
    return 0 if excess <= 1e-6 else 1


async def run_demo(config: GridshareConfig, args: argparse.Namespace, db: str) -> int:
    from rich.console import Console
    from rich.live import Live

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)  # before the run, not after it
    console = Console()
    # off a terminal (a log, a pipe) a line is not cut at 80 columns
    console.soft_wrap = not console.is_terminal
    site = config.site
    clock = DemoClock(max(args.speed, 1e-3))
    span = timedelta(seconds=args.duration * clock.speed)
    cut = evening_cut(site, clock.sim0, span)
    run = await start_site(demo_config(config, clock.speed), db, clock, cut, args.duration)
    console.print(
        f"dashboard {run.service.http_url}/ · OCPP {run.ocpp_url} · "
        f"{len(run.fleet.stations)} stations"
    )
    cars = Cars(run.fleet, make_cars(site, clock.sim0, span, args.seed))
    if run.building is not None:  # counted as the planner counts them
        run.building.lines_of = lambda cid: car_lines(site, cars, cid)
    n_cars = len(cars.pending)
    live_ctx: Any = (
        Live(console=console, refresh_per_second=4, transient=False)
        if not args.no_live and console.is_terminal
        else contextlib.nullcontext()
    )
    stop = asyncio.Event()  # Ctrl-C: stop early, with the summary and the plot
    loop = asyncio.get_running_loop()
    with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
        loop.add_signal_handler(signal.SIGINT, stop.set)
    try:
        with live_ctx as live:
            samples = await drive(run, cars, cut, clock, args.duration, live, stop)
    finally:
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.remove_signal_handler(signal.SIGINT)
        ran_s = clock.real_s()
        delivered = cars.delivered_kwh()
        await run.stop()
    if stop.is_set():
        console.print(f"stopped (Ctrl-C) after {ran_s:.0f} of {args.duration:g} s")
    png = out / "demo.png"
    plot(samples, png, cut, site)
    return report(
        console,
        run,
        cars,
        samples,
        cut,
        sim0=clock.sim0,
        duration_s=round(min(ran_s, args.duration), 1),
        n_cars=n_cars,
        delivered_kwh=delivered,
        png=png,
    )


def main(argv: list[str]) -> int:
    args = parser().parse_args(argv)
    configure_logging(logging.WARNING, "%(levelname)s %(name)s: %(message)s")
    try:
        config = load_config(args.config)
    except ConfigError as e:
        print(f"gridshare demo: {e}", file=sys.stderr)
        return 2
    if args.db:
        return asyncio.run(run_demo(config, args, args.db))
    with tempfile.TemporaryDirectory() as tmp:
        return asyncio.run(run_demo(config, args, f"sqlite:///{tmp}/demo.db"))
