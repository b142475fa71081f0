"""The fast re-dispatch of the slot in force: within every limit, the minimum-
current rule kept, lowerings before raisings — alone on random sites, and
through the controller ahead of the full re-plan."""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gridshare.rollout import EPS, LoadModel
from gridshare.site.fast_dispatch import SteerableCar, redispatch_slot
from gridshare.store import SqliteStore
from optimizer.problem import Capacity, TimeGrid
from tests.service.fakes import FakeGateway
from tests.service.sites import NOW, random_sites, small_depot
from tests.service.test_controller import SETTINGS, Clock, Rig

STEPS = (0.0, 6.0, 8.0, 10.0, 13.0, 16.0, 20.0, 25.0, 32.0)


@st.composite
def situations(draw: st.DrawFn) -> dict[str, object]:
    """A site, what every connector may draw, the cars the re-dispatch may move
    (some taking less than they are offered now), and a capacity that the
    limits in force fit in most families (and exceed in a few)."""
    site = draw(random_sites(max_stations=6))
    grid = TimeGrid.covering(NOW, 15, 1)
    model = LoadModel.build(site)
    count_idle = draw(st.booleans())
    worst: dict[str, np.ndarray] = {}
    reserve: dict[str, float] = {}
    cars: dict[str, SteerableCar] = {}
    for cid, info in site.connectors.items():
        mx = info.max_current_a
        floor = info.connector.min_current_a
        kind = draw(st.sampled_from(["car", "car", "car", "idle", "other"]))
        fallback = float(draw(st.sampled_from([0.0, floor, mx]))) if count_idle else 0.0
        if kind != "car":
            # an idle connector at its fallback, or one the plan does not steer
            v = draw(st.floats(0, mx)) if kind == "other" else fallback
            worst[cid] = np.full(grid.slots, round(v, 1))
            continue
        steps = draw(st.sampled_from([None, tuple(s for s in STEPS if s <= mx)]))
        levels = [0.0, *[s for s in (steps or STEPS) if floor <= s <= mx]]
        profile = np.array([draw(st.sampled_from(levels)) for _ in range(grid.slots)])
        if steps is None and draw(st.booleans()):
            profile = np.round(np.clip(profile + draw(st.floats(0, 3)), 0, mx), 1)
            profile[profile < floor] = 0.0
        top = draw(st.sampled_from([mx, mx, float(draw(st.integers(1, int(mx))))]))
        cars[cid] = SteerableCar(
            profile=profile,
            top_a=top,
            floor_a=floor,
            steps=steps,
            priority=draw(st.sampled_from([1.0, 2.0])),
            drawing=draw(st.sampled_from([True, True, False])),
        )
        reserve[cid] = fallback
        worst[cid] = np.minimum(np.maximum(profile, fallback), mx)
    load = model.load(worst, grid.slots)
    slack = np.array(
        [[draw(st.sampled_from([-4.0, 0.0, 0.0, 3.0, 7.5, 40.0])) for _ in load[0]] for _ in load]
    )
    cap = load + slack
    return {
        "tops": {cid: info.max_current_a for cid, info in site.connectors.items()},
        "grid": grid,
        "model": model,
        "worst": worst,
        "reserve": reserve,
        "cars": cars,
        "cap": cap,
        "min_change": draw(st.sampled_from([0.5, 1.0, 2.0])),
    }


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(situations())
def test_the_redispatch_never_exceeds_a_limit_and_keeps_the_minimum_current(
    sit: dict[str, object],
) -> None:
    grid: TimeGrid = sit["grid"]  # type: ignore[assignment]
    model: LoadModel = sit["model"]  # type: ignore[assignment]
    worst: dict[str, np.ndarray] = sit["worst"]  # type: ignore[assignment]
    reserve: dict[str, float] = sit["reserve"]  # type: ignore[assignment]
    cars: dict[str, SteerableCar] = sit["cars"]  # type: ignore[assignment]
    cap: np.ndarray = sit["cap"]  # type: ignore[assignment]
    min_change: float = sit["min_change"]  # type: ignore[assignment]
    tops: dict[str, float] = sit["tops"]  # type: ignore[assignment]
    slot = 0
    out = redispatch_slot(slot, worst, reserve, cars, model, cap, min_change)
    assert not set(out.lowerings) & set(out.raisings)
    after = dict(worst)
    for cid, new in out.targets.items():
        car = cars[cid]
        old = car.profile
        v = float(new[slot])
        # the minimum-current rule, the car's maximum, an allowed step
        assert v <= EPS or v >= car.floor_a - EPS
        assert v <= max(car.top_a, car.floor_a, float(old[slot])) + EPS
        if car.steps is not None:
            assert any(abs(v - s) <= EPS for s in car.steps)
        if cid in out.lowerings:
            assert np.all(new <= old + EPS) and v < old[slot] - EPS
            assert v >= min(car.top_a, float(old[slot])) - STEP_TOL  # what the car takes
        else:
            assert np.array_equal(np.delete(new, slot), np.delete(old, slot))
            assert v >= old[slot] + min_change - EPS and old[slot] >= car.floor_a - EPS
            assert v <= car.top_a + EPS
        after[cid] = np.minimum(np.maximum(new, reserve[cid]), tops[cid])
    before = model.load(worst, grid.slots)
    load = model.load(after, grid.slots)
    # every family in every slot: within capacity, or no more than it was
    bound = np.maximum(cap, before) + 1e-6
    assert np.all(load <= bound)
    # the worst case of no connector went up but where a raise is counted
    for cid in worst:
        if cid not in out.raisings:
            assert np.all(after[cid] <= worst[cid] + EPS)


