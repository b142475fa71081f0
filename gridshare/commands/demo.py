"""``gridshare demo``: the service on a depot, with cars arriving and a DSO's evening cut.

    gridshare demo [--config examples/depot.toml] [--speed 120] [--duration 60]

Starts the service on the site (SQLite in a temporary folder), stations with
cars that arrive over time, and a simulated DSO that lowers the grid
connection's capacity for an evening peak. Time runs ``--speed`` times faster
than real time; the demo stops by itself after ``--duration`` real seconds.

A live view shows, per group and line, the capacity against the sum of limits
in force and the current measured, and per connector the limit, draw and
energy. At the end it prints a summary and writes a plot (PNG).

The stations are simulated in this process and speak to the service through
the same gateway interface the OCPP central system offers (limits in,
events out), obeying the limit in force as a station computes it: the
transaction's profile, else the station's TxDefault, never more than the car
takes.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import math
import random
import secrets
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import SecretStr

from gridshare.config import (
    ConfigError,
    GridshareConfig,
    OscpConfig,
    OscpProviderConfig,
    load_config,
)
from gridshare.controller import static_capacity
from gridshare.rollout import LimitSchedule, schedule_from_spec
from gridshare.service import EventSink, Service, StationInfo
from ocpp_adapter.events import (
    ChargingLimitSpec,
    CommandOutcome,
    CommandResult,
    LimitPurpose,
    MeterReading,
    SessionEnded,
    SessionStarted,
    StationBooted,
    StationConnected,
)
from optimizer.problem import Capacity, TimeGrid
from optimizer.site import LINES, ConnectorInfo, Site

METER_INTERVAL_S = 30.0
"""Simulated seconds between two meter values of a connector."""


@dataclass
class Car:
    battery_kwh: float
    soc: float
    max_a: float
    phases: int
    arrives: datetime
    departs: datetime
    id_tag: str


@dataclass
class Port:
    info: ConnectorInfo
    car: Car | None = None
    tx: str | None = None
    profile: LimitSchedule | None = None
    drawn_a: float = 0.0
    register_wh: float = 0.0
    last_meter: datetime | None = None
    session_wh: float = 0.0


@dataclass
class LocalStations:
    """Every station of the site, simulated in-process behind the gateway interface."""

    site: Site
    sink: EventSink
    clock: Callable[[], datetime]
    cars: list[tuple[str, Car]]
    ports: dict[str, Port] = field(default_factory=dict)
    defaults: dict[str, float] = field(default_factory=dict)
    sent: int = 0
    finished: list[tuple[str, float]] = field(default_factory=list)
    commands: list[tuple[str, str, tuple[Any, ...]]] = field(default_factory=list)
    """(station, command, arguments) of every operator command received."""
    unavailable: set[str] = field(default_factory=set)
    """Connectors (or ``STATION/0``) set inoperative."""
    _tx_counter: int = 0

    def __post_init__(self) -> None:
        self.ports = {cid: Port(info) for cid, info in self.site.connectors.items()}
        self.cars.sort(key=lambda x: x[1].arrives)

    @property
    def port(self) -> int:
        return 0

    async def start(self) -> None:
        now = self.clock()
        for ch in self.site.chargers:
            await self.sink(StationConnected(ch.id, "ocpp1.6", now))
            await self.sink(StationBooted(ch.id, "gridshare", "demo-station", now))

    async def stop(self) -> None:
        return None

    async def set_limit(self, station_id: str, spec: ChargingLimitSpec) -> CommandResult:
        self.sent += 1
        if spec.purpose is LimitPurpose.TX_DEFAULT:
            self.defaults[station_id] = spec.periods[0].limit_a
        elif spec.purpose is LimitPurpose.TX:
            port = self.ports.get(f"{station_id}/{spec.connector}")
            if port is None or port.tx != spec.transaction_id:
                return CommandResult(CommandOutcome.REJECTED, "no such transaction")
            port.profile = schedule_from_spec(spec)
        return CommandResult(CommandOutcome.ACCEPTED)

    async def clear_limit(self, station_id: str, connector: int) -> CommandResult:
        port = self.ports.get(f"{station_id}/{connector}")
        if port is not None:
            port.profile = None
        return CommandResult(CommandOutcome.ACCEPTED)

    def stations(self) -> list[StationInfo]:
        return [
            StationInfo(
                ch.id,
                connected=True,
                protocol="ocpp1.6",
                vendor="gridshare",
                model="demo-station",
                capabilities=("SmartCharging", "RemoteTrigger"),
            )
            for ch in self.site.chargers
        ]

    async def remote_start(
        self,
        station_id: str,
        connector: int,
        id_tag: str,
        spec: ChargingLimitSpec | None = None,
    ) -> CommandResult:
        self.commands.append((station_id, "remote_start", (connector, id_tag)))
        cid = f"{station_id}/{connector}"
        port = self.ports.get(cid)
        if port is None or port.car is not None or cid in self.unavailable:
            return CommandResult(CommandOutcome.REJECTED, "connector busy or unavailable")
        now = self.clock()
        car = Car(
            60.0,
            0.3,
            port.info.max_current_a,
            len(port.info.lines),
            now,
            now + timedelta(hours=8),
            id_tag,
        )
        await self._plug_in(cid, port, car, now)
        if spec is not None:
            port.profile = schedule_from_spec(spec)
        return CommandResult(CommandOutcome.ACCEPTED)

    async def remote_stop(self, station_id: str, transaction_id: str) -> CommandResult:
        self.commands.append((station_id, "remote_stop", (transaction_id,)))
        for cid, port in self.ports.items():
            if port.info.station_id == station_id and port.tx == transaction_id:
                await self._unplug(cid, port, self.clock(), "Remote")
                return CommandResult(CommandOutcome.ACCEPTED)
        return CommandResult(CommandOutcome.REJECTED, "no such transaction")

    async def trigger_message(
        self, station_id: str, message: str, connector: int | None = None
    ) -> CommandResult:
        self.commands.append((station_id, "trigger_message", (message, connector)))
        if message != "MeterValues":
            return CommandResult(CommandOutcome.REJECTED, f"{message} not implemented")
        now = self.clock()
        for cid, port in self.ports.items():
            if port.info.station_id != station_id or port.tx is None:
                continue
            if connector is None or port.info.connector.id == connector:
                await self.sink(self._reading(cid, port, now))
        return CommandResult(CommandOutcome.ACCEPTED)

    async def reset(self, station_id: str, hard: bool = False) -> CommandResult:
        self.commands.append((station_id, "reset", (hard,)))
        return CommandResult(CommandOutcome.ACCEPTED)

    async def change_availability(
        self, station_id: str, connector: int, operative: bool
    ) -> CommandResult:
        self.commands.append((station_id, "change_availability", (connector, operative)))
        key = f"{station_id}/{connector}"
        if operative:
            self.unavailable.discard(key)
        else:
            self.unavailable.add(key)
        return CommandResult(CommandOutcome.ACCEPTED)

    async def _plug_in(self, cid: str, port: Port, car: Car, now: datetime) -> None:
        self._tx_counter += 1
        port.car, port.tx = car, str(self._tx_counter)
        port.profile, port.drawn_a, port.session_wh = None, 0.0, 0.0
        await self.sink(SessionStarted(cid, port.tx, car.id_tag, port.register_wh, now))

    async def _unplug(self, cid: str, port: Port, now: datetime, reason: str) -> None:
        assert port.tx is not None
        await self.sink(SessionEnded(port.tx, port.register_wh, now, reason, connector_id=cid))
        self.finished.append((cid, port.session_wh))
        port.car = port.tx = port.profile = None
        port.drawn_a = 0.0

    def _reading(self, cid: str, port: Port, now: datetime) -> MeterReading:
        lines = min(port.car.phases, len(port.info.lines)) if port.car else len(port.info.lines)
        amps = {
            f"L{i + 1}": round(port.drawn_a if i < lines else 0.0, 2)
            for i in range(len(port.info.lines))
        }
        return MeterReading(
            cid,
            now,
            transaction_id=port.tx,
            current_a=amps,
            current_offered_a=self.limit(cid, now),
            total_power_w=round(port.drawn_a * port.info.voltage_v * lines, 1),
            energy_wh=round(port.register_wh, 1),
            soc_pct=None if port.car is None else round(port.car.soc * 100, 1),
        )

    def limit(self, cid: str, now: datetime) -> float:
        port = self.ports[cid]
        if port.profile is not None:
            a = port.profile.at(now)
        else:
            a = self.defaults.get(port.info.station_id, port.info.max_current_a)
        return min(a, port.info.max_current_a)

    async def tick(self, now: datetime, dt_s: float) -> None:
        while self.cars and self.cars[0][1].arrives <= now:
            cid, car = self.cars.pop(0)
            port = self.ports[cid]
            if port.car is not None:
                continue
            await self._plug_in(cid, port, car, now)
        for cid, port in self.ports.items():
            current = port.car
            if current is None or port.tx is None:
                continue
            car = current
            if now >= car.departs:
                await self._unplug(cid, port, now, "EVDisconnected")
                continue
            limit = self.limit(cid, now)
            taper = 1.0 if car.soc < 0.8 else max(0.0, (1.0 - car.soc) / 0.2)
            want = min(car.max_a * taper, port.info.max_current_a)
            target = min(limit, want) if limit >= port.info.connector.min_current_a else 0.0
            port.drawn_a += (target - port.drawn_a) * min(1.0, dt_s / 10.0)
            lines = min(car.phases, len(port.info.lines))
            wh = port.drawn_a * port.info.voltage_v * lines * dt_s / 3600.0
            port.register_wh += wh
            port.session_wh += wh
            car.soc = min(1.0, car.soc + wh / 1000.0 / car.battery_kwh)
            if port.last_meter is None or (now - port.last_meter).total_seconds() >= (
                METER_INTERVAL_S
            ):
                port.last_meter = now
                await self.sink(self._reading(cid, port, now))

    def lines_of(self, cid: str) -> tuple[str, ...]:
        port = self.ports[cid]
        n = min(port.car.phases, len(port.info.lines)) if port.car else len(port.info.lines)
        return tuple(x.value for x in port.info.lines[:n])


def make_cars(site: Site, start: datetime, span: timedelta, seed: int) -> list[tuple[str, Car]]:
    rng = random.Random(seed)
    out = []
    for k, (cid, info) in enumerate(site.connectors.items()):
        bus = info.max_current_a >= 32 and len(info.lines) == 3
        arrives = start + span * 0.45 * rng.random()
        out.append(
            (
                cid,
                Car(
                    battery_kwh=rng.choice([120.0, 200.0]) if bus else rng.choice([50.0, 75.0]),
                    soc=rng.uniform(0.15, 0.6),
                    max_a=32.0 if bus else rng.choice([16.0, 32.0]),
                    phases=1 if (not bus and rng.random() < 0.3) else 3,
                    arrives=arrives,
                    departs=arrives + timedelta(hours=rng.uniform(3.0, 10.0)),
                    id_tag=f"fleet-{k:02d}",
                ),
            )
        )
    return out


@dataclass
class EveningCut:
    """The simulated DSO: the grid connection's limit is lowered for a time."""

    group: str
    limit_a: float
    start: datetime
    end: datetime

    def __call__(self, site: Site, grid: TimeGrid, now: datetime) -> Capacity:
        cap = Capacity.static(site, grid)
        starts = grid.starts()
        # every slot the cut touches is cut for its whole length (most restrictive)
        touched = np.array([t < self.end and t + grid.step > self.start for t in starts])
        return cap.lowered(self.group, touched, limit_a=self.limit_a, limit_kw=None)

    def now_a(self, site: Site, now: datetime) -> float:
        g = site.group_by_id[self.group]
        base = g.limit_a if g.limit_a is not None else math.inf
        return min(base, self.limit_a) if self.start <= now < self.end else base


