"""Safe rollout: lowerings first, raisings only when they fit, whatever stations answer."""

from __future__ import annotations

import asyncio
import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gridshare.rollout import (
    Hysteresis,
    LimitBook,
    LimitSchedule,
    LoadModel,
    PinReason,
    fallback_limits,
    plan_rollout,
    run_rollout,
    schedule_from_spec,
)
from ocpp_adapter.events import ChargingLimitSpec, CommandOutcome, CommandResult, LimitPurpose
from optimizer.problem import Capacity, TimeGrid
from optimizer.site import Site
from tests.service.fakes import Behaviour, FakeGateway, loads, worst_excess
from tests.service.sites import NOW, random_sites, small_depot


def grid_for(site: Site) -> TimeGrid:
    return TimeGrid.covering(NOW, site.site.slot_minutes, site.site.horizon_hours)


def builder(site: Site):
    def build(cid: str, schedule: LimitSchedule) -> tuple[str, ChargingLimitSpec]:
        info = site.connectors[cid]
        spec = schedule.to_spec(
            LimitPurpose.TX,
            info.connector.id,
            transaction_id=f"tx-{cid}",
            number_phases=len(info.lines),
        )
        return info.station_id, spec

    return build


def setup(
    site: Site,
    grid: TimeGrid,
    in_force: dict[str, np.ndarray],
    behaviour: dict[str, Behaviour] | None = None,
) -> tuple[LimitBook, FakeGateway]:
    book = LimitBook(site)
    gw = FakeGateway(site, behaviour=behaviour or {})
    for cid, values in in_force.items():
        book.start_transaction(cid)
        gw.start(cid)
        s = LimitSchedule.from_slots(grid, values)
        book.get(cid).accepted = s
        gw.tx[cid] = s
    gw.snapshots.clear()
    gw.snapshots.append((0.0, {cid: gw.in_force(cid) for cid in gw.active}))
    return book, gw


def rollout(book, gw, site, grid, targets, cap, **kw):
    kw.setdefault("answer_timeout_s", 0.02)  # a hanging station costs the tests little
    model = LoadModel.build(site)
    return asyncio.run(run_rollout(gw, book, grid, targets, model, cap, builder(site), **kw))


def const(grid: TimeGrid, a: float) -> np.ndarray:
    return np.full(grid.slots, a)


# --- ordering ---------------------------------------------------------------------


def test_lowerings_are_answered_before_any_raising_is_sent():
    site = small_depot(4, limit_a=64)
    grid = grid_for(site)
    cap = LoadModel.build(site).capacity(site, Capacity.static(site, grid), grid)
    book, gw = setup(site, grid, {"CP1/1": const(grid, 32), "CP2/1": const(grid, 32)})
    targets = {"CP1/1": const(grid, 16), "CP2/1": const(grid, 16), "CP3/1": const(grid, 16)}
    book.start_transaction("CP3/1")
    book.get("CP3/1").default_a = 0.0
    gw.default["CP3"] = 0.0
    gw.start("CP3/1")
    gw.delay_s = 0.01
    report = rollout(book, gw, site, grid, targets, cap)
    order = [sid for _, sid, _, _, _ in gw.log]
    assert set(order[:2]) == {"CP1", "CP2"} and order[2:] == ["CP3"]
    assert report.lowered == 2 and report.raised == 1 and not report.needs_replan
    assert worst_excess(gw, LoadModel.build(site), grid, cap) == 0.0


def test_a_schedule_that_goes_down_and_up_is_sent_as_its_minimum_first():
    site = small_depot(2, limit_a=64)
    grid = grid_for(site)
    cap = LoadModel.build(site).capacity(site, Capacity.static(site, grid), grid)
    old = np.array([32, 32, 10, 10, 10, 10, 10, 10.0])[: grid.slots]
    new = np.array([10, 10, 32, 32, 32, 32, 32, 32.0])[: grid.slots]
    book, gw = setup(site, grid, {"CP1/1": old, "CP2/1": new[::-1].copy()})
    rollout(book, gw, site, grid, {"CP1/1": new}, cap)
    sent = gw.sent_to("CP1")
    assert len(sent) == 2
    first = schedule_from_spec(sent[0])
    assert np.allclose(first.on(grid), np.minimum(old, new))
    assert np.allclose(book.get("CP1/1").accepted.on(grid), new)  # type: ignore[union-attr]


