"""The whole product over real sockets: the service with its OCPP central system
and HTTP endpoints on loopback, simulated stations as independent OCPP clients,
a DSO over OSCP.

Every test samples the limits the stations hold in force (as the stations
themselves compute them) and checks the site's invariant at each sample: per
group and per line, the sum of limits in force never exceeds the capacity.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypedDict

import httpx
import pytest

from gridshare.config import GridshareConfig, parse_config
from gridshare.peers.ev import EvSpec
from gridshare.peers.fleet import StationFleet
from gridshare.peers.specs import specs_from_site
from gridshare.service import Service, controller_settings
from tests.certs import server_certificate, station_certificates

pytestmark = pytest.mark.slow

DSO_TOKEN = "token-the-dso-presents-e2e"


def site_config(
    tmp_path: Path,
    *,
    stations: int = 4,
    limit_a: float = 64,
    oscp: bool = False,
    **server: Any,
) -> GridshareConfig:
    data: dict[str, Any] = {
        "site": {"name": "e2e", "slot_minutes": 15, "horizon_hours": 2},
        "groups": [
            {"id": "grid", "limit_a": limit_a, "fallback_limit_a": limit_a, "oscp_group_id": "g"}
        ],
        "chargers": [
            {"id": f"CP{i}", "group": "grid", "connectors": [{"id": 1, "max_current_a": 32}]}
            for i in range(1, stations + 1)
        ],
        "server": {
            "host": "127.0.0.1",
            "ocpp_port": 0,
            "http_port": 0,
            "meter_interval_s": 1,
            **server,
        },
        "controller": {"coalesce_s": 0.02, "pin_s": 5},
    }
    if oscp:
        data["oscp"] = {
            "capacity_providers": [
                {
                    "id": "dso",
                    "base_url": "http://127.0.0.1:9/oscp/cp/2.0",
                    "token_to_us": DSO_TOKEN,
                    "token_to_them": "token-we-present-e2e",
                    "heartbeat_interval_s": 3600,
                }
            ]
        }
    return parse_config(data, "e2e.toml", tmp_path / "e2e.toml", environ={})


@dataclass
class Watch:
    """Samples the stations' limits in force and records the worst excess."""

    fleet: StationFleet
    capacity: Callable[[], float]
    connectors: list[str]
    worst: float = float("-inf")
    samples: int = 0

    def sample(self) -> dict[str, float]:
        limits = {cid: self.fleet.limit_in_force(cid) for cid in self.connectors}
        self.samples += 1
        self.worst = max(self.worst, sum(limits.values()) - self.capacity())
        return limits

    async def run(self, period_s: float = 0.05) -> None:
        while True:
            self.sample()
            await asyncio.sleep(period_s)


async def eventually(cond: Callable[[], bool], timeout_s: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not cond():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.05)


class Misbehaviour(TypedDict, total=False):
    """The SimStationSpec flags that make a simulated station uncooperative."""

    never_answers_profiles: bool
    rejects_profiles: bool
    ignores_limits: bool
    hides_ignoring: bool


@dataclass
class Tls:
    server_ca: Path
    """The central system's certificate (self-signed)."""
    stations: dict[str, tuple[Path, Path]]
    """Station id → its certificate and key."""


