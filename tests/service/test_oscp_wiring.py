"""The service's own OSCP messages to a DSO, over real HTTP on loopback.

A `SimulatedDso` records what reaches it: UpdateGroupMeasurements with the
groups' cumulative energy from the stations' meter values (kept across a
restart), a GroupCapacityComplianceError once per episode when a station
ignores its limit, and the AdjustGroupCapacityForecast an operator asks for
through the API. Stations are the recording fake gateway; the test sends their
events and moves the service's clock.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from forecasts.model import ForecastType
from gridshare.config import GridshareConfig, parse_config
from gridshare.peers.dso import Received, SimulatedDso, step_at
from gridshare.peers.fleet import StationFleet
from gridshare.peers.specs import specs_from_site
from gridshare.service import Service
from gridshare.site.compliance import ComplianceSettings
from ocpp_adapter.events import (
    MeterReading,
    SessionEnded,
    SessionStarted,
    StationBooted,
    StationConnected,
)
from oscp.messages import MeasurementConfiguration
from tests.api.conftest import READ, READ_TOKEN, WRITE, WRITE_TOKEN
from tests.service.test_service import FakeCentral, fake_factory

TOKEN_TO_US = "token-the-dso-presents-1"
TOKEN_TO_THEM = "token-we-present-to-dso-1"


def two_chargers_under_a_dso(dso_url: str, tmp_path: Path) -> GridshareConfig:
    """Two 32 A chargers under a 64 A group the DSO at ``dso_url`` forecasts."""
    data: dict[str, Any] = {
        "site": {"name": "e2e", "horizon_hours": 2},
        "groups": [{"id": "grid", "limit_a": 64, "oscp_group_id": "dso-grid"}],
        "chargers": [
            {"id": f"CP{i}", "group": "grid", "connectors": [{"id": 1, "max_current_a": 32}]}
            for i in (1, 2)
        ],
        "server": {"host": "127.0.0.1", "ocpp_port": 0, "http_port": 0, "meter_interval_s": 1},
        "controller": {"coalesce_s": 0.02, "pin_s": 5},
        "oscp": {
            "capacity_providers": [
                {
                    "id": "dso",
                    "base_url": dso_url,
                    "token_to_us": TOKEN_TO_US,
                    "token_to_them": TOKEN_TO_THEM,
                    "heartbeat_interval_s": 3600,
                }
            ]
        },
    }
    return parse_config(data, "e2e.toml", tmp_path / "e2e.toml", environ={})


def fleet_with_cp2_ignoring(cfg: GridshareConfig, ocpp_port: int) -> StationFleet:
    """The site's simulated stations; CP2 ignores every limit it is sent."""
    specs = [
        dataclasses.replace(s, ignores_limits=s.id == "CP2")
        for s in specs_from_site(cfg.site, meter_interval_s=1)
    ]
    return StationFleet(f"ws://127.0.0.1:{ocpp_port}/ocpp", specs)


MEASURE_S = 0.1
"""Real seconds between two rounds of measurements."""


class Clock:
    def __init__(self) -> None:
        self.now = datetime.now(UTC).replace(microsecond=0)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


