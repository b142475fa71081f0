"""The rollout when the lines a car is known to load shrink: until a profile sent
for the fewer lines is accepted, the profile in force still limits (and is
counted on) the lines it was sent for, so no other connector is raised into
room it may still take."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field, replace

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from gridshare.rollout import LimitBook, LimitSchedule, LoadModel, run_rollout
from ocpp_adapter.events import ChargingLimitSpec, CommandOutcome, CommandResult, LimitPurpose
from optimizer.problem import Capacity, TimeGrid
from optimizer.site import Line, Site
from tests.service.sites import NOW, make_site

LIMIT_A = 40.0
SITE = make_site(
    [{"id": "grid", "limit_a": LIMIT_A}],
    [
        {"id": "A", "group": "grid", "connectors": [{"id": 1, "max_current_a": 32}]},
        {
            "id": "D",
            "group": "grid",
            "connectors": [{"id": 1, "max_current_a": 32, "phases": ["L2"]}],
        },
    ],
)
GRID = TimeGrid.covering(NOW, SITE.site.slot_minutes, SITE.site.horizon_hours)


@dataclass
class Station:
    """Takes every profile the moment it gets it (answering or not); after each,
    the sum of limits in force per line, each on the lines its profile names."""

    site: Site
    hangs: set[str] = field(default_factory=set)
    in_force: dict[str, tuple[float, tuple[Line, ...]]] = field(default_factory=dict)
    worst_excess: float = -np.inf
    sent: list[tuple[str, float, tuple[Line, ...]]] = field(default_factory=list)

    async def set_limit(self, station_id: str, spec: ChargingLimitSpec) -> CommandResult:
        cid = f"{station_id}/{spec.connector}"
        wired = self.site.connectors[cid].lines
        lines = (
            wired
            if spec.station_phases is None
            else tuple(wired[k - 1] for k in spec.station_phases)
        )
        limit = spec.periods[0].limit_a
        self.in_force[cid] = (limit, lines)
        self.sent.append((cid, limit, lines))
        for line in (Line.L1, Line.L2, Line.L3):
            total = sum(a for a, ls in self.in_force.values() if line in ls)
            self.worst_excess = max(self.worst_excess, total - LIMIT_A)
        if station_id in self.hangs:
            await asyncio.sleep(3600)
        return CommandResult(CommandOutcome.ACCEPTED)

    async def clear_limit(self, station_id: str, connector: int) -> CommandResult:
        return CommandResult(CommandOutcome.ACCEPTED)


def builder(lines: dict[str, tuple[Line, ...]]):
    """Profiles as the site sends them: a car known to load fewer lines than its
    connector's gets a profile naming those (2.1 per-phase limits)."""

    def build(cid: str, schedule: LimitSchedule) -> tuple[str, ChargingLimitSpec]:
        info = SITE.connectors[cid]
        spec = schedule.to_spec(
            LimitPurpose.TX, info.connector.id, transaction_id=f"tx-{cid}", number_phases=3
        )
        used = lines.get(cid)
        if used is not None and used != info.lines:
            phases = tuple(k for k, line in enumerate(info.lines, start=1) if line in used)
            spec = replace(spec, station_phases=phases)
        return info.station_id, spec

    return build


async def rollout(
    book: LimitBook,
    station: Station,
    targets: dict[str, float],
    lines: dict[str, tuple[Line, ...]],
):
    model = LoadModel.build(SITE, lines)
    cap = model.capacity(SITE, Capacity.static(SITE, GRID), GRID)
    wanted = {cid: np.full(GRID.slots, a) for cid, a in targets.items()}
    return await run_rollout(
        station, book, GRID, wanted, model, cap, builder(lines), answer_timeout_s=0.05
    )


@pytest.mark.parametrize("hangs", [False, True], ids=["answers", "never-answers"])
async def test_a_car_learned_on_fewer_lines_keeps_its_old_lines_until_they_are_sent(
    hangs: bool,
) -> None:
    book = LimitBook(SITE)
    station = Station(SITE)
    for cid in ("A/1", "D/1"):
        book.start_transaction(cid)
    # A loads every line (as far as anyone knows): 16 A on each; D 24 A on L2
    first = await rollout(book, station, {"A/1": 16.0, "D/1": 24.0}, {})
    assert first.accepted == 2 and station.worst_excess <= 1e-6
    if hangs:
        station.hangs.add("A")
    # A's readings show it loads L1 only: the plan gives D the whole of L2,
    # A keeps its 16 A (on L1 alone)
    report = await rollout(book, station, {"A/1": 16.0, "D/1": 32.0}, {"A/1": (Line.L1,)})
    assert station.worst_excess <= 1e-6, f"limits in force {station.worst_excess} A over on L2"
    if hangs:
        # A's profile for L1 alone went unanswered: it may still limit L2 at 16 A
        assert "D/1" in report.withheld
        assert station.in_force["D/1"][0] == 24.0
    else:
        # A's profile went again for L1 first, then D was raised
        assert [s for s in station.sent[2:]] == [
            ("A/1", 16.0, (Line.L1,)),
            ("D/1", 32.0, (Line.L2,)),
        ]


CARS = ("A/1", "D/1")
step = st.tuples(
    st.sampled_from([0.0, 6.0, 10.0, 16.0, 16.0, 16.0, 24.0, 32.0]),  # A's target
    st.sampled_from([0.0, 8.0, 16.0, 24.0, 32.0]),  # D's target (L2)
    st.booleans(),  # A learned to load L1 only
    st.booleans(),  # A's station answers
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(step, min_size=1, max_size=8))
@example([(16.0, 32.0, True, True)])  # the first test's case: A unchanged, D raised
@example([(16.0, 32.0, True, False)])
def test_limits_in_force_on_the_lines_they_name_stay_within_capacity(steps) -> None:
    async def run() -> None:
        book = LimitBook(SITE)
        station = Station(SITE)
        for cid in CARS:
            book.start_transaction(cid)
        await rollout(book, station, {"A/1": 16.0, "D/1": 24.0}, {})  # both accepted
        one_line = False
        for a, d, learned, answers in steps:
            # once learned, A stays on L1: a car seen on more lines again draws
            # there already (the site counts it at once), which is not the rollout's
            one_line |= learned
            lines: dict[str, tuple[Line, ...]] = {"A/1": (Line.L1,)} if one_line else {}
            if not one_line:  # the plan fits the lines it counts (A on L2 or not)
                d = min(d, LIMIT_A - a)
            station.hangs = set() if answers else {"A"}
            await rollout(book, station, {"A/1": a, "D/1": d}, lines)
            assert station.worst_excess <= 1e-6, (steps, station.sent)

    asyncio.run(run())