@contextlib.asynccontextmanager
async def live_site(
    cfg: GridshareConfig,
    *,
    version: str = "1.6",
    misbehaving: dict[str, Misbehaviour] | None = None,
    tls: Tls | None = None,
) -> AsyncIterator[tuple[Service, StationFleet]]:
    """The service and one simulated station per charger, booted, with the
    fallback limits in force (before that a fresh station knows no limit).
    With ``tls`` the stations connect over wss, each with its certificate."""
    # cars in these tests follow a new limit within a second, so the controller
    # may learn from readings sooner than on a real site
    settings = dataclasses.replace(controller_settings(cfg), learn_settle_s=2.0)
    db = str(cfg.path.with_suffix(".db")) if cfg.path else None
    svc = Service(cfg, db=db, scheduler=False, settings=settings)
    await svc.start()
    try:
        specs = [
            dataclasses.replace(spec, **(misbehaving or {}).get(spec.id, {}))
            for spec in specs_from_site(cfg.site, version=version, meter_interval_s=1)
        ]
        if tls is not None:
            specs = [
                dataclasses.replace(
                    spec,
                    client_cert=str(tls.stations[spec.id][0]),
                    client_key=str(tls.stations[spec.id][1]),
                )
                for spec in specs
            ]
        fleet = StationFleet(
            f"{'wss' if tls else 'ws'}://127.0.0.1:{svc.ocpp_port}/ocpp",
            specs,
            server_ca=str(tls.server_ca) if tls else None,
        )
        await fleet.start()
        try:
            assert await fleet.wait_booted(10) == len(specs)
            good = [f"{spec.id}/1" for spec in specs if spec.id not in (misbehaving or {})]
            grid = cfg.site.root
            share = (grid.fallback_limit_a or grid.limit_a or 0) / len(specs)
            await eventually(
                lambda: all(fleet.limit_in_force(c) <= share + 1e-6 for c in good), timeout_s=10
            )
            yield svc, fleet
        finally:
            await fleet.stop()
    finally:
        await svc.stop()


CARS = ["CP1/1", "CP2/1", "CP3/1", "CP4/1"]


@pytest.mark.parametrize("version", ["1.6", "2.0.1"])
async def test_cars_share_the_grid_and_a_car_taking_less_frees_its_share(
    tmp_path: Path, version: str
):
    cfg = site_config(tmp_path, stations=3)
    cars = ["CP1/1", "CP2/1", "CP3/1"]
    async with live_site(cfg, version=version) as (_svc, fleet):
        watch = Watch(fleet, lambda: 64.0, cars)
        sampler = asyncio.create_task(watch.run())

        def two() -> float:
            return fleet.limit_in_force("CP1/1") + fleet.limit_in_force("CP2/1")

        try:
            fleet.plug_in("CP1/1", EvSpec(battery_kwh=60, soc_start=0.2, lag_s=0.3))
            fleet.plug_in("CP2/1", EvSpec(battery_kwh=60, soc_start=0.2, lag_s=0.3))
            # the idle CP3 keeps its fallback share free for a car that plugs in
            await eventually(lambda: two() >= 64 - 22, timeout_s=5)
            # an arrival re-plans: three cars share the grid
            fleet.plug_in(
                "CP3/1", EvSpec(battery_kwh=60, soc_start=0.2, max_current_a=10, lag_s=0.3)
            )
            await eventually(lambda: fleet.limit_in_force("CP3/1") > 16, timeout_s=5)
            shared = two()
            # the 10 A car is learned from its meter values; the others get the rest
            await eventually(lambda: two() >= shared + 8, timeout_s=10)
            assert fleet.limit_in_force("CP3/1") <= 14
            assert fleet.draw("CP3/1")["L1"] <= 10.5
            # a departure re-plans: CP3 is back to its fallback share
            fleet.unplug("CP3/1")
            await eventually(lambda: fleet.transaction_id("CP3/1") is None, timeout_s=5)
            await eventually(lambda: 64 - 22 <= two() < shared + 8, timeout_s=5)
        finally:
            sampler.cancel()
        assert watch.samples > 20
        assert watch.worst <= 1e-6, f"limits in force exceeded the grid by {watch.worst} A"