def site_config(
    tmp_path: Path,
    dso_url: str | None,
    *,
    limit_a: float = 64,
    provider: dict[str, Any] | None = None,
) -> GridshareConfig:
    """``grid`` (CP1) with the child ``panel`` (CP2), both known to the DSO, and
    ``aux`` (CP3), which the DSO does not know."""
    oscp: dict[str, Any] = {}
    if dso_url is not None:
        oscp = {
            "capacity_providers": [
                provider
                or {
                    "id": "dso",
                    "base_url": dso_url,
                    "token_to_us": TOKEN_TO_US,
                    "token_to_them": TOKEN_TO_THEM,
                    "heartbeat_interval_s": 3600,
                }
            ]
        }
    data = {
        "site": {"name": "oscp", "horizon_hours": 2},
        "groups": [
            {"id": "grid", "limit_a": limit_a, "oscp_group_id": "dso-grid"},
            {"id": "panel", "parent": "grid", "limit_a": 32, "oscp_group_id": "dso-panel"},
            {"id": "aux", "parent": "grid", "limit_a": 32},
        ],
        "chargers": [
            {"id": "CP1", "group": "grid", "connectors": [{"id": 1, "max_current_a": 32}]},
            {"id": "CP2", "group": "panel", "connectors": [{"id": 1, "max_current_a": 32}]},
            {"id": "CP3", "group": "aux", "connectors": [{"id": 1, "max_current_a": 16}]},
        ],
        "server": {"host": "127.0.0.1", "ocpp_port": 0, "http_port": 0, "meter_interval_s": 10},
        "controller": {"coalesce_s": 0.005, "reserve_for_arrivals": False},
        "api": {
            "tokens": [
                {"name": "viewer", "token": READ_TOKEN, "role": "read"},
                {"name": "alice", "token": WRITE_TOKEN, "role": "write"},
            ]
        },
        "oscp": oscp,
    }
    return parse_config(data, "oscp.toml", tmp_path / "oscp.toml", environ={})


@asynccontextmanager
async def simulated_dso() -> AsyncIterator[SimulatedDso]:
    dso = SimulatedDso(token_to_fp=TOKEN_TO_US)
    await dso.start()
    dso.accepted_tokens.add(TOKEN_TO_THEM)
    try:
        yield dso
    finally:
        await dso.stop()


@asynccontextmanager
async def running(
    cfg: GridshareConfig, clock: Clock, dso: SimulatedDso | None = None, **kw: Any
) -> AsyncIterator[tuple[Service, FakeCentral]]:
    made: list[FakeCentral] = []
    svc = Service(
        cfg,
        gateway_factory=fake_factory(made),
        scheduler=False,
        clock=clock,
        oscp_measurement_interval_s=MEASURE_S,
        **kw,
    )
    await svc.start()
    if dso is not None:
        dso.fp_url = f"http://127.0.0.1:{svc.http_port}/oscp/fp/2.0"
    try:
        yield svc, made[0]
    finally:
        await svc.stop()


async def connect(central: FakeCentral, clock: Clock, *stations: str) -> None:
    for sid in stations:
        await central.sink(StationConnected(sid, "ocpp1.6", clock()))
        await central.sink(StationBooted(sid, "acme", "x", clock()))


async def start(central: FakeCentral, clock: Clock, cid: str, tx: str, meter_wh: float) -> None:
    central.gw.start(cid)
    await central.sink(SessionStarted(cid, tx, None, meter_wh, clock()))


async def meter(
    central: FakeCentral, clock: Clock, cid: str, tx: str | None, amps: float, wh: float | None
) -> None:
    await central.sink(
        MeterReading(
            cid,
            clock(),
            transaction_id=tx,
            current_a={"L1": amps, "L2": amps, "L3": amps},
            energy_wh=wh,
        )
    )


def measurements(dso: SimulatedDso, group: str, after: int = 0) -> list[dict[str, Any]]:
    return [
        m
        for r in dso.received[after:]
        if r.message == "update_group_measurements" and r.body["group_id"] == group
        for m in r.body["measurements"]
    ]


async def reported(
    dso: SimulatedDso, group: str, kwh: float, after: int = 0, timeout_s: float = 5.0
) -> Received:
    def hit(r: Received) -> bool:
        return r.body["group_id"] == group and any(
            abs(m["value"] - kwh) < 1e-6 for m in r.body["measurements"]
        )

    return await dso.wait_for("update_group_measurements", timeout_s, hit, after)


async def settle(svc: Service) -> None:
    assert svc.controller is not None
    for _ in range(200):
        await svc.controller.wait_idle()
        if not svc.controller.busy():
            return
        await asyncio.sleep(0.01)


# --- UpdateGroupMeasurements -------------------------------------------------------------


