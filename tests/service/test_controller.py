"""The controller against an in-memory gateway: events in, plans and profiles out."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from forecasts.demand import DemandDefaults
from gridshare.controller import Controller, ControllerSettings
from gridshare.rollout import LimitSchedule, LoadModel, PinReason
from gridshare.store import SqliteStore
from ocpp_adapter.events import (
    EvChargingNeeds,
    LimitPurpose,
    MeterReading,
    SessionEnded,
    SessionStarted,
    StationBooted,
    StationConnected,
)
from optimizer.problem import Capacity, TimeGrid
from optimizer.site import Site
from tests.service.fakes import Behaviour, FakeGateway, worst_excess
from tests.service.sites import NOW, make_site, small_depot


class Clock:
    def __init__(self, t: datetime = NOW) -> None:
        self.t = t

    def __call__(self) -> datetime:
        return self.t

    def advance(self, seconds: float) -> None:
        self.t += timedelta(seconds=seconds)


SETTINGS = ControllerSettings(
    coalesce_s=0.005, learn_settle_s=0.0, pin_s=60.0, reserve_for_arrivals=False
)
"""Most tests look at how capacity is shared among cars already charging, so
they plan without the arrival reserve; `STRICT` is the default."""
STRICT = ControllerSettings(coalesce_s=0.005, learn_settle_s=0.0, pin_s=60.0)


class Rig:
    def __init__(
        self,
        site: Site,
        store: SqliteStore,
        gw: FakeGateway,
        clock: Clock,
        settings: ControllerSettings = SETTINGS,
    ) -> None:
        self.site, self.store, self.gw, self.clock = site, store, gw, clock
        self.ctl = Controller(
            site,
            store,
            gw,
            clock=clock,
            settings=settings,
            defaults=DemandDefaults(dwell_hours=4, energy_kwh=40),
        )

    async def boot(self, *stations: str) -> None:
        for sid in stations:
            await self.ctl.on_event(StationConnected(sid, "ocpp1.6", self.clock()))
            await self.ctl.on_event(StationBooted(sid, "acme", "x", self.clock()))
        await self.settle()

    async def settle(self) -> None:
        for _ in range(200):
            await self.ctl.wait_idle(10)
            if not self.ctl.busy():
                return
            await asyncio.sleep(0.02)
        raise AssertionError("the controller did not settle")

    async def start(self, cid: str, tx: str, tag: str | None = "tag", meter: float = 0) -> None:
        self.gw.start(cid)
        await self.ctl.on_event(SessionStarted(cid, tx, tag, meter, self.clock()))
        await self.settle()

    async def stop(self, cid: str, tx: str, meter: float | None = None) -> None:
        self.gw.stop(cid)
        await self.ctl.on_event(SessionEnded(tx, meter, self.clock(), connector_id=cid))
        await self.settle()

    async def meter(self, cid: str, amps: dict[str, float], energy: float | None = None) -> None:
        await self.ctl.on_event(MeterReading(cid, self.clock(), current_a=amps, energy_wh=energy))

    def limit(self, cid: str) -> float:
        v = self.gw.in_force(cid)
        return v.at(self.clock()) if isinstance(v, LimitSchedule) else float(v)

    def excess(self, since: int = 0) -> float:
        """Worst excess of the limits in force over capacity, from snapshot ``since``."""
        grid = TimeGrid.covering(self.clock(), self.site.site.slot_minutes, 2)
        cap = LoadModel.build(self.site).capacity(self.site, self.ctl.capacity(grid, NOW), grid)
        snaps = self.gw.snapshots
        self.gw.snapshots = snaps[since:]
        try:
            return worst_excess(self.gw, LoadModel.build(self.site), grid, cap)
        finally:
            self.gw.snapshots = snaps


@pytest.fixture
async def rig(tmp_path: Path) -> AsyncIterator[Rig]:
    site = small_depot(3, limit_a=48)
    store = SqliteStore(tmp_path / "g.db")
    r = Rig(site, store, FakeGateway(site), Clock())
    await r.ctl.start(scheduler=False)
    yield r
    await r.ctl.stop()
    store.close()


async def test_boot_installs_a_fallback_that_fits_the_group(rig: Rig):
    await rig.boot("CP1", "CP2", "CP3")
    sent = [
        (sid, spec) for _, sid, _, spec, _ in rig.gw.log if spec.purpose is LimitPurpose.TX_DEFAULT
    ]
    assert all(spec.connector == 0 for _, spec in sent)
    # a station gets its share of what the others leave; one without a fallback
    # yet may draw its maximum, so first limits are low and go up as they come in
    in_force: dict[str, float] = {}
    for sid, spec in sent:
        in_force[sid] = spec.periods[0].limit_a
        if len(in_force) == 3:  # from then on, every change fits
            assert sum(in_force.values()) <= 48
    assert rig.gw.default == {"CP1": 16.0, "CP2": 16.0, "CP3": 16.0}  # 3 × 16 A
    assert rig.ctl.book.get("CP1/1").default_a == 16.0


async def test_two_cars_share_the_group_and_a_departure_frees_capacity(rig: Rig):
    await rig.boot("CP1", "CP2", "CP3")
    await rig.start("CP1/1", "t1")
    assert rig.limit("CP1/1") == 32
    await rig.start("CP2/1", "t2")
    # the planner keeps the running car near its previous rate in the slot
    # dispatched now (anti-flapping) and evens the two out over the horizon
    assert rig.limit("CP1/1") + rig.limit("CP2/1") == 48
    assert rig.limit("CP2/1") >= 6
    since = len(rig.gw.snapshots)
    await rig.stop("CP1/1", "t1", 1000)
    assert rig.limit("CP2/1") == 32
    assert ("CP1", 1) in rig.gw.cleared
    assert rig.excess(since) == 0.0


async def test_a_car_drawing_less_is_capped_and_its_share_goes_to_the_others(rig: Rig):
    await rig.boot("CP1", "CP2", "CP3")
    for i in (1, 2, 3):
        await rig.start(f"CP{i}/1", f"t{i}")
    assert [rig.limit(f"CP{i}/1") for i in (1, 2, 3)] == [16, 16, 16]
    plans = rig.ctl.plans
    since = len(rig.gw.snapshots)
    for _ in range(2):  # two readings: a single low one is not enough
        rig.clock.advance(10)
        await rig.meter("CP1/1", {"L1": 10.0, "L2": 10.0, "L3": 10.0})
    await rig.settle()
    assert rig.ctl.plans == plans + 1  # one re-plan
    # what it takes, and room to show that it takes more
    assert rig.ctl.sessions["CP1/1"].cap_a == 11.0
    assert rig.limit("CP1/1") == 11.0
    assert rig.limit("CP2/1") + rig.limit("CP3/1") == pytest.approx(37.0, abs=0.2)
    # it takes more again: the cap goes and it gets its share back
    rig.clock.advance(10)
    await rig.meter("CP1/1", {"L1": 10.9, "L2": 10.9, "L3": 10.9})
    await rig.settle()
    assert rig.ctl.sessions["CP1/1"].cap_a is None
    assert rig.limit("CP1/1") == 16
    assert rig.excess(since) == 0.0


async def test_a_car_tapering_below_the_minimum_leaves_its_room_to_cars_drawing_in_full(
    rig: Rig,
):
    """A car drawing 2 A can't be given less than its station's 6 A minimum: it
    would hold 6 A of the limit to draw 2. While the other cars can use that
    room it is paused; its learned cap stays below the minimum."""
    await rig.boot("CP1", "CP2", "CP3")
    for i in (1, 2, 3):
        await rig.start(f"CP{i}/1", f"t{i}")
    since = len(rig.gw.snapshots)
    for _ in range(2):
        rig.clock.advance(10)
        await rig.meter("CP1/1", {"L1": 2.0, "L2": 2.0, "L3": 2.0})
    await rig.settle()
    assert rig.ctl.sessions["CP1/1"].cap_a == 3.0
    assert rig.limit("CP1/1") == 0
    assert rig.limit("CP2/1") + rig.limit("CP3/1") == pytest.approx(48.0, abs=0.2)
    assert rig.excess(since) == 0.0


async def test_a_one_phase_car_on_a_three_phase_connector_frees_two_lines(tmp_path: Path):
    site = make_site(
        [{"id": "grid", "limit_a": 32}],
        [
            {"id": "A", "group": "grid", "connectors": [{"id": 1, "max_current_a": 32}]},
            {
                "id": "B",
                "group": "grid",
                "connectors": [{"id": 1, "max_current_a": 32, "phases": ["L2", "L3", "L1"]}],
            },
        ],
    )
    store = SqliteStore(tmp_path / "g.db")
    r = Rig(site, store, FakeGateway(site), Clock())
    await r.ctl.start(scheduler=False)
    try:
        await r.boot("A", "B")
        await r.start("A/1", "ta")
        await r.start("B/1", "tb")
        assert r.limit("A/1") == r.limit("B/1") == 16
        for _ in range(2):
            r.clock.advance(10)
            await r.meter("A/1", {"L1": 16.0, "L2": 0.0, "L3": 0.0})
        await r.settle()
        # A only loads L1; B's car (L2, L3, L1) may now use 32 A on L2/L3 but shares L1
        assert r.ctl.sessions["A/1"].lines == ("L1",)
        assert r.ctl.plan is not None and r.ctl.plan.lines["A/1"] == ("L1",)
        # the car switches to three phases: counted on every line at once
        r.clock.advance(10)
        await r.meter("A/1", {"L1": 10.0, "L2": 10.0, "L3": 10.0})
        await r.settle()
        assert r.ctl.sessions["A/1"].lines is None
    finally:
        await r.ctl.stop()
        store.close()


async def test_a_lowered_group_limit_is_honoured_lowerings_first(rig: Rig):
    await rig.boot("CP1", "CP2", "CP3")
    await rig.start("CP1/1", "t1")
    await rig.start("CP2/1", "t2")
    rig.ctl.set_group_limit("grid", limit_a=20)
    await rig.settle()
    assert rig.limit("CP1/1") + rig.limit("CP2/1") <= 20
    lowered = rig.gw.log[-2:]
    assert all(spec.periods[0].limit_a <= 16 for *_, spec, _ in lowered)
    rig.ctl.set_group_limit("grid", limit_a=None)
    await rig.settle()
    assert rig.limit("CP1/1") + rig.limit("CP2/1") == 48
    kinds = {a["kind"] for a in rig.store.audit_log(50)}
    assert {"group_limit", "limit_accepted"} <= kinds


@pytest.mark.parametrize("behaviour", [Behaviour.REJECT, Behaviour.SILENT_APPLIES])
async def test_an_uncooperative_station_is_reserved_and_nothing_exceeds(
    tmp_path: Path, behaviour: Behaviour
):
    site = small_depot(3, limit_a=48)
    gw = FakeGateway(site)
    store = SqliteStore(tmp_path / "g.db")
    r = Rig(site, store, gw, Clock(), STRICT)
    await r.ctl.start(scheduler=False)
    try:
        await r.boot("CP1", "CP2", "CP3")
        gw.behaviour["CP1"] = behaviour
        await r.start("CP1/1", "t1")
        await r.start("CP2/1", "t2")
        await r.start("CP3/1", "t3")
        assert r.excess() == 0.0  # at every change, arrivals included
        # the DSO halves the grid: everyone must come down, CP1 answers badly
        since = len(gw.snapshots)
        r.ctl.set_group_limit("grid", limit_a=30)
        await r.settle()
        assert r.ctl.book.pinned(r.ctl.monotonic())["CP1/1"] in (
            PinReason.REJECTED,
            PinReason.NO_ANSWER,
        )
        # CP1 keeps what it had (16 A, or what it silently took): reserved
        reserved = r.ctl.book.worst_max("CP1/1", r.clock(), TimeGrid.covering(NOW, 15, 2))
        assert reserved == 16.0
        assert r.limit("CP2/1") + r.limit("CP3/1") <= 30 - reserved + 1e-9
        # nothing went up while the group was over its new limit
        loads = [
            sum(v if isinstance(v, float) else v.at(NOW) for v in snap.values())
            for _, snap in gw.snapshots[since:]
        ]
        assert all(b <= a + 1e-9 for a, b in itertools.pairwise(loads))
        assert loads[-1] <= 30
    finally:
        await r.ctl.stop()
        store.close()


async def test_a_burst_of_meter_values_is_planned_once(rig: Rig):
    await rig.boot("CP1", "CP2", "CP3")
    for i in (1, 2, 3):
        await rig.start(f"CP{i}/1", f"t{i}")
    plans = rig.ctl.plans
    rig.clock.advance(10)
    for k in range(200):
        cid = f"CP{k % 3 + 1}/1"
        await rig.meter(cid, {"L1": 3.0, "L2": 3.0, "L3": 3.0}, energy=100.0 * k)
    await rig.settle()
    assert 1 <= rig.ctl.plans - plans <= 2
    last = rig.store.meter_last("CP1/1")
    assert last is not None and last["energy_wh"] == 100.0 * 198


async def test_ev_needs_and_estimates_shape_the_demand(rig: Rig):
    await rig.boot("CP1", "CP2", "CP3")
    await rig.start("CP1/1", "t1", tag="bus-7")
    s = rig.ctl.sessions["CP1/1"]
    assert s.est_departure == NOW + timedelta(hours=4) and s.est_energy_kwh == 40
    # no battery tail at the end of a guess
    assert rig.ctl.problems.demand(s, NOW).taper_kwh is None
    # 3 kWh in, the EV says it still wants 5 kWh and leaves in an hour
    await rig.meter("CP1/1", {"L1": 16.0}, energy=3000)
    dep = NOW + timedelta(hours=1)
    await rig.ctl.on_event(EvChargingNeeds("CP1/1", NOW, departure=dep, energy_wh=5000))
    await rig.settle()
    d = rig.ctl.problems.demand(s, NOW)
    assert d.departure == dep and d.energy_kwh == 5.0
    assert d.taper_kwh == DemandDefaults().taper_kwh  # a stated need: the assumed tail
    stored = rig.store.session_by_id("t1")
    assert stored is not None and stored.energy_need_wh == 8000  # from the session's start
    rig.clock.advance(2 * 3600)
    await rig.stop("CP1/1", "t1", 12000)
    # one past session is not yet a history
    await rig.start("CP2/1", "t2", tag="bus-7", meter=50000)
    assert rig.ctl.sessions["CP2/1"].est_energy_kwh == 40
    rig.clock.advance(3 * 3600)
    await rig.stop("CP2/1", "t2", 70000)
    # two are: the tag's median dwell and energy
    rig.clock.advance(3600)
    await rig.start("CP3/1", "t3", tag="bus-7", meter=90000)
    s3 = rig.ctl.sessions["CP3/1"]
    assert s3.est_energy_kwh == pytest.approx(16.0)
    assert s3.est_departure == rig.clock() + timedelta(hours=2.5)


async def test_state_is_recovered_from_the_store_after_a_restart(tmp_path: Path):
    site = small_depot(3, limit_a=48)
    path = tmp_path / "g.db"
    store = SqliteStore(path)
    r = Rig(site, store, FakeGateway(site), Clock())
    await r.ctl.start(scheduler=False)
    await r.boot("CP1", "CP2", "CP3")
    await r.start("CP1/1", "t1", meter=1000)
    await r.start("CP2/1", "t2", meter=0)
    await r.meter("CP1/1", {"L1": 24.0, "L2": 24.0, "L3": 24.0}, energy=4000)
    await r.settle()
    await r.ctl.stop()
    store.close()  # the process dies: nothing but the database is left

    store2 = SqliteStore(path)
    gw2 = FakeGateway(site)
    r2 = Rig(site, store2, gw2, Clock(NOW + timedelta(minutes=1)))
    await r2.ctl.start(scheduler=False)
    try:
        await r2.settle()
        assert set(r2.ctl.sessions) == {"CP1/1", "CP2/1"}
        assert r2.ctl.sessions["CP1/1"].delivered_kwh == pytest.approx(3.0)
        assert r2.ctl.book.get("CP1/1").accepted is not None
        assert gw2.log == []  # nobody connected yet: nothing sent
        # stations come back with their transactions running
        gw2.start("CP1/1")
        gw2.start("CP2/1")
        await r2.boot("CP1", "CP2")
        assert {s.transaction_id for s in gw2.sent_to("CP1") if s.transaction_id} == {"t1"}
        assert r2.limit("CP1/1") == r2.limit("CP2/1") == 24
        assert store2.plan_count() >= 2
    finally:
        await r2.ctl.stop()
        store2.close()


async def test_planning_capacity_comes_from_the_provider(tmp_path: Path):
    site = small_depot(2, limit_a=64)

    def evening_cut(site: Site, grid: TimeGrid, now: datetime) -> Capacity:
        cap = Capacity.static(site, grid)
        return cap.lowered("grid", np.arange(grid.slots) >= 1, limit_a=20, limit_kw=None)

    store = SqliteStore(tmp_path / "g.db")
    gw = FakeGateway(site)
    ctl = Controller(site, store, gw, capacity=evening_cut, settings=SETTINGS, clock=Clock())
    await ctl.start(scheduler=False)
    try:
        for sid in ("CP1", "CP2"):
            await ctl.on_event(StationBooted(sid, "a", "b", NOW))
        gw.start("CP1/1")
        await ctl.on_event(SessionStarted("CP1/1", "t1", None, 0, NOW))
        await ctl.wait_idle()
        for t in ctl.background_tasks:
            await t
        await ctl.wait_idle()
        sched = gw.tx["CP1/1"]
        grid = TimeGrid.covering(NOW, 15, 2)
        values = sched.on(grid)
        assert values[0] == 32 and np.all(values[1:] <= 20)  # the cut is in the profile
    finally:
        await ctl.stop()
        store.close()


async def test_with_the_arrival_reserve_no_arrival_ever_exceeds_the_group(tmp_path: Path):
    site = small_depot(4, limit_a=64)
    store = SqliteStore(tmp_path / "g.db")
    gw = FakeGateway(site)
    r = Rig(site, store, gw, Clock(), STRICT)
    await r.ctl.start(scheduler=False)
    try:
        await r.boot("CP1", "CP2", "CP3", "CP4")
        await r.start("CP1/1", "t1")
        assert r.limit("CP1/1") == 16  # three idle connectors hold 16 A each
        for _ in range(2):
            r.clock.advance(10)
            await r.meter("CP1/1", {"L1": 2.0, "L2": 2.0, "L3": 2.0})
        await r.settle()
        for i in (2, 3, 4):
            await r.start(f"CP{i}/1", f"t{i}")
        await r.stop("CP2/1", "t2")
        assert r.excess() == 0.0
    finally:
        await r.ctl.stop()
        store.close()


async def test_a_rate_limited_station_gets_its_profile_once_it_may(tmp_path: Path):
    site = small_depot(2, limit_a=64)
    gw = FakeGateway(site, retry_after_s=0.2)
    store = SqliteStore(tmp_path / "g.db")
    r = Rig(site, store, gw, Clock())
    await r.ctl.start(scheduler=False)
    try:
        await r.boot("CP1", "CP2")
        gw.behaviour["CP1"] = Behaviour.RATE_LIMITED
        gw.start("CP1/1")
        await r.ctl.on_event(SessionStarted("CP1/1", "t1", None, 0.0, r.clock()))
        await r.ctl.wait_idle()
        assert r.ctl.book.pinned(r.ctl.monotonic()) == {"CP1/1": PinReason.RATE_LIMITED}
        gw.behaviour["CP1"] = Behaviour.ACCEPT  # it may take profiles again
        await r.settle()  # the retry is scheduled for when the station said
        assert "CP1/1" in gw.tx and r.ctl.book.pinned(r.ctl.monotonic()) == {}
        outcomes = [o for _, sid, p, _, o in gw.log if sid == "CP1" and p is LimitPurpose.TX]
        assert outcomes[0] == "rate_limited" and outcomes[-1] == "accepted"
    finally:
        await r.ctl.stop()
        store.close()
