"""Fallback (TxDefault) limits count as limits in force: when a transaction ends,
and at stations that refuse or do not answer their fallback limit.

The fake stations here count every connector, idle ones too (``count_idle``):
an idle connector's limit is what a car plugging in, or a transaction that just
ended, gets before any plan can follow.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from gridshare.controller import ControllerSettings
from gridshare.rollout import (
    LimitBook,
    LimitSchedule,
    LoadModel,
    PinReason,
    fallback_limits,
    run_rollout,
)
from gridshare.store import SqliteStore
from ocpp_adapter.events import (
    ChargingLimitSpec,
    CommandOutcome,
    CommandResult,
    LimitPurpose,
    SessionEnded,
    StationBooted,
)
from optimizer.problem import Capacity, TimeGrid
from optimizer.site import Site
from tests.service.fakes import Behaviour, FakeGateway, worst_excess
from tests.service.sites import NOW, make_site, small_depot
from tests.service.test_controller import STRICT, Clock, Rig


def site_sum(rig: Rig) -> float:
    return sum(rig.limit(cid) for cid in rig.site.connectors)


@pytest.fixture
async def depot(tmp_path: Path) -> AsyncIterator[Rig]:
    site = small_depot(3, limit_a=48)
    store = SqliteStore(tmp_path / "g.db")
    r = Rig(site, store, FakeGateway(site, count_idle=True), Clock(), STRICT)
    await r.ctl.start(scheduler=False)
    yield r
    await r.ctl.stop()
    store.close()


# --- a departure ------------------------------------------------------------------


async def test_a_capped_car_leaving_falls_back_to_what_was_reserved_for_it(depot: Rig):
    r, gw = depot, depot.gw
    await r.boot("CP1", "CP2", "CP3")
    booted = len(gw.snapshots)  # before, the stations know no limit at all
    for i in (1, 2, 3):
        await r.start(f"CP{i}/1", f"t{i}")
    assert [r.limit(f"CP{i}/1") for i in (1, 2, 3)] == [16, 16, 16]
    for _ in range(2):
        r.clock.advance(10)
        await r.meter("CP3/1", {"L1": 10.0, "L2": 10.0, "L3": 10.0})
    await r.settle()
    assert r.ctl.sessions["CP3/1"].cap_a == 11.0
    # CP3's own fallback came down to what the plan gives it, before the others rose
    assert gw.own_default["CP3/1"] <= 11.0
    log = [(sid, spec.purpose, spec.connector, spec) for _, sid, _, spec, _ in gw.log]
    own = max(i for i, x in enumerate(log) if x[:3] == ("CP3", LimitPurpose.TX_DEFAULT, 1))
    raises = [
        i
        for i, (sid, purpose, _, spec) in enumerate(log)
        if sid in ("CP1", "CP2") and purpose is LimitPurpose.TX and spec.periods[0].limit_a > 16
    ]
    assert raises and own < min(raises)
    assert r.limit("CP1/1") + r.limit("CP2/1") == pytest.approx(37.0, abs=0.2)
    # the car leaves: its fallback is in force at once, and it still fits
    since = len(gw.snapshots)
    gw.stop("CP3/1")
    assert site_sum(r) <= 48 + 1e-9
    await r.ctl.on_event(SessionEnded("t3", None, r.clock(), connector_id="CP3/1"))
    await r.settle()
    # the others come down first, then CP3's fallback is back at the station's share
    assert gw.own_default["CP3/1"] == 16.0
    assert r.limit("CP1/1") + r.limit("CP2/1") <= 32 + 1e-9
    assert r.excess(since) == 0.0
    assert r.excess(booted) == 0.0


async def test_a_session_gets_a_fallback_of_its_own_at_the_least_it_is_planned(
    tmp_path: Path,
):
    site = small_depot(2, limit_a=64)
    store = SqliteStore(tmp_path / "g.db")
    gw = FakeGateway(site, count_idle=True)
    r = Rig(site, store, gw, Clock(), STRICT)
    await r.ctl.start(scheduler=False)
    try:
        await r.boot("CP1", "CP2")
        await r.start("CP1/1", "t1")
        await r.start("CP2/1", "t2")
        assert r.limit("CP1/1") == r.limit("CP2/1") == 32
        plan = r.ctl.plan
        assert plan is not None
        for cid in ("CP1/1", "CP2/1"):
            lowest = math.floor(float(np.min(plan.schedule(cid))) * 10 + 1e-9) / 10
            if lowest < 32:  # its station's 32 A would not be within the plan
                assert gw.own_default[cid] == lowest
            else:
                assert cid not in gw.own_default
    finally:
        await r.ctl.stop()
        store.close()


# --- a cut announced for a later slot ---------------------------------------------------


async def test_fallbacks_already_fit_a_cut_announced_for_the_next_slot(tmp_path: Path):
    """A fallback limit is constant, and only a re-plan changes it: the first
    one after the cut begins comes too late for every connector on its fallback
    (idle, or a car whose session has not reached the plan yet). So the
    fallbacks in force before the boundary must already fit the cut."""
    site = small_depot(4, limit_a=96)
    now_slot = TimeGrid.covering(NOW, site.site.slot_minutes, 1)
    cut_start = now_slot.start + now_slot.step
    cut_end = cut_start + now_slot.step
    announced = False

    def dso(s: Site, grid: TimeGrid, now: datetime) -> Capacity:
        cut = np.array([announced and cut_start <= t < cut_end for t in grid.starts()])
        return Capacity.static(s, grid).lowered("grid", cut, limit_a=48.0, limit_kw=None)

    store = SqliteStore(tmp_path / "g.db")
    gw = FakeGateway(site, count_idle=True)
    r = Rig(site, store, gw, Clock(), STRICT)
    r.ctl.capacity_provider = dso
    await r.ctl.start(scheduler=False)
    try:
        await r.boot("CP1", "CP2", "CP3", "CP4")
        await r.ctl.replan_now("fallback installed")
        assert gw.default == {"CP1": 24.0, "CP2": 24.0, "CP3": 24.0, "CP4": 24.0}
        announced = True
        await r.ctl.replan_now("dso forecast")
        await r.start("CP1/1", "t1")
        gw.start("CP2/1")  # plugged in; its session has not reached the controller yet
        # the boundary passes before any re-plan: what the stations hold applies
        for at in (cut_start, cut_start + timedelta(minutes=5)):
            r.clock.t = at
            in_force = {cid: r.limit(cid) for cid in site.connectors}
            assert sum(in_force.values()) <= 48.0 + 1e-9, (at, in_force)
    finally:
        await r.ctl.stop()
        store.close()


# --- stations that refuse or do not answer their fallback ------------------------------


@pytest.mark.parametrize("silent", [Behaviour.SILENT_IGNORES, Behaviour.REJECT])
async def test_a_refused_fallback_leaves_the_others_what_is_left(tmp_path: Path, silent):
    site = small_depot(4, limit_a=96)
    store = SqliteStore(tmp_path / "g.db")
    gw = FakeGateway(site, count_idle=True)
    gw.behaviour = {"CP3": silent, "CP4": Behaviour.REJECT}
    r = Rig(site, store, gw, Clock(), STRICT)
    await r.ctl.start(scheduler=False)
    try:
        await r.boot("CP1", "CP2", "CP3", "CP4")
        # CP3 and CP4 may draw 32 A each: CP1 and CP2 share the other 32
        assert gw.default == {"CP1": 16.0, "CP2": 16.0}
        assert site_sum(r) <= 96
        for cid in ("CP3/1", "CP4/1"):
            assert r.ctl.book.pinned(r.ctl.monotonic())[cid] in (
                PinReason.NO_ANSWER,
                PinReason.REJECTED,
            )
        since = len(gw.snapshots)
        for i in (1, 2, 3, 4):
            await r.start(f"CP{i}/1", f"t{i}")
        # their draw is fixed load for the planner: no profile goes to them
        assert not [
            s for s in gw.sent_to("CP3") + gw.sent_to("CP4") if s.purpose is LimitPurpose.TX
        ]
        assert r.ctl.plan is not None
        assert r.limit("CP1/1") + r.limit("CP2/1") <= 32 + 1e-9
        assert r.excess(since) == 0.0
    finally:
        await r.ctl.stop()
        store.close()


async def test_a_fallback_on_its_way_counts_as_the_maximum(tmp_path: Path):
    site = small_depot(4, limit_a=96)
    store = SqliteStore(tmp_path / "g.db")
    gw = FakeGateway(site, count_idle=True, behaviour={"CP3": Behaviour.HANG})
    settings = ControllerSettings(coalesce_s=0.005, learn_settle_s=0.0, answer_timeout_s=30)
    r = Rig(site, store, gw, Clock(), settings)
    await r.ctl.start(scheduler=False)
    try:
        for sid in ("CP1", "CP2", "CP3", "CP4"):
            await r.ctl.on_event(StationBooted(sid, "acme", "x", r.clock()))
        for _ in range(100):
            await asyncio.sleep(0.02)
            if gw.default.get("CP1") == gw.default.get("CP2") == gw.default.get("CP4") == 21.3:
                break
        # CP3 has not answered (yet): it may draw 32 A, the others share 64 A
        assert "CP3" in r.ctl.fallback.pending
        assert {k: v for k, v in gw.default.items() if k != "CP3"} == {
            "CP1": 21.3,
            "CP2": 21.3,
            "CP4": 21.3,
        }
    finally:
        await r.ctl.stop()
        store.close()


def test_fallback_shares_leave_out_what_fixed_connectors_take():
    site = make_site(
        [{"id": "grid", "limit_a": 96}, {"id": "p", "parent": "grid", "limit_a": 40}],
        [
            {"id": "A", "group": "p", "connectors": [{"id": 1, "max_current_a": 32}]},
            {"id": "B", "group": "p", "connectors": [{"id": 1, "max_current_a": 32}]},
            {"id": "C", "group": "grid", "connectors": [{"id": 1, "max_current_a": 32}]},
            {"id": "D", "group": "grid", "connectors": [{"id": 1, "max_current_a": 32}]},
        ],
    )
    assert fallback_limits(site) == {"A": 20.0, "B": 20.0, "C": 24.0, "D": 24.0}
    out = fallback_limits(site, fixed={"A/1": 32.0, "D/1": 32.0})
    assert "A" not in out and "D" not in out
    assert out == {"B": 8.0, "C": 16.0}  # p: 40 - 32; grid: 96 - 64, shared by B and C


# --- the book and the rollout -------------------------------------------------------------


def test_a_running_transaction_counts_at_least_at_its_fallback():
    site = small_depot(1)
    grid = TimeGrid.covering(NOW, 15, 2)
    book = LimitBook(site, count_idle=True)
    book.get("CP1/1").default_a = 16.0
    book.start_transaction("CP1/1")
    book.get("CP1/1").accepted = LimitSchedule.constant(NOW, 8.0)
    assert np.allclose(book.worst("CP1/1", grid), 16.0)
    assert np.allclose(book.worst("CP1/1", grid, fallback=False), 8.0)
    book.default_sending("CP1/1", 8.0)
    assert np.allclose(book.worst("CP1/1", grid), 16.0)  # not confirmed yet
    book.default_answered("CP1/1", 8.0, CommandResult(CommandOutcome.ACCEPTED), own=True)
    assert np.allclose(book.worst("CP1/1", grid), 8.0)
    # a raise of its own fallback in doubt counts as taken
    book.default_sending("CP1/1", 12.0)
    book.default_answered("CP1/1", 12.0, CommandResult(CommandOutcome.TIMEOUT), own=True)
    assert book.default_in_force("CP1/1") == 12.0
    book.end_transaction("CP1/1")
    assert np.allclose(book.worst("CP1/1", grid), 12.0)


def test_a_profile_whose_connection_dropped_stays_possibly_in_force():
    site = small_depot(1)
    grid = TimeGrid.covering(NOW, 15, 2)
    book = LimitBook(site)
    book.start_transaction("CP1/1")
    book.get("CP1/1").accepted = LimitSchedule.constant(NOW, 8.0)
    s = LimitSchedule.constant(NOW, 20.0)
    book.sending("CP1/1", s)
    book.answered("CP1/1", s, CommandResult(CommandOutcome.NOT_CONNECTED, "connection closed"), 0.0)
    assert np.allclose(book.worst("CP1/1", grid), 20.0)
    assert book.pinned(1.0) == {"CP1/1": PinReason.NOT_CONNECTED}


def test_own_fallbacks_are_lowered_first_and_raised_only_when_they_fit():
    site = small_depot(3, limit_a=48)
    grid = TimeGrid.covering(NOW, 15, 2)
    model = LoadModel.build(site)
    cap = model.capacity(site, Capacity.static(site, grid), grid)
    book = LimitBook(site, count_idle=True)
    gw = FakeGateway(site, count_idle=True, delay_s=0.01)
    for sid in ("CP1", "CP2", "CP3"):
        gw.default[sid] = 16.0
        book.get(f"{sid}/1").default_a = 16.0
    for cid in ("CP1/1", "CP2/1", "CP3/1"):
        book.start_transaction(cid)
        gw.start(cid)
        book.get(cid).accepted = gw.tx[cid] = LimitSchedule.constant(NOW, 16.0)

    def build(cid: str, schedule: LimitSchedule) -> tuple[str, ChargingLimitSpec]:
        info = site.connectors[cid]
        return info.station_id, schedule.to_spec(
            LimitPurpose.TX, 1, transaction_id=f"t-{cid}", number_phases=3
        )

    def build_default(cid: str, limit: float) -> tuple[str, ChargingLimitSpec]:
        info = site.connectors[cid]
        spec = LimitSchedule.constant(NOW, limit).to_spec(
            LimitPurpose.TX_DEFAULT, 1, transaction_id=None, number_phases=3
        )
        return info.station_id, spec

    # CP3 down to 6 A (its own fallback too), CP1 and CP2 up to 21 A
    targets = {
        "CP1/1": np.full(grid.slots, 21.0),
        "CP2/1": np.full(grid.slots, 21.0),
        "CP3/1": np.full(grid.slots, 6.0),
    }
    report = asyncio.run(
        run_rollout(
            gw,
            book,
            grid,
            targets,
            model,
            cap,
            build,
            defaults={"CP3/1": 6.0},
            build_default=build_default,
        )
    )
    assert not report.needs_replan
    kinds = [(sid, spec.purpose) for _, sid, _, spec, _ in gw.log]
    assert set(kinds[:2]) == {("CP3", LimitPurpose.TX), ("CP3", LimitPurpose.TX_DEFAULT)}
    assert gw.own_default == {"CP3/1": 6.0}
    assert worst_excess(gw, model, grid, cap) == 0.0
    # raising CP3's own fallback back to 16 A does not fit next to 21 + 21
    book.end_transaction("CP3/1")
    gw.stop("CP3/1")
    report = asyncio.run(
        run_rollout(
            gw,
            book,
            grid,
            {},
            model,
            cap,
            build,
            defaults={"CP3/1": 16.0},
            build_default=build_default,
        )
    )
    assert report.withheld == ["CP3/1"] and gw.own_default == {"CP3/1": 6.0}