@dataclass
class Sample:
    at: datetime
    capacity: dict[str, float]
    limits: dict[str, dict[str, float]]
    measured: dict[str, dict[str, float]]


def sample(service: Service, stations: LocalStations, cut: EveningCut, now: datetime) -> Sample:
    site = stations.site
    ctl = service.controller
    assert ctl is not None
    grid = TimeGrid.covering(now, site.site.slot_minutes, 1)
    cap = ctl.capacity(grid, now)
    capacity = {g.id: float(cap.limit_a[g.id][0]) for g in site.groups if g.id in cap.limit_a}
    limits = {g.id: dict.fromkeys((x.value for x in LINES), 0.0) for g in site.groups}
    measured = {g.id: dict.fromkeys((x.value for x in LINES), 0.0) for g in site.groups}
    for cid, port in stations.ports.items():
        if port.car is None:
            continue
        lim = stations.limit(cid, now)
        car_lines = stations.lines_of(cid)
        for gid in port.info.ancestors:
            # a limit loads the lines the car uses (a 1-phase car on a
            # 3-phase connector loads one), as the planner learned them
            for name in car_lines:
                limits[gid][name] += lim
                measured[gid][name] += port.drawn_a
    return Sample(now, capacity, limits, measured)


def render(service: Service, stations: LocalStations, s: Sample, speed: float) -> Any:
    from rich.console import Group
    from rich.table import Table

    ctl = service.controller
    assert ctl is not None
    groups = Table(title=f"gridshare demo - {s.at:%H:%M} UTC (×{speed:g})", expand=False)
    for col in ("group", "capacity A", "limits in force L1/L2/L3", "measured L1/L2/L3"):
        groups.add_column(col)
    for gid, cap in s.capacity.items():
        lim = s.limits[gid]
        worst = max(lim.values())
        style = "red" if worst > cap + 1e-6 else None
        groups.add_row(
            gid,
            f"{cap:.0f}",
            " / ".join(f"{v:5.1f}" for v in lim.values()),
            " / ".join(f"{v:5.1f}" for v in s.measured[gid].values()),
            style=style,
        )
    conns = Table(expand=False)
    for col in ("connector", "limit A", "planned A", "draw A", "kWh", "SoC %", "departs"):
        conns.add_column(col)
    plan = ctl.plan
    for cid, port in stations.ports.items():
        if port.car is None:
            continue
        planned = plan.now_a(cid) if plan is not None and cid in plan.connector_ids else 0.0
        conns.add_row(
            cid,
            f"{stations.limit(cid, s.at):.1f}",
            f"{planned:.1f}",
            f"{port.drawn_a:.1f}",
            f"{port.session_wh / 1000:.1f}",
            f"{port.car.soc * 100:.0f}",
            f"{port.car.departs:%H:%M}",
        )
    status = plan.status.value if plan is not None else "-"
    footer = (
        f"{(service.oscp and 'capacity from the DSO over OSCP; ') or ''}"
        f"plans {ctl.plans}, last {status} in "
        f"{plan.solve_ms if plan else 0:.0f} ms; profiles sent {stations.sent}"
    )
    return Group(groups, conns, footer)