# --- stations that do not cooperate --------------------------------------------------


@pytest.mark.parametrize(
    ("behaviour", "reason"),
    [
        (Behaviour.REJECT, PinReason.REJECTED),
        (Behaviour.SILENT_APPLIES, PinReason.NO_ANSWER),
        (Behaviour.SILENT_IGNORES, PinReason.NO_ANSWER),
        (Behaviour.RATE_LIMITED, PinReason.RATE_LIMITED),
        (Behaviour.OFFLINE, PinReason.NOT_CONNECTED),
        (Behaviour.ERROR, PinReason.REJECTED),
    ],
)
def test_a_lowering_that_fails_holds_back_the_raising_that_needed_it(behaviour, reason):
    site = small_depot(2, limit_a=40)
    grid = grid_for(site)
    cap = LoadModel.build(site).capacity(site, Capacity.static(site, grid), grid)
    book, gw = setup(
        site, grid, {"CP1/1": const(grid, 30), "CP2/1": const(grid, 10)}, {"CP1": behaviour}
    )
    report = rollout(
        book, gw, site, grid, {"CP1/1": const(grid, 10), "CP2/1": const(grid, 30)}, cap
    )
    assert report.failed == {"CP1/1": CommandOutcome(report.failed["CP1/1"])}
    assert report.withheld == ["CP2/1"] and report.needs_replan
    assert gw.sent_to("CP2") == []
    assert book.pinned(-math.inf) == {"CP1/1": reason}
    assert worst_excess(gw, LoadModel.build(site), grid, cap) == 0.0


def test_rate_limited_station_is_pinned_for_the_time_it_asked():
    site = small_depot(1)
    grid = grid_for(site)
    book = LimitBook(site)
    book.start_transaction("CP1/1")
    s = LimitSchedule.constant(NOW, 10)
    book.sending("CP1/1", s)
    book.answered(
        "CP1/1", s, CommandResult(CommandOutcome.RATE_LIMITED, retry_after_s=42), mono_now=100.0
    )
    assert book.pinned(141.0) == {"CP1/1": PinReason.RATE_LIMITED}
    assert book.pinned(142.5) == {}
    # refused, so it is not in force: the worst case is the connector's maximum
    assert np.allclose(book.worst("CP1/1", grid), 32)


def test_timeout_counts_the_unconfirmed_profile_as_possibly_in_force():
    site = small_depot(1)
    grid = grid_for(site)
    book = LimitBook(site)
    book.start_transaction("CP1/1")
    book.get("CP1/1").default_a = 8.0
    s = LimitSchedule.constant(NOW, 20)
    book.sending("CP1/1", s)
    book.answered("CP1/1", s, CommandResult(CommandOutcome.TIMEOUT), mono_now=0.0)
    assert np.allclose(book.worst("CP1/1", grid), 20)
    assert book.worst_max("CP1/1", NOW, grid) == 20


# --- hysteresis -------------------------------------------------------------------------


def test_small_raise_is_not_sent_and_small_lowering_only_when_needed():
    site = small_depot(2, limit_a=40)
    grid = grid_for(site)
    model = LoadModel.build(site)
    cap = model.capacity(site, Capacity.static(site, grid), grid)
    worst = {"CP1/1": const(grid, 20), "CP2/1": const(grid, 20)}
    steps = plan_rollout(
        grid,
        worst,
        {"CP1/1": const(grid, 20.5), "CP2/1": const(grid, 19.5)},
        model,
        cap,
        Hysteresis(1.0),
    )
    assert steps.lowerings == {} and steps.raisings == {}
    # the same small lowering is needed once the other connector goes up
    steps = plan_rollout(
        grid,
        worst,
        {"CP1/1": const(grid, 20.5), "CP2/1": const(grid, 19.5)},
        model,
        cap - 0.5,
        Hysteresis(1.0),
    )
    assert set(steps.lowerings) == {"CP2/1"}