async def test_the_dso_receives_growing_cumulative_energy_per_group(tmp_path: Path) -> None:
    clock = Clock()
    async with simulated_dso() as dso:
        cfg = site_config(tmp_path, dso.base_url)
        async with running(cfg, clock, dso) as (_svc, central):
            await connect(central, clock, "CP1", "CP2", "CP3")
            await start(central, clock, "CP1/1", "tx-1", 1000.0)
            await start(central, clock, "CP2/1", "tx-2", 0.0)
            await reported(dso, "dso-grid", 0.0)
            clock.advance(10)
            await meter(central, clock, "CP1/1", "tx-1", 10, 3000.0)
            await meter(central, clock, "CP2/1", "tx-2", 10, 500.0)
            await meter(central, clock, "CP3/1", None, 0, 99_000.0)  # no session: not counted
            # grid counts its child panel too
            await reported(dso, "dso-grid", 2.5)
            await reported(dso, "dso-panel", 0.5)
            # an ended session's energy stays; the connector's next session adds to it
            clock.advance(10)
            await central.sink(SessionEnded("tx-1", 3500.0, clock(), connector_id="CP1/1"))
            await start(central, clock, "CP1/1", "tx-3", 0.0)  # this station's register restarts
            await meter(central, clock, "CP1/1", "tx-3", 10, 1000.0)
            await meter(central, clock, "CP2/1", "tx-2", 10, 400.0)  # a late, lower reading
            r = await reported(dso, "dso-grid", 4.0)
            [m] = r.body["measurements"]
            assert m["unit"] == "KWH" and m["direction"] == "IMPORT" and m["phase"] == "ALL"
            assert "initial_measure_time" not in m  # CONTINUOUS: the DSO asked for nothing else
            assert datetime.fromisoformat(m["measure_time"]) == clock()
            for group in ("dso-grid", "dso-panel"):
                values = [m["value"] for m in measurements(dso, group)]
                assert values == sorted(values), f"{group} decreased: {values}"


async def test_cumulative_energy_survives_a_restart(tmp_path: Path) -> None:
    clock = Clock()
    async with simulated_dso() as dso:
        cfg = site_config(tmp_path, dso.base_url)
        async with running(cfg, clock, dso) as (_svc, central):
            await connect(central, clock, "CP1", "CP2")
            await start(central, clock, "CP1/1", "tx-1", 0.0)
            await start(central, clock, "CP2/1", "tx-2", 0.0)
            clock.advance(10)
            await meter(central, clock, "CP1/1", "tx-1", 10, 2000.0)
            await meter(central, clock, "CP2/1", "tx-2", 10, 1000.0)
            await central.sink(SessionEnded("tx-2", 1500.0, clock(), connector_id="CP2/1"))
            await reported(dso, "dso-grid", 3.5)
            # a reading after the last report, just before the service stops
            await meter(central, clock, "CP1/1", "tx-1", 10, 2500.0)
        mark = len(dso.received)
        async with running(cfg, clock, dso) as (_svc, central):
            await reported(dso, "dso-grid", 4.0, after=mark)
            await connect(central, clock, "CP1")
            clock.advance(10)
            await meter(central, clock, "CP1/1", "tx-1", 10, 4000.0)
            await reported(dso, "dso-grid", 5.5, after=mark)
            await reported(dso, "dso-panel", 1.5, after=mark)
            values = [m["value"] for m in measurements(dso, "dso-grid")]
            assert values == sorted(values)