def plot(samples: list[Sample], path: Path, cut: EveningCut, site: Site) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups = [g.id for g in site.groups if g.weights is None]
    fig, axes = plt.subplots(len(groups), 1, figsize=(10, 3.2 * len(groups)), sharex=True)
    axes = np.atleast_1d(axes)
    times = [s.at for s in samples]
    for ax, gid in zip(axes, groups, strict=True):
        ax.step(
            times,
            [s.capacity.get(gid, np.nan) for s in samples],
            where="post",
            color="black",
            label="capacity (per line)",
        )
        ax.plot(
            times,
            [max(s.limits[gid].values()) for s in samples],
            color="tab:red",
            label="sum of limits in force (highest line)",
        )
        ax.plot(
            times,
            [max(s.measured[gid].values()) for s in samples],
            color="tab:blue",
            label="measured (highest line)",
        )
        ax.axvspan(cut.start, cut.end, color="orange", alpha=0.12, label="DSO evening cut")
        ax.set_ylabel("A per line")
        ax.set_title(gid)
        ax.legend(loc="upper right", fontsize=7)
    axes[-1].set_xlabel("time (UTC)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


async def start_dso(
    config: GridshareConfig, clock: Callable[[], datetime], out: Callable[[str], None]
) -> tuple[GridshareConfig, Any]:
    """A simulated DSO on a loopback port, and the site configured to trust it.

    Without the OSCP packages the demo's capacity cut is applied in-process.
    """
    try:
        from gridshare.simulators.dso import SimulatedDso
    except ImportError:
        return config, None
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


async def send_cut(dso: Any, group_id: str, cut: EveningCut, site: Site) -> None:
    from forecasts.model import Block, ForecastType, Phase, Unit

    base = site.root.limit_a or cut.limit_a
    blocks = [
        Block(base, Unit.A, Phase.ALL, cut.start - timedelta(hours=2), cut.start),
        Block(cut.limit_a, Unit.A, Phase.ALL, cut.start, cut.end),
        Block(base, Unit.A, Phase.ALL, cut.end, cut.end + timedelta(hours=24)),
    ]
    await dso.send_forecast(group_id, ForecastType.CONSUMPTION, blocks)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="gridshare demo", description=__doc__.splitlines()[0])
    p.add_argument("--config", default="examples/depot.toml", help="site TOML")
    p.add_argument("--speed", type=float, default=120.0, help="simulated seconds per second")
    p.add_argument("--duration", type=float, default=60.0, help="real seconds to run")
    p.add_argument("--out", default="out", help="folder for the plot")
    p.add_argument("--db", help="database (default: a temporary SQLite file)")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--no-live", action="store_true", help="no live view (e.g. in CI)")
    return p


