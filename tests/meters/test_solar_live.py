"""Solar charging live: the service, real OCPP stations and two HTTP meters (the
building's load and the PV inverter's generation) on loopback.

What must hold: a session set to ``solar`` (PATCH, kept in the store) is
offered nothing while the meters show no surplus, and at most the surplus once
they show one; a ``fast`` session beside it charges as the limits allow.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
import pytest

from gridshare.config import GridshareConfig, parse_config
from gridshare.peers.ev import EvSpec
from gridshare.peers.fleet import StationFleet
from tests.meters.live import eventually, live_building

pytestmark = pytest.mark.slow

WRITE = "meter-write-token"
VOLTS = 230.0
LOAD_A = 2.0


def solar_config(tmp_path: Path) -> GridshareConfig:
    http = {"type": "http"}
    data: dict[str, Any] = {
        "site": {"name": "pv", "slot_minutes": 15, "horizon_hours": 2},
        "groups": [{"id": "grid", "limit_a": 64, "fallback_limit_a": 64}],
        "chargers": [
            {"id": f"CP{i}", "group": "grid", "connectors": [{"id": 1, "max_current_a": 32}]}
            for i in (1, 2)
        ],
        "meters": [
            {
                "id": "house",
                "group": "grid",
                "measures": "load",
                "stale_after_s": 5,
                "max_non_ev_a": 10,
                "source": http,
            },
            {
                "id": "inverter",
                "group": "grid",
                "measures": "generation",
                "stale_after_s": 5,
                "source": http,
            },
        ],
        "pv": {"group": "grid", "latitude": 52.4, "longitude": 4.9, "tilt": 30, "kwp": 15},
        "server": {"host": "127.0.0.1", "ocpp_port": 0, "http_port": 0, "meter_interval_s": 1},
        "controller": {"coalesce_s": 0.02, "pin_s": 5},
        "api": {
            "open_reads_on_loopback": True,
            "tokens": [{"name": "meter", "token": WRITE, "role": "write"}],
        },
    }
    return parse_config(data, "pv.toml", tmp_path / "pv.toml", environ={})


async def post_readings(http: httpx.AsyncClient, generation: dict[str, float]) -> None:
    """Both meters every 0.3 s (fresher than their 5 s staleness)."""
    auth = {"Authorization": f"Bearer {WRITE}"}
    while True:
        load = {line: LOAD_A for line in ("L1", "L2", "L3")}
        for meter, body in (("house", load), ("inverter", dict(generation))):
            r = await http.post(
                f"/api/meters/{meter}/readings", json={"current_a": body}, headers=auth
            )
            assert r.status_code == 202, r.text
        await asyncio.sleep(0.3)


def surplus_a_per_line(generation: dict[str, float]) -> float:
    """What a three-phase car may take from the surplus (it loads every line)."""
    return (sum(generation.values()) - 3 * LOAD_A) / 3


async def test_a_solar_session_draws_only_the_surplus(tmp_path: Path) -> None:
    cfg = solar_config(tmp_path)
    generation = {"L1": 0.0, "L2": 0.0, "L3": 0.0}
    async with (
        live_building(cfg, cars=["CP1/1", "CP2/1"]) as (svc, fleet),
        httpx.AsyncClient(base_url=svc.http_url) as http,
    ):
        poster = asyncio.create_task(post_readings(http, generation))
        try:
            await _run(svc, fleet, http, generation)
        finally:
            poster.cancel()
            await asyncio.gather(poster, return_exceptions=True)


async def _run(svc: Any, fleet: StationFleet, http: httpx.AsyncClient, generation: dict) -> None:
    for cid in ("CP1/1", "CP2/1"):
        fleet.plug_in(cid, EvSpec(battery_kwh=80, soc_start=0.1, lag_s=0.3))
    await eventually(lambda: len(svc.controller.state.sessions) == 2, 10)
    solar = svc.controller.state.sessions["CP1/1"].session_id
    auth = {"Authorization": f"Bearer {WRITE}"}
    r = await http.patch(f"/api/sessions/{solar}", json={"charge_mode": "solar"}, headers=auth)
    assert r.status_code == 200, r.text
    assert r.json()["session"]["charge_mode"] == "solar"
    assert svc.store.session_by_id(solar).charge_mode == "solar"  # kept, as the store has it
    bad = await http.patch(f"/api/sessions/{solar}", json={"charge_mode": "sun"}, headers=auth)
    assert bad.status_code == 422 and "'fast', 'solar' or 'min+solar'" in bad.text
    assert svc.store.session_by_id(solar).charge_mode == "solar"  # unchanged
    # no surplus: the solar car is paused, the fast one charges
    await eventually(lambda: fleet.limit_in_force("CP2/1") >= 20.0, 10)
    await eventually(lambda: fleet.limit_in_force("CP1/1") == 0.0, 10)
    # the car follows (its charger's lag decays toward 0)
    await eventually(lambda: max(fleet.draw("CP1/1").values()) < 0.1, 5)
    for _ in range(10):
        assert fleet.limit_in_force("CP1/1") == 0.0
        assert max(fleet.draw("CP1/1").values()) < 0.1
        await asyncio.sleep(0.1)
    # the inverter gives 12 A per line, the house takes 2: 10 A per line to spare
    generation.update({"L1": 12.0, "L2": 12.0, "L3": 12.0})
    spare = surplus_a_per_line(generation)
    await eventually(lambda: fleet.limit_in_force("CP1/1") >= spare - 1.0, 10)
    for _ in range(10):
        assert fleet.limit_in_force("CP1/1") <= spare + 1e-6
        await asyncio.sleep(0.1)
    # the sun goes: paused again
    generation.update({"L1": 0.0, "L2": 0.0, "L3": 0.0})
    await eventually(lambda: fleet.limit_in_force("CP1/1") == 0.0, 10)
    sessions = (await http.get("/api/sessions", params={"state": "active"})).json()
    assert {s["session_id"]: s["charge_mode"] for s in sessions}[solar] == "solar"