async def test_intermittent_measurements_when_the_dso_asks_for_them(tmp_path: Path) -> None:
    clock = Clock()
    async with simulated_dso() as dso:
        cfg = site_config(tmp_path, dso.base_url)
        async with running(cfg, clock, dso) as (_svc, central):
            await connect(central, clock, "CP1")
            await start(central, clock, "CP1/1", "tx-1", 0.0)
            rid = await dso.handshake(
                heartbeat_interval=3600,
                measurement_configuration=[MeasurementConfiguration.INTERMITTENT],
            )
            await dso.wait_for("handshake_acknowledge", where=lambda r: r.correlation_id == rid)
            mark = len(dso.received)
            await asyncio.sleep(3 * MEASURE_S)
            clock.advance(60)
            await meter(central, clock, "CP1/1", "tx-1", 10, 1200.0)

            def energy(r: Received) -> bool:
                return r.body["group_id"] == "dso-grid" and any(
                    m["value"] > 0 for m in r.body["measurements"]
                )

            r = await dso.wait_for("update_group_measurements", 5.0, energy, mark)
            [m] = r.body["measurements"]
            assert m["value"] == pytest.approx(1.2)  # the energy since the previous report
            assert datetime.fromisoformat(m["initial_measure_time"]) < datetime.fromisoformat(
                m["measure_time"]
            )


# --- GroupCapacityComplianceError ------------------------------------------------------


def compliance_errors(dso: SimulatedDso) -> list[dict[str, Any]]:
    return [r.body for r in dso.received if r.message == "group_capacity_compliance_error"]


async def test_a_station_that_ignores_its_limit_is_reported_once_per_episode(
    tmp_path: Path,
) -> None:
    clock = Clock()
    async with simulated_dso() as dso:
        cfg = site_config(tmp_path, dso.base_url, limit_a=64)
        # the DSO's episodes alone: CP2 is not flagged (the planner would count it at its draw)
        slow = ComplianceSettings(response_s=3600)
        async with running(cfg, clock, dso, in_force=slow) as (svc, central):
            assert svc.compliance_grace_s == 20  # two meter intervals
            await connect(central, clock, "CP1", "CP2")
            await start(central, clock, "CP1/1", "tx-1", 0.0)
            await start(central, clock, "CP2/1", "tx-2", 0.0)
            await settle(svc)
            # the DSO halves the grid's capacity
            await dso.send_forecast(
                "dso-grid",
                ForecastType.CONSUMPTION,
                step_at(clock() - timedelta(minutes=5), before=64, after=32),
            )
            await settle(svc)
            ctl = svc.controller
            assert ctl is not None
            limit1, limit2 = ctl.limit_now("CP1/1"), ctl.limit_now("CP2/1")
            assert limit1 is not None and limit2 is not None and limit1 + limit2 <= 32

            async def readings(cp2_amps: float, seconds: float, step: float = 10.0) -> None:
                # CP1 keeps its limit; CP2 draws what it likes
                for _ in range(int(seconds / step)):
                    clock.advance(step / 2)
                    await meter(central, clock, "CP1/1", "tx-1", limit1, None)
                    clock.advance(step / 2)
                    await meter(central, clock, "CP2/1", "tx-2", cp2_amps, None)

            await readings(limit2, 60)  # both keep their limits: nothing to say
            await readings(30.0, 10)  # a ramp transient shorter than the grace period
            await readings(limit2, 30)
            assert compliance_errors(dso) == []
            await readings(30.0, 120)  # CP2 ignores its limit for two minutes
            first = await dso.wait_for("group_capacity_compliance_error")
            await asyncio.sleep(0.3)
            [err] = compliance_errors(dso)
            assert err is first.body
            assert err["message"].startswith("dso-grid: site group grid: measured")
            assert "CP2/1 draws 30.0 A" in err["message"] and "CP1/1" not in err["message"]
            [block] = err["forecasted_blocks"]
            assert block["capacity"] == 32 and block["unit"] == "A"
            # panel (CP2 alone, 32 A) keeps its own capacity: no error for it
            assert all("panel" not in e["message"] for e in compliance_errors(dso))
            # back within the capacity, then over again: a second episode
            await readings(limit2, 30)
            await readings(30.0, 40)
            for _ in range(100):
                if len(compliance_errors(dso)) == 2:
                    break
                await asyncio.sleep(0.02)
            await asyncio.sleep(0.2)
            assert len(compliance_errors(dso)) == 2
            # the operator sees it in the audit log
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{svc.http_port}") as c:
                events = (await c.get("/api/events", headers=READ)).json()["events"]
            sent = [e for e in events if e["kind"] == "compliance_error"]
            assert len(sent) == 2 and sent[0]["subject"] == "grid"
            assert sent[0]["detail"]["connectors"] == ["CP2/1"]