def test_pausing_and_resuming_are_always_meaningful():
    site = small_depot(2, limit_a=64)
    grid = grid_for(site)
    model = LoadModel.build(site)
    cap = model.capacity(site, Capacity.static(site, grid), grid)
    worst = {"CP1/1": const(grid, 0.0), "CP2/1": const(grid, 0.5)}
    steps = plan_rollout(
        grid,
        worst,
        {"CP1/1": const(grid, 0.5), "CP2/1": const(grid, 0.0)},
        model,
        cap,
        Hysteresis(1.0),
    )
    assert set(steps.raisings) == {"CP1/1"} and set(steps.lowerings) == {"CP2/1"}


# --- the invariant, over random sites, plans and station behaviours ------------------------


def _fit(model: LoadModel, grid: TimeGrid, cap: np.ndarray, values: dict[str, np.ndarray]):
    load = model.load(values, grid.slots)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(np.isfinite(cap) & (load > 0), load / np.maximum(cap, 1e-9), 0.0)
    r = float(np.max(ratio, initial=0.0))
    if r > 1:
        values = {k: np.floor(v / r * 10) / 10 for k, v in values.items()}
    return values


@st.composite
def scenarios(draw: st.DrawFn):
    site = draw(random_sites())
    grid = grid_for(site)
    model = LoadModel.build(site)
    cids = list(site.connectors)
    active = [c for c in cids if draw(st.booleans())] or cids[:1]
    level = st.sampled_from([0.0, 6.0, 8.0, 10.0, 13.5, 16.0, 24.0, 32.0])

    def sched(cid: str) -> np.ndarray:
        mx = site.connectors[cid].max_current_a
        vals = np.array([draw(level) for _ in range(grid.slots)])
        return np.minimum(vals, mx)

    cap_old = model.capacity(site, Capacity.static(site, grid), grid)
    factor = draw(st.sampled_from([1.0, 1.0, 0.7, 0.4]))
    capacity = Capacity.static(site, grid)
    for g in site.groups:
        if g.limit_a is not None:
            capacity = capacity.lowered(
                g.id,
                np.arange(grid.slots) >= draw(st.integers(0, grid.slots - 1)),
                limit_a=g.limit_a * factor,
                limit_kw=None,
            )
    cap_new = model.capacity(site, capacity, grid)
    initial = _fit(model, grid, cap_old, {c: sched(c) for c in active})
    targets = _fit(model, grid, cap_new, {c: sched(c) for c in active if draw(st.booleans())})
    stations = sorted({site.connectors[c].station_id for c in cids})
    behaviour = {s: draw(st.sampled_from(list(Behaviour))) for s in stations}
    return site, grid, model, cap_new, initial, targets, behaviour


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenarios())
def test_limits_in_force_never_exceed_capacity_during_a_rollout(scenario):
    site, grid, model, cap, initial, targets, behaviour = scenario
    book, gw = setup(site, grid, initial, behaviour)
    before = loads(model, grid, gw.snapshots[0][1])
    report = rollout(book, gw, site, grid, targets, cap)
    # never above capacity, or above what was already in force where a
    # capacity cut came before the stations could follow
    assert worst_excess(gw, model, grid, cap, allowance=before) <= 1e-6
    # what the book assumes is never less than what the stations enforce
    for cid in gw.active:
        real = gw.in_force(cid)
        real_a = real.on(grid) if isinstance(real, LimitSchedule) else np.full(grid.slots, real)
        assert np.all(real_a <= book.worst(cid, grid) + 1e-9)
    final = {**initial, **targets}
    plan_fits = model.fits(model.load(final, grid.slots), cap)
    if plan_fits and all(b is Behaviour.ACCEPT for b in behaviour.values()):
        assert not report.failed and not report.withheld
        near = slice(0, Hysteresis().near_slots)
        for cid, want in targets.items():
            real = gw.in_force(cid)
            real_a = real.on(grid) if isinstance(real, LimitSchedule) else np.full(grid.slots, real)
            assert np.max(np.abs(real_a[near] - want[near])) < 1.0 + 1e-9