async def test_security_profile_3_stations_with_certificates(tmp_path: Path):
    """Over wss, each station presenting a certificate from the site's CA: the
    site is planned and kept within its limit; a certificate for another id
    never gets a station in."""
    server = server_certificate(tmp_path)
    certs = station_certificates(tmp_path, ("CP1", "CP2"))
    cfg = site_config(
        tmp_path,
        stations=2,
        tls_cert=str(server[0]),
        tls_key=str(server[1]),
        tls_client_ca=str(certs["ca"][0]),
    )
    async with live_site(cfg, tls=Tls(server[0], certs)) as (svc, fleet):
        watch = Watch(fleet, lambda: 64.0, ["CP1/1", "CP2/1"])
        sampler = asyncio.create_task(watch.run())
        try:
            for cid in ("CP1/1", "CP2/1"):
                fleet.plug_in(cid, EvSpec(battery_kwh=60, soc_start=0.2, lag_s=0.3))
            await eventually(lambda: min(fleet.draw(c)["L1"] for c in watch.connectors) > 25)
            spec = dataclasses.replace(
                fleet.stations["CP1"].spec,
                client_cert=str(certs["CP2"][0]),
                client_key=str(certs["CP2"][1]),
            )
            intruder = StationFleet(fleet.url, [spec], server_ca=str(server[0]), max_backoff_s=1)
            await intruder.start()
            try:
                assert await intruder.wait_booted(1.5) == 0
                assert intruder.stats.connect_failures >= 1
                assert "403" in (intruder.stations["CP1"].last_error or "")
            finally:
                await intruder.stop()
            assert all(s.connected for s in svc.gateway.stations())  # type: ignore[union-attr]
        finally:
            sampler.cancel()
        assert watch.samples > 10 and watch.worst <= 1e-6


async def test_a_lowered_group_limit_is_honoured_at_the_stations(tmp_path: Path):
    cfg = site_config(tmp_path, stations=3)
    capacity = [64.0]
    async with live_site(cfg) as (svc, fleet):
        watch = Watch(fleet, lambda: capacity[0], ["CP1/1", "CP2/1", "CP3/1"])
        for cid in ("CP1/1", "CP2/1", "CP3/1"):
            fleet.plug_in(cid, EvSpec(battery_kwh=80, soc_start=0.1, lag_s=0.3))
        await eventually(lambda: sum(watch.sample().values()) >= 60, timeout_s=10)
        assert svc.controller is not None
        sampler = asyncio.create_task(watch.run())
        try:
            svc.controller.set_group_limit("grid", limit_a=30)
            svc.controller.request_replan("operator limit")
            # the new capacity holds from the moment every station confirmed
            await eventually(lambda: sum(watch.sample().values()) <= 30 + 1e-6, timeout_s=5)
            capacity[0] = 30.0
            await asyncio.sleep(1.0)
        finally:
            sampler.cancel()
        assert watch.worst <= 1e-6


async def test_uncooperative_stations_never_push_the_site_over(tmp_path: Path):
    # CP3 never answers a profile and CP4 rejects every one: both are assumed to
    # draw their maximum (32 A each), so CP1 and CP2 share what is left
    cfg = site_config(tmp_path, stations=4, limit_a=96)
    odd: dict[str, Misbehaviour] = {
        "CP3": {"never_answers_profiles": True},
        "CP4": {"rejects_profiles": True},
    }
    async with live_site(cfg, misbehaving=odd) as (_svc, fleet):
        watch = Watch(fleet, lambda: 96.0, CARS)
        sampler = asyncio.create_task(watch.run())
        try:
            for cid in CARS:
                fleet.plug_in(cid, EvSpec(battery_kwh=80, soc_start=0.1, lag_s=0.3))
            await asyncio.sleep(3)
            assert fleet.limit_in_force("CP1/1") + fleet.limit_in_force("CP2/1") <= 32 + 1e-6
            fleet.unplug("CP4/1")
            await asyncio.sleep(2)
        finally:
            sampler.cancel()
        assert watch.samples > 50
        assert watch.worst <= 1e-6, f"limits in force exceeded the grid by {watch.worst} A"