# --- AdjustGroupCapacityForecast ---------------------------------------------------------


async def test_the_operator_asks_the_dso_for_more_capacity(tmp_path: Path) -> None:
    clock = Clock()
    async with simulated_dso() as dso:
        cfg = site_config(tmp_path, dso.base_url)
        async with running(cfg, clock, dso) as (svc, _central):
            start_at = clock() + timedelta(hours=1)
            body = {
                "capacity": 44,
                "unit": "KW",
                "start": start_at.isoformat(),
                "end": (start_at + timedelta(hours=2)).isoformat(),
            }
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{svc.http_port}") as c:
                r = await c.post("/api/groups/grid/adjust", json=body, headers=WRITE)
                assert r.status_code == 202, r.text
                assert r.json()["providers"] == 1 and r.json()["oscp_group_id"] == "dso-grid"
                got = await dso.wait_for("adjust_group_capacity_forecast")
                assert got.body["group_id"] == "dso-grid" and got.body["type"] == "CONSUMPTION"
                [block] = got.body["forecasted_blocks"]
                assert block["capacity"] == 44 and block["unit"] == "KW"
                assert block["phase"] == "ALL"
                assert datetime.fromisoformat(block["start_time"]) == start_at
                # audited under the token's name
                events = (await c.get("/api/events", headers=READ)).json()["events"]
                [audit] = [e for e in events if e["kind"] == "capacity_adjust_requested"]
                assert audit["subject"] == "grid" and audit["actor"] == "alice"
                assert audit["detail"]["oscp_group_id"] == "dso-grid"
                # errors: unknown group, a group the DSO does not know, no write token
                r = await c.post("/api/groups/nope/adjust", json=body, headers=WRITE)
                assert r.status_code == 404
                r = await c.post("/api/groups/aux/adjust", json=body, headers=WRITE)
                assert r.status_code == 409 and "oscp_group_id" in r.json()["detail"]
                r = await c.post("/api/groups/grid/adjust", json=body, headers=READ)
                assert r.status_code == 403
                r = await c.post(
                    "/api/groups/grid/adjust", json={**body, "unit": "KWH"}, headers=WRITE
                )
                assert r.status_code == 422
            await asyncio.sleep(0.2)
            adjusts = [x for x in dso.received if x.message == "adjust_group_capacity_forecast"]
            assert len(adjusts) == 1


async def test_adjust_without_a_dso_is_a_conflict(tmp_path: Path) -> None:
    clock = Clock()
    body = {"capacity": 80, "unit": "A", "end": (clock() + timedelta(hours=1)).isoformat()}
    # no capacity provider configured at all
    async with running(site_config(tmp_path, None), clock) as (svc, _central):
        assert svc.energy is None and svc.compliance is None
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{svc.http_port}") as c:
            r = await c.post("/api/groups/grid/adjust", json=body, headers=WRITE)
        assert r.status_code == 409 and "DSO" in r.json()["detail"]
    # configured, but not registered yet (its Register goes nowhere)
    unregistered = {
        "id": "dso",
        "base_url": "http://127.0.0.1:9/oscp/cp/2.0",
        "registration_token": "out-of-band-token-1",
    }
    cfg = site_config(tmp_path / "b", "http://unused", provider=unregistered)
    (tmp_path / "b").mkdir()
    async with running(cfg, clock) as (svc, _central):
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{svc.http_port}") as c:
            r = await c.post("/api/groups/grid/adjust", json=body, headers=WRITE)
        assert r.status_code == 409 and "registered" in r.json()["detail"]


# --- end to end: OCPP stations, one of which ignores its limit ------------------------------