@settings(max_examples=100, deadline=None)
@given(random_sites())
def test_fallback_limits_fit_every_group_with_every_connector_drawing(site):
    limits = fallback_limits(site)
    grid = TimeGrid.covering(NOW, 15, 1)
    model = LoadModel.build(site)
    fallback = Capacity.static(site, grid)
    for g in site.groups:
        fb = g.fallback_limit_a if g.fallback_limit_a is not None else g.limit_a
        if fb is not None:
            fallback.limit_a[g.id][:] = fb
    cap = model.capacity(site, fallback, grid)
    drawing = {
        cid: np.full(grid.slots, limits[info.station_id]) for cid, info in site.connectors.items()
    }
    assert model.fits(model.load(drawing, grid.slots), cap)
    for info in site.connectors.values():
        a = limits[info.station_id]
        assert a == 0 or info.connector.min_current_a <= a <= info.max_current_a


def test_a_schedule_reads_the_same_on_any_grid():
    grid = TimeGrid.covering(NOW, 15, 1)
    s = LimitSchedule.from_slots(grid, [10, 10, 20, 0])
    later = TimeGrid(grid.slot_start(1), 15, 4)
    assert list(s.on(grid)) == [10, 10, 20, 0]
    assert list(s.on(later)) == [10, 20, 0, 0]  # the last period lasts
    assert list(s.on(grid)) == [10, 10, 20, 0]
    assert s.at(grid.slot_start(2)) == 20 and s.max_from(grid.slot_start(3)) == 0


def test_a_station_that_never_answers_does_not_hold_up_the_others():
    site = small_depot(3, limit_a=60)
    grid = grid_for(site)
    cap = LoadModel.build(site).capacity(site, Capacity.static(site, grid), grid)
    book, gw = setup(
        site,
        grid,
        {"CP1/1": const(grid, 30), "CP2/1": const(grid, 20), "CP3/1": const(grid, 10)},
        {"CP1": Behaviour.HANG},
    )
    targets = {"CP1/1": const(grid, 10), "CP2/1": const(grid, 10), "CP3/1": const(grid, 30)}
    report = rollout(book, gw, site, grid, targets, cap, answer_timeout_s=0.2)
    assert report.failed == {"CP1/1": CommandOutcome.TIMEOUT}
    # CP2 went down; CP3 may not go up while CP1 may still be at 30 A
    assert report.lowered == 1 and report.withheld == ["CP3/1"]
    assert book.pinned(-math.inf) == {"CP1/1": PinReason.NO_ANSWER}
    assert np.allclose(book.worst("CP1/1", grid), 30)
    assert worst_excess(gw, LoadModel.build(site), grid, cap) == 0.0


@settings(max_examples=50, deadline=None)
@given(random_sites(), st.integers(0, 2**32 - 1))
def test_family_loads_are_the_sum_of_their_members(site, seed):
    rng = np.random.default_rng(seed)
    model = LoadModel.build(site)
    chosen = [c for c in site.connectors if rng.random() < 0.7]
    values = {c: rng.uniform(0, 32, 4) for c in chosen}
    expected = np.zeros((len(model.keys), 4))
    for c, v in values.items():
        for f, coef in model.members[c]:
            expected[f] += coef * v
    assert np.allclose(model.load(values, 4), expected)
