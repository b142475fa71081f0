"""V2X end to end: the service and simulated 2.1 stations over loopback. Under a DSO
cut, a bidirectional car is discharged so a car leaving soon gets more than the
cut alone allows, while what is in force at the stations — the limits, a
discharge as its setpoint — never sums above the cut (sampled throughout)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from gridshare.config import parse_config
from gridshare.peers import v2x
from gridshare.peers.ev import EvSpec
from tests.e2e.test_live_site import DSO_TOKEN, eventually, live_site

pytestmark = pytest.mark.slow

CUT_A = 16.0
CARS = ("CP1/1", "CP2/1")


def config(tmp_path: Path) -> Any:
    data: dict[str, Any] = {
        "site": {"name": "v2x", "slot_minutes": 15, "horizon_hours": 8},
        "groups": [{"id": "grid", "limit_a": 64, "fallback_limit_a": 32, "oscp_group_id": "g"}],
        "chargers": [
            {"id": f"CP{i}", "group": "grid", "connectors": [{"id": 1, "max_current_a": 32}]}
            for i in (1, 2)
        ],
        "server": {"host": "127.0.0.1", "ocpp_port": 0, "http_port": 0, "meter_interval_s": 1},
        # a discharge is room only where an unplugging car is not reserved against
        "controller": {"coalesce_s": 0.02, "pin_s": 5, "reserve_for_arrivals": False},
        "v2x": {"enabled": True, "degradation_cost_per_kwh": 0.05},
        "oscp": {
            "capacity_providers": [
                {
                    "id": "dso",
                    "base_url": "http://127.0.0.1:9/oscp/cp/2.0",
                    "token_to_us": DSO_TOKEN,
                    "token_to_them": "token-we-present-v2x",
                    "heartbeat_interval_s": 3600,
                }
            ]
        },
    }
    return parse_config(data, "v2x.toml", tmp_path / "v2x.toml", environ={})


def cut(start: datetime) -> dict[str, Any]:
    block = {
        "capacity": CUT_A,
        "phase": "ALL",
        "unit": "A",
        "start_time": start.isoformat(),
        "end_time": (start + timedelta(hours=1)).isoformat(),
    }
    return {"group_id": "g", "type": "CONSUMPTION", "forecasted_blocks": [block]}


async def test_a_discharging_car_keeps_the_group_under_a_dso_cut(tmp_path: Path) -> None:
    async with live_site(config(tmp_path), version="2.1") as (svc, fleet):
        now = datetime.now(UTC)
        url = f"http://127.0.0.1:{svc.http_port}/oscp/fp/2.0/update_group_capacity_forecast"
        headers = {"Authorization": f"Token {DSO_TOKEN}", "X-Request-ID": "v2x-1"}
        async with httpx.AsyncClient() as client:
            r = await client.post(url, json=cut(now - timedelta(minutes=1)), headers=headers)
            assert r.status_code == 204, r.text
        capacity = 32.0  # the fallback until the cut is planned, then the cut

        worst, samples = -float("inf"), 0

        async def watch() -> None:
            nonlocal worst, samples
            while True:
                net = sum(v2x.net_limit_in_force(fleet, c) for c in CARS)
                worst = max(worst, net - capacity)
                samples += 1
                await asyncio.sleep(0.02)

        await eventually(lambda: sum(fleet.limit_in_force(c) for c in CARS) <= CUT_A, 5)
        capacity = CUT_A
        sampler = asyncio.create_task(watch())
        try:
            # a bidirectional car staying all evening, a car leaving in an hour
            fleet.plug_in(
                "CP1/1",
                EvSpec(battery_kwh=60, soc_start=0.8, max_discharge_a=16, lag_s=0.3),
                departure=now + timedelta(hours=7),
                energy_wh=2000,
            )
            fleet.plug_in(
                "CP2/1",
                EvSpec(battery_kwh=60, soc_start=0.2, lag_s=0.3),
                departure=now + timedelta(hours=1),
                energy_wh=20_000,
            )
            # the leaving car gets more than the cut alone, as far as the other feeds back
            try:
                await eventually(lambda: fleet.limit_in_force("CP2/1") > CUT_A + 4, timeout_s=40)
            except AssertionError:
                ctl = svc.controller
                assert ctl is not None
                seen = {c: v2x.net_limit_in_force(fleet, c) for c in CARS}
                built = ctl.problems.build(ctl.clock(), ctl.monotonic()).problem
                book = ctl.book.get("CP1/1")
                raise AssertionError(
                    f"in force {seen}; plan discharge {ctl.plan and ctl.plan.discharge_a}; "
                    f"CP2 {ctl.plan and ctl.plan.schedule('CP2/1')[:3]}; "
                    f"demands {[d.v2x for d in built.sessions]}; "
                    f"book {book.accepted} {book.uncertain}; last rollout {ctl.last_report}"
                ) from None
            await eventually(lambda: v2x.exported_wh(fleet, "CP1/1") > 0, timeout_s=5)
            draw = {c: sum(fleet.draw(c).values()) / 3 for c in CARS}
            assert draw["CP1/1"] < 0 < draw["CP2/1"]
            assert draw["CP1/1"] + draw["CP2/1"] <= CUT_A + 0.5
            await asyncio.sleep(1.0)
        finally:
            sampler.cancel()
            await asyncio.gather(sampler, return_exceptions=True)
        assert samples > 50
        assert worst <= 1e-6, worst