@pytest.mark.slow
async def test_a_simulated_station_ignoring_its_limit_over_ocpp_reaches_the_dso(
    tmp_path: Path,
) -> None:
    import dataclasses

    from gridshare.peers.ev import EvSpec
    from gridshare.service import controller_settings

    async with simulated_dso() as dso:
        cfg = two_chargers_under_a_dso(dso.base_url, tmp_path)
        settings = dataclasses.replace(controller_settings(cfg), learn_settle_s=2.0)
        svc = Service(cfg, scheduler=False, settings=settings, oscp_measurement_interval_s=0.3)
        await svc.start()
        dso.fp_url = f"http://127.0.0.1:{svc.http_port}/oscp/fp/2.0"
        fleet = fleet_with_cp2_ignoring(cfg, svc.ocpp_port)
        try:
            await fleet.start()
            assert await fleet.wait_booted(10) == 2
            for cid in ("CP1/1", "CP2/1"):
                fleet.plug_in(cid, EvSpec(battery_kwh=80, soc_start=0.1, lag_s=0.3))
            # within 64 A both draw what they like: energy, and no error
            await reported_more_than(dso, "dso-grid", 0.0, timeout_s=15)
            assert compliance_errors(dso) == []
            # the DSO cuts the grid to 40 A: CP2 keeps drawing 32 A whatever it is offered
            now = datetime.now(UTC)
            await dso.send_forecast(
                "dso-grid", ForecastType.CONSUMPTION, step_at(now, before=40, after=40)
            )
            r = await dso.wait_for("group_capacity_compliance_error", timeout_s=20)
            assert "CP2/1 draws 32.0 A" in r.body["message"]
            assert "CP1/1" not in r.body["message"]
            await asyncio.sleep(3)  # the episode goes on: still one error
            assert len(compliance_errors(dso)) == 1
            values = [m["value"] for m in measurements(dso, "dso-grid")]
            assert values == sorted(values) and values[-1] > 0
        finally:
            await fleet.stop()
            await svc.stop()


async def reported_more_than(
    dso: SimulatedDso, group: str, kwh: float, timeout_s: float = 5.0
) -> Received:
    def hit(r: Received) -> bool:
        return r.body["group_id"] == group and any(m["value"] > kwh for m in r.body["measurements"])

    return await dso.wait_for("update_group_measurements", timeout_s, hit)


def test_energy_the_counter_never_saved_is_counted_from_the_store_after_a_crash(
    tmp_path: Path,
) -> None:
    from gridshare.dso_reports import EnergyCounter
    from gridshare.store import open_store

    site = site_config(tmp_path, "http://unused").site
    t = datetime(2026, 12, 1, 12, tzinfo=UTC)
    store = open_store(f"sqlite:///{tmp_path / 'crash.db'}")
    try:
        counter = EnergyCounter(site, store)
        counter.recover()
        for e in (
            SessionStarted("CP1/1", "tx-1", None, 100.0, t),
            MeterReading("CP1/1", t, transaction_id="tx-1", energy_wh=1100.0),
        ):
            store.record_event(e)
            counter.observe(e)
        assert counter.group_kwh("grid") == pytest.approx(1.0)
        # stored by the service, never seen by the counter (it died first)
        for unseen in (
            MeterReading("CP1/1", t, transaction_id="tx-1", energy_wh=2100.0),
            SessionEnded("tx-1", 2600.0, t, connector_id="CP1/1"),
            SessionStarted("CP2/1", "tx-2", None, 0.0, t),
            MeterReading("CP2/1", t, transaction_id="tx-2", energy_wh=700.0),
        ):
            store.record_event(unseen)
        again = EnergyCounter(site, store)
        again.recover()
        assert again.group_kwh("grid") == pytest.approx(2.5 + 0.7)
        assert again.group_kwh("panel") == pytest.approx(0.7)
        assert again.group_kwh("aux") == 0.0
        # the recovered session keeps counting from where the store left it
        again.observe(MeterReading("CP2/1", t, transaction_id="tx-2", energy_wh=1000.0))
        assert again.group_kwh("panel") == pytest.approx(1.0)
    finally:
        store.close()