async def test_a_dso_cut_ahead_is_already_in_the_stations_schedules(tmp_path: Path):
    cfg = site_config(tmp_path, stations=2, oscp=True)
    async with live_site(cfg) as (svc, fleet):
        for cid in ("CP1/1", "CP2/1"):
            fleet.plug_in(cid, EvSpec(battery_kwh=80, soc_start=0.1, lag_s=0.3))
        await eventually(
            lambda: fleet.limit_in_force("CP1/1") + fleet.limit_in_force("CP2/1") >= 60,
            timeout_s=10,
        )
        now = datetime.now(UTC)
        cut_at = now + timedelta(minutes=2)

        def forecast(start: datetime, capacity: float) -> dict[str, Any]:
            return {
                "group_id": "g",
                "type": "CONSUMPTION",
                "forecasted_blocks": [
                    {
                        "capacity": capacity,
                        "phase": "ALL",
                        "unit": "A",
                        "start_time": start.isoformat(),
                        "end_time": (start + timedelta(hours=1)).isoformat(),
                    }
                ],
            }

        headers = {"Authorization": f"Token {DSO_TOKEN}", "X-Request-ID": "e2e-1"}
        url = f"http://127.0.0.1:{svc.http_port}/oscp/fp/2.0/update_group_capacity_forecast"
        async with httpx.AsyncClient() as client:
            r = await client.post(url, json=forecast(cut_at, 32), headers=headers)
            assert r.status_code == 204, r.text

            # the future step is in every station's own schedule
            def stepped_down() -> bool:
                total_after = 0.0
                for cid in ("CP1/1", "CP2/1"):
                    start, periods = fleet.composite_schedule(cid, 600)
                    offset = (cut_at - start).total_seconds() + 1
                    in_force = [p for p in periods if p["startPeriod"] <= offset]
                    total_after += in_force[-1]["limit"] if in_force else 32
                return total_after <= 32 + 1e-6

            await eventually(stepped_down, timeout_s=5)
            # a forecast for now takes effect within 2 s
            r = await client.post(
                url,
                json=forecast(now - timedelta(minutes=1), 20),
                headers={**headers, "X-Request-ID": "e2e-2"},
            )
            assert r.status_code == 204, r.text
        t0 = asyncio.get_running_loop().time()
        await eventually(
            lambda: fleet.limit_in_force("CP1/1") + fleet.limit_in_force("CP2/1") <= 20 + 1e-6,
            timeout_s=2,
        )
        assert asyncio.get_running_loop().time() - t0 < 2


async def test_ev_charging_needs_become_the_sessions_needs(tmp_path: Path):
    """OCPP 2.0.1: the car's NotifyEVChargingNeeds (departure, energy) replaces the
    site's estimates and the plan follows: the car that leaves sooner gets more."""
    cfg = site_config(tmp_path, stations=2, limit_a=32)
    async with live_site(cfg, version="2.0.1") as (svc, fleet):
        now = datetime.now(UTC)
        ev = EvSpec(battery_kwh=80, soc_start=0.1, lag_s=0.3)
        fleet.plug_in("CP1/1", ev, departure=now + timedelta(minutes=30), energy_wh=10_000)
        fleet.plug_in("CP2/1", ev, departure=now + timedelta(hours=8), energy_wh=10_000)
        assert svc.controller is not None
        ctl = svc.controller

        def stated() -> bool:
            s1, s2 = ctl.sessions.get("CP1/1"), ctl.sessions.get("CP2/1")
            return bool(s1 and s2 and s1.departure and s2.departure)

        await eventually(stated, timeout_s=5)
        s1 = ctl.sessions["CP1/1"]
        assert s1.energy_need_wh == pytest.approx(10_000)
        assert s1.departure is not None
        assert abs((s1.departure - (now + timedelta(minutes=30))).total_seconds()) < 2
        # the urgent car gets the larger share of the 32 A, at its station
        await eventually(
            lambda: fleet.limit_in_force("CP1/1") > fleet.limit_in_force("CP2/1") + 4,
            timeout_s=5,
        )
