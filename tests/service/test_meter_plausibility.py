"""Meter values no meter can show are neither stored as measured nor used to
learn or plan: a measurement may only lower a limit (design invariant 5)."""

from __future__ import annotations

import math
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from gridshare.store import SqliteStore
from ocpp_adapter.events import MeterReading
from tests.service.fakes import FakeGateway
from tests.service.sites import small_depot
from tests.service.test_controller import Clock, Rig


@pytest.fixture
async def rig(tmp_path: Path) -> AsyncIterator[Rig]:
    site = small_depot(3, limit_a=48)
    store = SqliteStore(tmp_path / "g.db")
    r = Rig(site, store, FakeGateway(site), Clock())
    await r.ctl.start(scheduler=False)
    yield r
    await r.ctl.stop()
    store.close()


@pytest.mark.parametrize("wild", [1e308, math.inf, math.nan, 64.1, -3.0])
async def test_a_wild_current_does_not_release_a_learned_cap(rig: Rig, wild: float):
    await rig.boot("CP1", "CP2", "CP3")
    for i in (1, 2, 3):
        await rig.start(f"CP{i}/1", f"t{i}")
    for _ in range(2):
        rig.clock.advance(10)
        await rig.meter("CP1/1", {"L1": 10.0, "L2": 10.0, "L3": 10.0})
    await rig.settle()
    assert rig.ctl.sessions["CP1/1"].cap_a == 11.0
    rig.clock.advance(10)
    await rig.ctl.on_event(
        MeterReading(
            "CP1/1",
            rig.clock(),
            current_a={"L1": wild, "L2": wild, "L3": wild},
            total_power_w=wild * 690,
            energy_wh=wild,
        )
    )
    await rig.settle()
    # 2 × the connector's 32 A is the most it can carry: beyond, or not a current at all
    assert rig.ctl.sessions["CP1/1"].cap_a == 11.0
    assert rig.limit("CP1/1") == 11.0
    last = rig.store.meter_last("CP1/1")
    assert last is not None and last["current_a"] == {} and last["power_w"] is None


async def test_a_plausible_reading_is_kept_whole(rig: Rig):
    r = MeterReading("CP1/1", rig.clock(), current_a={"L1": 63.9}, total_power_w=14_000.0)
    assert rig.ctl.plausible(r) is r