def test_the_watch_counts_fresh_draws_only() -> None:
    from gridshare.dso_reports import ComplianceWatch
    from optimizer.problem import Capacity

    site = site_config(Path("/nonexistent"), "http://unused").site
    watch = ComplianceWatch(site, grace_s=20, stale_s=30)
    t = datetime(2026, 12, 1, 12, tzinfo=UTC)
    cap = Capacity({"grid": np.full(2, 40.0), "panel": np.full(2, 32.0)}, {})

    def at(s: float) -> datetime:
        return t + timedelta(seconds=s)

    def reading(cid: str, amps: float | None, s: float, tx: str | None = None) -> None:
        current = {} if amps is None else {"L1": amps, "L2": amps, "L3": amps}
        watch.observe(
            MeterReading(cid, at(s), transaction_id=tx, current_a=current, energy_wh=1.0), at(s)
        )

    reading("CP1/1", 25, 0, "tx-1")
    reading("CP2/1", 25, 0, "tx-2")
    assert watch.check(at(0), cap, lambda cid: 20.0) == []  # over, not for long yet
    reading("CP2/1", None, 15)  # energy only: CP2 still draws 25 A
    [finding] = watch.check(at(20), cap, lambda cid: 20.0)
    assert finding.group_id == "grid" and set(finding.connectors) == {"CP1/1", "CP2/1"}
    watch.reported("grid")
    assert watch.check(at(25), cap, lambda cid: 20.0) == []  # once per episode
    # CP1's session ends and its last reading goes with it: 25 A are within 40 A
    watch.observe(SessionEnded("tx-1", None, at(26), station_id="CP1"), at(26))
    per_line, _ = watch.measured(site.group_by_id["grid"], at(26))
    assert per_line == {"L1": 25, "L2": 25, "L3": 25}
    # a reading older than stale_s counts no more
    per_line, kw = watch.measured(site.group_by_id["grid"], at(31))
    assert per_line == {} and kw == 0


def test_two_stations_with_one_transaction_id_count_their_own_energy(tmp_path: Path) -> None:
    """A 2.0.1 station chooses its transaction ids: another station's session with the
    same id is another session, in the DSO's energy figures too."""
    from gridshare.dso_reports import EnergyCounter
    from gridshare.store import open_store

    site = site_config(tmp_path, "http://unused").site
    t = datetime(2026, 12, 1, 12, tzinfo=UTC)
    store = open_store(f"sqlite:///{tmp_path / 'same.db'}")
    try:
        counter = EnergyCounter(site, store)
        counter.recover()
        for e in (
            SessionStarted("CP1/1", "TX-SAME", None, 1000.0, t),
            SessionStarted("CP2/1", "TX-SAME", None, 5000.0, t),
            MeterReading("CP1/1", t, transaction_id="TX-SAME", energy_wh=1500.0),
            MeterReading("CP2/1", t, transaction_id="TX-SAME", energy_wh=5200.0),
            SessionEnded("TX-SAME", 1600.0, t, station_id="CP1"),
            MeterReading("CP2/1", t, transaction_id="TX-SAME", energy_wh=5300.0),
        ):
            counter.observe(e)
        assert counter.totals_wh["CP1/1"] == pytest.approx(600.0)
        assert counter.totals_wh["CP2/1"] == pytest.approx(300.0)
        counter.save()
        again = EnergyCounter(site, store)
        again.recover()  # CP2's session is still open in the saved state
        again.observe(MeterReading("CP2/1", t, transaction_id="TX-SAME", energy_wh=5400.0))
        assert again.totals_wh["CP2/1"] == pytest.approx(400.0)
        assert again.totals_wh["CP1/1"] == pytest.approx(600.0)
    finally:
        store.close()
