"""Invariant 1 through the whole controller, over random sequences of events.

Cars arrive and leave, meter values come in (cars drawing less, one phase),
stations start refusing, stop answering or ask us to wait, the operator cuts
and restores the limit. After every event the limits in force at the fake
stations (every connector: an idle one at its fallback limit, which a car that
plugs in, or a transaction that ends, gets at once) never exceed the group's
capacity or, where that was already exceeded (a cut, stations that do not
obey), what was in force before; capacity is met once the rollout is done
whenever every station obeys.

A car that showed it loads one line (two one-phase readings of 4 A or more in
a row, the rule the README states) is counted on that line only, until a
reading shows it on more: that is what it can draw, and what the site plans.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gridshare.controller import Controller, ControllerSettings
from gridshare.rollout import LoadModel
from gridshare.store import SqliteStore
from ocpp_adapter.events import (
    MeterReading,
    SessionEnded,
    SessionStarted,
    StationBooted,
    StationConnected,
)
from optimizer.problem import Line, TimeGrid
from tests.service.fakes import Behaviour, FakeGateway, loads
from tests.service.sites import NOW, make_site

SITE = make_site(
    [{"id": "grid", "limit_a": 80}, {"id": "p", "parent": "grid", "limit_a": 48}],
    [
        {"id": "A", "group": "p", "connectors": [{"id": 1, "max_current_a": 32}]},
        {"id": "B", "group": "p", "connectors": [{"id": 1, "max_current_a": 32}]},
        {"id": "C", "group": "grid", "connectors": [{"id": 1, "max_current_a": 16}]},
        {
            "id": "D",
            "group": "grid",
            "connectors": [{"id": 1, "max_current_a": 32, "phases": ["L2"]}],
        },
    ],
)
STATIONS = ["A", "B", "C", "D"]

actions = st.one_of(
    st.tuples(st.just("arrive"), st.sampled_from(STATIONS)),
    st.tuples(st.just("leave"), st.sampled_from(STATIONS)),
    st.tuples(
        st.just("meter"),
        st.sampled_from(STATIONS),
        st.sampled_from([0.0, 3.0, 8.0, 16.0, 32.0]),
        st.booleans(),
    ),
    st.tuples(st.just("cut"), st.sampled_from([None, 30.0, 50.0, 70.0])),
    st.tuples(
        st.just("behave"),
        st.sampled_from(STATIONS),
        st.sampled_from(
            [
                Behaviour.ACCEPT,
                Behaviour.ACCEPT,
                Behaviour.REJECT,
                Behaviour.HANG,
                Behaviour.RATE_LIMITED,
                Behaviour.SILENT_IGNORES,
            ]
        ),
    ),
)


class CarLines:
    """The lines each car is known to load, from the readings this test sent."""

    def __init__(self) -> None:
        self.one_phase: set[str] = set()
        self._votes: dict[str, int] = {}

    def reading(self, cid: str, amps: float, one_phase: bool) -> None:
        if not one_phase and amps >= 1.0:
            self.one_phase.discard(cid)  # it loads every line again
            self._votes[cid] = 0
        elif one_phase and amps >= 4.0:
            self._votes[cid] = self._votes.get(cid, 0) + 1
            if self._votes[cid] >= 2:
                self.one_phase.add(cid)
        else:
            self._votes[cid] = 0

    def left(self, cid: str) -> None:
        self.one_phase.discard(cid)
        self._votes.pop(cid, None)

    def model(self) -> LoadModel:
        return LoadModel.build(SITE, {cid: (Line.L1,) for cid in self.one_phase})


async def run(steps: list[tuple], db: Path) -> None:
    gw = FakeGateway(SITE, retry_after_s=0.05, count_idle=True)
    store = SqliteStore(db)
    t = [NOW]
    ctl = Controller(
        SITE,
        store,
        gw,
        clock=lambda: t[0],
        settings=ControllerSettings(
            coalesce_s=0.002, learn_settle_s=0.0, pin_s=0.3, answer_timeout_s=0.05
        ),
    )
    cars = CarLines()
    model = cars.model()
    grid = TimeGrid.covering(NOW, 15, 1)

    def cap_now() -> np.ndarray:
        return model.capacity(SITE, ctl.capacity(grid, NOW), grid)

    async def settle() -> None:
        # the plan and its rollout, not the retry timers (they fire in later steps)
        for _ in range(500):
            await ctl.wait_idle(10)
            if not ctl.background_tasks:
                return
            await asyncio.sleep(0.01)

    obeying = all(s[0] != "behave" or s[2] is Behaviour.ACCEPT for s in steps)
    await ctl.start(scheduler=False)
    try:
        for sid in STATIONS:
            await ctl.on_event(StationConnected(sid, "ocpp1.6", t[0]))
            await ctl.on_event(StationBooted(sid, "x", "y", t[0]))
        await settle()
        tx = 0
        active: dict[str, str] = {}
        for step in steps:
            t[0] += timedelta(seconds=20)
            mark = len(gw.snapshots)
            in_force = gw.snapshots[-1][1] if gw.snapshots else None
            kind = step[0]
            if kind == "arrive" and step[1] not in active:
                cid = f"{step[1]}/1"
                tx += 1
                active[step[1]] = str(tx)
                gw.start(cid)
                await ctl.on_event(SessionStarted(cid, str(tx), None, 0.0, t[0]))
            elif kind == "leave" and step[1] in active:
                cid = f"{step[1]}/1"
                cars.left(cid)
                gw.stop(cid)
                await ctl.on_event(SessionEnded(active.pop(step[1]), None, t[0], connector_id=cid))
            elif kind == "meter" and step[1] in active:
                cid = f"{step[1]}/1"
                a = step[2]
                amps = {"L1": a} if step[3] else {"L1": a, "L2": a, "L3": a}
                cars.reading(cid, a, step[3])
                await ctl.on_event(MeterReading(cid, t[0], current_a=amps))
            elif kind == "cut":
                ctl.set_group_limit("grid", limit_a=step[1])
            elif kind == "behave":
                gw.behaviour[step[1]] = step[2]
            # what was in force counts as the car draws now (a car that loads
            # more lines loads them at once, before anything can be lowered)
            model = cars.model()
            before = loads(model, grid, in_force) if in_force is not None else None
            await settle()
            cap = cap_now()
            # never above capacity, nor above what was in force before the
            # step where that was higher (a cut, or stations that do not obey)
            bound = cap if before is None else np.maximum(cap, before)
            for _, snap in gw.snapshots[mark:]:
                over = loads(model, grid, snap) - bound
                assert float(np.max(over, initial=0.0)) <= 1e-6, (step, snap)
            if obeying and gw.snapshots:
                # every station obeys: once the rollout is done, within capacity
                final = loads(model, grid, gw.snapshots[-1][1]) - cap
                assert float(np.max(final, initial=0.0)) <= 1e-6, (step, gw.snapshots[-1])
    finally:
        await ctl.stop()
        store.close()


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(st.lists(actions, min_size=5, max_size=18))
def test_limits_in_force_stay_within_capacity_whatever_happens(tmp_path: Path, steps):
    db = tmp_path / f"inv-{abs(hash(tuple(map(str, steps))))}.db"
    asyncio.run(run(steps, db))


def test_a_one_phase_car_frees_the_other_lines_and_nothing_goes_over(tmp_path: Path):
    # found by the property above: A learns it loads L1 only, B arrives and is
    # given room on L2/L3 that A, counted on every wired line, would not leave
    steps = [
        ("arrive", "A"),
        ("meter", "A", 8.0, True),
        ("arrive", "B"),
        ("meter", "A", 8.0, True),
        ("meter", "A", 8.0, False),  # it loads every line again: lowered at once
        ("leave", "A"),
    ]
    asyncio.run(run(steps, tmp_path / "one-phase.db"))
