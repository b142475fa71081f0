"""A whole site run through the service: cars come and go, one station refuses every
profile, one never answers, the operator lowers the limit; at every sampled moment
the limits in force stay within capacity.

Stations are the demo's in-process stations (the gateway interface, no sockets):
they apply what they accept and enforce the limit in force as a station does.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from gridshare.config import GridshareConfig, parse_config
from gridshare.controller import ControllerSettings
from gridshare.service import EventSink, Service, controller_settings
from ocpp_adapter.events import ChargingLimitSpec, CommandOutcome, CommandResult
from optimizer.problem import TimeGrid
from optimizer.site import LINES
from tests.service.local_stations import Car, LocalStations
from tests.service.sites import NOW


class Stations(LocalStations):
    """LocalStations where S1 refuses every profile and S2 takes them without answering."""

    async def set_limit(self, station_id: str, spec: ChargingLimitSpec) -> CommandResult:
        if station_id == "S1":
            return CommandResult(CommandOutcome.REJECTED, "refused")
        result = await super().set_limit(station_id, spec)
        self.check()
        if station_id == "S2":
            await asyncio.sleep(3600)  # applied, never answered
        return result

    def check(self) -> None:
        now = self.clock()
        if self.capacity_now is None:
            return  # not wired yet (boot)
        cap = self.capacity_now(now)
        for g in self.site.groups:
            for line in LINES:
                total = sum(
                    self.limit(cid, now)
                    for cid, p in self.ports.items()
                    if p.car is not None
                    and g.id in p.info.ancestors
                    and line.value in self.lines_of(cid)
                )
                worst = self.worst.get(g.id, 0.0)
                self.worst[g.id] = max(worst, total - cap[g.id])

    capacity_now: Callable[[datetime], dict[str, float]] | None = None
    worst: dict[str, float] = {}  # noqa: RUF012  (replaced per instance below)


def site_config(tmp_path: Path) -> GridshareConfig:
    data = {
        "site": {"name": "run", "horizon_hours": 4},
        "groups": [{"id": "grid", "limit_a": 128}],
        "chargers": [
            {"id": f"S{i}", "group": "grid", "connectors": [{"id": 1, "max_current_a": 32}]}
            for i in range(1, 7)
        ],
        "server": {"host": "127.0.0.1", "ocpp_port": 0, "http_port": 0},
    }
    return parse_config(data, "run.toml", tmp_path / "run.toml", environ={})


@pytest.mark.slow
async def test_a_site_with_bad_stations_never_exceeds_its_capacity(tmp_path: Path):
    cfg = site_config(tmp_path)
    sim = [NOW]

    def clock() -> datetime:
        return sim[0]

    cars = [
        (
            f"S{i}/1",
            Car(
                battery_kwh=60.0,
                soc=0.97 if i == 3 else 0.3,  # S3's car is nearly full: it tapers off
                max_a=32.0,
                phases=3,
                arrives=NOW + timedelta(minutes=2 * i),
                departs=NOW + timedelta(hours=3 if i != 4 else 1),
                id_tag=f"t{i}",
            ),
        )
        for i in range(1, 7)
    ]
    holder: list[Stations] = []

    def factory(c: GridshareConfig, port: int, host: str, sink: EventSink) -> Stations:
        st = Stations(c.site, sink, clock, list(cars))
        st.worst = {}
        holder.append(st)
        return st

    settings = controller_settings(cfg)
    settings = ControllerSettings(
        **{**settings.__dict__, "coalesce_s": 0.005, "answer_timeout_s": 0.2, "learn_settle_s": 0}
    )
    svc = Service(cfg, gateway_factory=factory, clock=clock, scheduler=False, settings=settings)
    await svc.start()
    try:
        st = holder[0]
        ctl = svc.controller
        assert ctl is not None

        before_cut: dict[str, float] | None = None

        def capacity_now(now: datetime) -> dict[str, float]:
            if before_cut is not None:
                # an operator's cut takes effect "now": while the lowerings are
                # on their way, the stations are held to the limit they had
                return before_cut
            grid = TimeGrid.covering(now, 15, 1)
            cap = ctl.capacity(grid, now)
            return {g: float(a[0]) for g, a in cap.limit_a.items()}

        st.capacity_now = capacity_now

        async def settle() -> None:
            for _ in range(300):
                await ctl.wait_idle(10)
                if not ctl.busy():
                    return
                await asyncio.sleep(0.02)

        limits_s5: list[float] = []
        for step in range(120):  # 30 s steps: one simulated hour
            sim[0] += timedelta(seconds=30)
            await st.tick(sim[0], 30.0)
            if step == 60:
                before_cut = capacity_now(sim[0])
                ctl.set_group_limit("grid", limit_a=100)
            await settle()
            before_cut = None
            st.check()
            limits_s5.append(st.limit("S5/1", sim[0]))
        assert max(st.worst.values()) <= 1e-6, st.worst
        pins = ctl.book.pinned(ctl.monotonic())
        assert {"S1/1", "S2/1"} <= set(pins)
        # S1 and S2 are held at what they may draw; the others share the rest
        assert ctl.plans > 10
        # the tapering car's unused share went to the others
        assert ctl.sessions["S3/1"].cap_a is not None
        assert max(limits_s5) > min(x for x in limits_s5 if x > 0)
        # the lowered limit is honoured
        now = sim[0]
        total = sum(st.limit(c, now) for c, p in st.ports.items() if p.car is not None)
        assert total <= 100 + 1e-6
    finally:
        await svc.stop()
