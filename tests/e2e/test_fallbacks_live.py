"""Fallback limits over real sockets: stations that refuse or never answer their
fallback limit, in OCPP 2.0.1 too, and idle connectors counted from boot."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from gridshare.peers.ev import EvSpec
from tests.e2e.test_live_site import (
    CARS,
    Misbehaviour,
    Watch,
    eventually,
    live_site,
    site_config,
)

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("version", ["1.6", "2.0.1"])
async def test_refused_fallbacks_leave_the_others_what_is_left(tmp_path: Path, version: str):
    cfg = site_config(tmp_path, stations=4, limit_a=96)
    odd: dict[str, Misbehaviour] = {
        "CP3": {"never_answers_profiles": True},
        "CP4": {"rejects_profiles": True},
    }
    async with live_site(cfg, version=version, misbehaving=odd) as (svc, fleet):
        watch = Watch(fleet, lambda: 96.0, CARS)
        # idle: CP3 and CP4 hold their maximum, CP1 and CP2 share the rest, once the
        # refusal and the silence are known (the silence after the call timeout)
        await eventually(
            lambda: fleet.limit_in_force("CP1/1") + fleet.limit_in_force("CP2/1") <= 32 + 1e-6,
            timeout_s=15,
        )
        limits = watch.sample()
        assert limits["CP3/1"] == limits["CP4/1"] == 32
        assert limits["CP1/1"] + limits["CP2/1"] <= 32 + 1e-6
        sampler = asyncio.create_task(watch.run())
        try:
            fleet.plug_in("CP1/1", EvSpec(battery_kwh=80, soc_start=0.1, lag_s=0.3))
            fleet.plug_in("CP3/1", EvSpec(battery_kwh=80, soc_start=0.1, lag_s=0.3))
            await asyncio.sleep(2)
            # the idle CP2 keeps its fallback; CP1 gets no more than the rest
            assert fleet.limit_in_force("CP1/1") + fleet.limit_in_force("CP2/1") <= 32 + 1e-6
            # CP3's draw is fixed load for the planner, whatever it was sent
            ctl = svc.controller
            assert ctl is not None
            _, fixed = ctl.problem(ctl.clock())
            assert fixed["CP3/1"] == 32 and fixed["CP4/1"] == 32
            fleet.unplug("CP1/1")
            await asyncio.sleep(1)
        finally:
            sampler.cancel()
        assert watch.samples > 20
        assert watch.worst <= 1e-6, f"limits in force exceeded the grid by {watch.worst} A"