async def run_demo(config: GridshareConfig, args: argparse.Namespace, db: str) -> int:
    from rich.console import Console
    from rich.live import Live

    console = Console()
    site = config.site
    speed = max(args.speed, 1e-3)
    real0 = time.monotonic()
    sim0 = datetime.now(UTC).replace(hour=16, minute=30, second=0, microsecond=0)

    def clock() -> datetime:
        return sim0 + timedelta(seconds=(time.monotonic() - real0) * speed)

    span = timedelta(seconds=args.duration * speed)
    root = site.root
    cut = EveningCut(root.id, (root.limit_a or 400.0) * 0.5, sim0 + span * 0.3, sim0 + span * 0.75)
    holder: list[LocalStations] = []
    cars = make_cars(site, sim0, span, args.seed)
    n_cars = len(cars)

    def factory(cfg: GridshareConfig, port: int, host: str, sink: EventSink) -> LocalStations:
        stations = LocalStations(cfg.site, sink, clock, cars)
        holder.append(stations)
        return stations

    server = config.server.model_copy(update={"http_port": 0, "ocpp_port": 0})
    controller = config.controller.model_copy(update={"replan_interval_s": max(0.5, 60.0 / speed)})
    cfg = config.model_copy(update={"server": server, "controller": controller})
    dso_lines: list[str] = []
    cfg, dso = await start_dso(cfg, clock, dso_lines.append)
    service = Service(
        cfg,
        db=db,
        gateway_factory=factory,
        capacity=static_capacity if dso is not None else cut,
        clock=clock,
        scheduler=False,
    )
    try:
        await service.start()
        if dso is not None:
            # the DSO announces the evening cut ahead of time, over OSCP
            dso.fp_url = f"http://{cfg.server.host}:{service.http_port}/oscp/fp/2.0"
            await send_cut(dso, cfg.site.root.oscp_group_id or cfg.site.root.id, cut, site)
    except BaseException:
        await service.stop()
        if dso is not None:
            await dso.stop()
        raise
    stations = holder[0]
    samples: list[Sample] = []
    tick_s = 0.25
    last_slot: datetime | None = None
    live_ctx: Any = (
        Live(console=console, refresh_per_second=4, transient=False)
        if not args.no_live and console.is_terminal
        else contextlib.nullcontext()
    )
    try:
        with live_ctx as live:
            last = clock()
            was_cut = False
            while time.monotonic() - real0 < args.duration:
                await asyncio.sleep(tick_s)
                now = clock()
                await stations.tick(now, (now - last).total_seconds())
                last = now
                ctl = service.controller
                assert ctl is not None
                slot = TimeGrid.covering(now, site.site.slot_minutes, 1).start
                in_cut = cut.start <= now < cut.end
                if slot != last_slot or in_cut != was_cut:
                    ctl.request_replan("slot boundary" if in_cut == was_cut else "dso forecast")
                    last_slot, was_cut = slot, in_cut
                s = sample(service, stations, cut, now)
                samples.append(s)
                if live is not None:
                    live.update(render(service, stations, s, speed))
    finally:
        await service.stop()
        if dso is not None:
            await dso.stop()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    png = out / "demo.png"
    plot(samples, png, cut, site)
    excess = max(
        (max(s.limits[g].values()) - s.capacity[g] for s in samples for g in s.capacity),
        default=0.0,
    )
    delivered = (
        sum(p.session_wh for p in stations.ports.values() if p.car) / 1000
        + sum(wh for _, wh in stations.finished) / 1000
    )
    ctl = service.controller
    assert ctl is not None
    simulated = timedelta(seconds=round((samples[-1].at - sim0).total_seconds())) if samples else 0
    console.print(
        f"[bold]gridshare demo[/bold]: {simulated} simulated "
        f"in {args.duration:g} s; cars {n_cars - len(stations.cars)}, energy "
        f"{delivered:.1f} kWh, plans {ctl.plans}, profiles {stations.sent}"
    )
    console.print(
        f"largest excess of limits in force over capacity: {max(0.0, excess):.1f} A "
        f"(DSO cut to {cut.limit_a:.0f} A from {cut.start:%H:%M} to {cut.end:%H:%M})"
    )
    if dso is not None:
        console.print(f"capacity from a simulated DSO over OSCP: {'; '.join(dso_lines[-3:])}")
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


def main(argv: list[str]) -> int:
    args = parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        config = load_config(args.config)
    except ConfigError as e:
        print(f"gridshare demo: {e}", file=sys.stderr)
        return 2
    if args.db:
        return asyncio.run(run_demo(config, args, args.db))
    with tempfile.TemporaryDirectory() as tmp:
        return asyncio.run(run_demo(config, args, f"sqlite:///{tmp}/demo.db"))
