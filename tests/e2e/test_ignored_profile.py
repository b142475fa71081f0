"""A station that accepts its profile and then ignores it, over real sockets: it is
flagged (API, status, metric) within 30 s and its draw is reserved, so the
others are lowered and the group stays within its limit."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from gridshare.config import parse_config
from gridshare.peers.ev import EvSpec
from tests.e2e.test_live_site import Misbehaviour, eventually, live_site

pytestmark = pytest.mark.slow

LIMIT_A = 48.0
CARS = ["CP1/1", "CP2/1", "CP3/1"]


def config(tmp_path: Path) -> Any:
    data: dict[str, Any] = {
        "site": {"name": "e2e", "slot_minutes": 15, "horizon_hours": 2},
        "groups": [{"id": "grid", "limit_a": LIMIT_A, "fallback_limit_a": LIMIT_A}],
        "chargers": [
            {"id": f"CP{i}", "group": "grid", "connectors": [{"id": 1, "max_current_a": 32}]}
            for i in (1, 2, 3)
        ],
        "server": {"host": "127.0.0.1", "ocpp_port": 0, "http_port": 0, "meter_interval_s": 1},
        "controller": {"coalesce_s": 0.02, "pin_s": 5},
        "api": {"open_reads_on_loopback": True},
    }
    return parse_config(data, "e2e.toml", tmp_path / "e2e.toml", environ={})


@pytest.mark.parametrize(
    ("version", "hidden"),
    [("1.6", False), ("2.0.1", True), ("2.1", True)],
    ids=["1.6-composite-read-back", "2.0.1-meter-only", "2.1-meter-only"],
)
async def test_a_station_ignoring_its_profile_is_flagged_and_its_draw_reserved(
    tmp_path: Path, version: str, hidden: bool
) -> None:
    odd: dict[str, Misbehaviour] = {"CP3": {"ignores_limits": True, "hides_ignoring": hidden}}
    async with live_site(config(tmp_path), version=version, misbehaving=odd) as (svc, fleet):
        watch = svc.in_force
        assert watch is not None
        for cid in CARS:
            fleet.plug_in(cid, EvSpec(battery_kwh=80, soc_start=0.1, lag_s=0.3))
        plugged = time.monotonic()
        await eventually(lambda: "CP3/1" in watch.flagged(), timeout_s=30)
        detected_s = time.monotonic() - plugged
        assert detected_s < 30
        assert set(watch.flagged()) == {"CP3/1"}
        evidence = watch.tracker.flags["CP3/1"].evidence
        assert {e.value for e in evidence} >= ({"meter"} if hidden else {"composite"})

        # the others are lowered: what they are offered plus what CP3 draws fits the group
        def within() -> bool:
            others = fleet.limit_in_force("CP1/1") + fleet.limit_in_force("CP2/1")
            return others + max(fleet.draw("CP3/1").values()) <= LIMIT_A + 1e-6

        await eventually(within, timeout_s=10)
        ctl = svc.controller
        assert ctl is not None
        _, fixed = ctl.problem(ctl.clock())
        assert fixed["CP3/1"] >= 31.0  # reserved at what it really draws
        await asyncio.sleep(2)  # the cars follow their lowered limits
        drawn = sum(max(fleet.draw(cid).values()) for cid in CARS)
        assert drawn <= LIMIT_A + 1.0, f"the group draws {drawn} A"
        assert within()

        base = f"http://127.0.0.1:{svc.http_port}"
        async with httpx.AsyncClient() as client:
            stations = (await client.get(f"{base}/api/stations")).json()
            flags = {
                c["connector_id"]: c["not_following"] for s in stations for c in s["connectors"]
            }
            assert flags["CP1/1"] is None and flags["CP2/1"] is None
            assert "over its limit" in flags["CP3/1"]
            status = (await client.get(f"{base}/api/status")).json()
            assert set(status["not_following"]) == {"CP3/1"}
            metrics = (await client.get(f"{base}/metrics")).text
            assert 'gridshare_connector_not_following{connector="CP3/1"} 1.0' in metrics
            assert 'connector="CP1/1"' not in metrics.split("gridshare_connector_not_following")[-1]
        # a composite read-back was asked of the cooperative stations, and they passed it
        assert not watch.unsupported
        events = (
            [e for e in svc.store.audit_log(200) if e["kind"] == "profile_ignored"]
            if svc.store
            else []
        )
        assert [e["subject"] for e in events] == ["CP3/1"]
        print(f"{version}: detected in {detected_s:.1f} s")


async def test_a_group_over_its_dso_capacity_names_the_station_ignoring_its_profile(
    tmp_path: Path,
) -> None:
    import dataclasses
    from datetime import UTC, datetime

    from forecasts.model import ForecastType
    from gridshare.peers.dso import step_at
    from gridshare.service import Service, controller_settings
    from tests.service.test_oscp_wiring import (
        compliance_errors,
        fleet_with_cp2_ignoring,
        simulated_dso,
        two_chargers_under_a_dso,
    )

    async with simulated_dso() as dso:
        cfg = two_chargers_under_a_dso(dso.base_url, tmp_path)
        settings = dataclasses.replace(controller_settings(cfg), learn_settle_s=2.0)
        # the DSO hears of an excess after the car's response time: by then it is flagged
        svc = Service(cfg, scheduler=False, settings=settings, compliance_grace_s=15)
        await svc.start()
        dso.fp_url = f"http://127.0.0.1:{svc.http_port}/oscp/fp/2.0"
        fleet = fleet_with_cp2_ignoring(cfg, svc.ocpp_port)
        try:
            await fleet.start()
            assert await fleet.wait_booted(10) == 2
            for cid in ("CP1/1", "CP2/1"):
                fleet.plug_in(cid, EvSpec(battery_kwh=80, soc_start=0.1, lag_s=0.3))
            await asyncio.sleep(2)
            watch = svc.in_force
            assert watch is not None and watch.flagged() == {}
            # the DSO cuts the grid to 24 A: CP2 keeps drawing 32 A, CP1 is stopped for it
            now = datetime.now(UTC)
            await dso.send_forecast(
                "dso-grid", ForecastType.CONSUMPTION, step_at(now, before=24, after=24)
            )
            await eventually(lambda: "CP2/1" in watch.flagged(), timeout_s=15)
            await eventually(lambda: fleet.limit_in_force("CP1/1") == 0, timeout_s=5)
            r = await dso.wait_for("group_capacity_compliance_error", timeout_s=30)
            assert "CP2/1 draws 32.0 A" in r.body["message"]
            assert r.body["message"].endswith("ignoring their profile: CP2/1")
            assert len(compliance_errors(dso)) == 1
        finally:
            await fleet.stop()
            await svc.stop()