STEP_TOL = 0.1 + EPS
"""A lowering goes to what the car takes rounded up to the 0.1 A of a limit."""


def test_the_freed_current_goes_to_one_car_in_full_not_spread_under_the_hysteresis():
    site = small_depot(4, limit_a=64)
    grid = TimeGrid.covering(NOW, 15, 1)
    model = LoadModel.build(site)
    cars = {
        cid: SteerableCar(np.full(grid.slots, 16.0), 32.0 if cid != "CP1/1" else 10.0, 6.0)
        for cid in site.connectors
    }
    worst = {cid: c.profile for cid, c in cars.items()}
    cap = model.capacity(site, Capacity.static(site, grid), grid)
    out = redispatch_slot(0, worst, {}, cars, model, cap)
    assert list(out.lowerings) == ["CP1/1"] and out.lowerings["CP1/1"][0] == 10.0
    assert len(out.raisings) == 1
    (raised,) = out.raisings.values()
    assert raised[0] == pytest.approx(22.0) and np.all(raised[1:] == 16.0)


async def test_the_controller_hands_freed_current_out_before_the_full_replan(tmp_path: Path):
    """With the full re-plan held back (a long coalescing wait), a car taking
    less is lowered and its share raised on another car at once; nothing ever
    exceeds the group; the full re-plan then follows."""
    site = small_depot(3, limit_a=48)
    store = SqliteStore(tmp_path / "g.db")
    slow = dataclasses.replace(SETTINGS, coalesce_s=0.6)
    rig = Rig(site, store, FakeGateway(site), Clock(), settings=slow)
    await rig.ctl.start(scheduler=False)
    try:
        await rig.boot("CP1", "CP2", "CP3")
        for i in (1, 2, 3):
            await rig.start(f"CP{i}/1", f"t{i}")
        assert [rig.limit(f"CP{i}/1") for i in (1, 2, 3)] == [16, 16, 16]
        plans, since = rig.ctl.plans, len(rig.gw.snapshots)
        runs = rig.ctl.fast.runs
        for _ in range(2):
            rig.clock.advance(10)
            await rig.meter("CP1/1", {"L1": 10.0, "L2": 10.0, "L3": 10.0})
        for _ in range(100):
            if rig.ctl.fast.runs > runs and not rig.ctl.fast.busy():
                break
            await asyncio.sleep(0.01)
        assert rig.ctl.plans == plans  # the full re-plan is still waiting
        assert rig.limit("CP1/1") == 11.0
        assert sorted([rig.limit("CP2/1"), rig.limit("CP3/1")]) == [16.0, 21.0]
        # the lowering was answered before the raising went out
        log = [(sid, spec.periods[0].limit_a) for _, sid, _, spec, _ in rig.gw.log[-2:]]
        assert log[0] == ("CP1", 11.0)
        assert rig.excess(since) == 0.0
        await rig.settle()
        assert rig.ctl.plans == plans + 1
        assert rig.limit("CP1/1") == 11.0
        assert rig.limit("CP2/1") + rig.limit("CP3/1") == pytest.approx(37.0, abs=0.2)
        assert rig.excess(since) == 0.0
    finally:
        await rig.ctl.stop()
        store.close()


async def test_the_fast_redispatch_reads_the_operators_limit_in_force_now(tmp_path: Path):
    """A group limit lowered since the last plan: the freed current is not given
    out above it (the full re-plan, still waiting, lowers the others)."""
    site = small_depot(3, limit_a=48)
    store = SqliteStore(tmp_path / "g.db")
    slow = dataclasses.replace(SETTINGS, coalesce_s=0.6)
    rig = Rig(site, store, FakeGateway(site), Clock(), settings=slow)
    await rig.ctl.start(scheduler=False)
    try:
        await rig.boot("CP1", "CP2", "CP3")
        for i in (1, 2, 3):
            await rig.start(f"CP{i}/1", f"t{i}")
        plans, runs = rig.ctl.plans, rig.ctl.fast.runs
        rig.ctl.set_group_limit("grid", limit_a=40)
        for _ in range(2):
            rig.clock.advance(10)
            await rig.meter("CP1/1", {"L1": 10.0, "L2": 10.0, "L3": 10.0})
        for _ in range(100):
            if rig.ctl.fast.runs > runs and not rig.ctl.fast.busy():
                break
            await asyncio.sleep(0.01)
        assert rig.ctl.plans == plans
        assert rig.limit("CP1/1") == 11.0  # lowered: always safe
        assert rig.limit("CP2/1") == rig.limit("CP3/1") == 16.0  # 11 + 16 + 16 > 40: no raise
        await rig.settle()
        assert rig.limit("CP1/1") + rig.limit("CP2/1") + rig.limit("CP3/1") <= 40 + 1e-6
    finally:
        await rig.ctl.stop()
        store.close()
