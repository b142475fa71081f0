"""Departure, energy and real-rate estimates."""

from __future__ import annotations

from datetime import timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from forecasts import (
    CurrentReading,
    DemandDefaults,
    EvNeeds,
    PastSession,
    RateEstimator,
    Source,
    TagHistory,
    estimate_departure,
    estimate_energy,
)
from optimizer.site import Line

from .helpers import T0, minutes

L1, L2, L3 = Line.L1, Line.L2, Line.L3


def history() -> TagHistory:
    h = TagHistory()
    for day, (hours, kwh) in enumerate([(9, 30.0), (10, 20.0), (11, 25.0)]):
        a = T0 - timedelta(days=day + 1)
        h.record(PastSession("tag-1", a, a + timedelta(hours=hours), kwh))
    return h


def test_departure_sources_in_order() -> None:
    h = history()
    d = DemandDefaults(dwell_hours=8, energy_kwh=20)
    ev = EvNeeds(departure=T0 + timedelta(hours=3))
    assert estimate_departure(T0, T0, id_tag="tag-1", needs=ev, history=h, defaults=d) == (
        type(estimate_departure(T0, T0))(T0 + timedelta(hours=3), Source.EV)
    )
    got = estimate_departure(T0, T0, id_tag="tag-1", history=h, defaults=d)
    assert (got.departure, got.source) == (T0 + timedelta(hours=10), Source.HISTORY)
    got = estimate_departure(T0, T0, id_tag="new-tag", history=h, defaults=d)
    assert (got.departure, got.source) == (T0 + timedelta(hours=8), Source.DEFAULT)
    # an EV departure before arrival is ignored
    bad = EvNeeds(departure=T0 - timedelta(hours=1))
    assert estimate_departure(T0, T0, needs=bad, defaults=d).source is Source.DEFAULT


def test_departure_of_a_car_still_there_moves_on() -> None:
    late = T0 + timedelta(hours=9)
    got = estimate_departure(T0, late, defaults=DemandDefaults(dwell_hours=8))
    assert got.departure == late + timedelta(minutes=15)


def test_energy_sources_and_what_is_left() -> None:
    h = history()
    ev = EvNeeds(energy_kwh=12.0, delivered_kwh_at_notice=2.0)
    got = estimate_energy(delivered_kwh=5.0, needs=ev, id_tag="tag-1", history=h)
    assert (got.remaining_kwh, got.total_kwh, got.source) == (9.0, 14.0, Source.EV)
    got = estimate_energy(delivered_kwh=5.0, id_tag="tag-1", history=h)
    assert (got.remaining_kwh, got.source) == (20.0, Source.HISTORY)
    got = estimate_energy(delivered_kwh=25.0, defaults=DemandDefaults(energy_kwh=20))
    assert (got.remaining_kwh, got.source) == (0.0, Source.DEFAULT)


def test_history_needs_enough_sessions_and_round_trips() -> None:
    h = TagHistory(min_sessions=2)
    h.record(PastSession("x", T0, T0 + timedelta(hours=1), 5))
    assert h.dwell("x") is None
    h.record(PastSession("x", T0, T0 - timedelta(hours=1), 5))  # broken: ignored
    assert len(h.sessions("x")) == 1
    again = TagHistory.from_export(history().export())
    assert again.energy_kwh("tag-1") == 25.0


def read(est: RateEstimator, t: float, a: tuple[float, float, float], offered: float):
    return est.update(CurrentReading(minutes(t), dict(zip((L1, L2, L3), a, strict=True)), offered))


def test_single_phase_car_learned_with_hysteresis() -> None:
    est = RateEstimator(confirm=3)
    assert read(est, 0, (16, 0, 0), 16).lines == (L1, L2, L3)  # not yet confirmed
    read(est, 1, (16, 0.2, 0), 16)
    assert read(est, 2, (16, 0, 0), 16).lines == (L1,)
    # one odd reading changes nothing
    assert read(est, 3, (16, 3, 3), 16).lines == (L1,)
    assert read(est, 4, (16, 0, 0), 16).lines == (L1,)
    # a paused car teaches nothing about lines
    for t in range(5, 10):
        r = read(est, t, (0, 0, 0), 16)
    assert r.lines == (L1,) and r.suspended


def test_cap_learned_when_the_car_takes_less_and_released_when_it_takes_it_all() -> None:
    est = RateEstimator(confirm=3, margin_a=2, headroom_a=0.5)
    for t in range(3):
        r = read(est, t, (13, 13, 13), 32)
    assert r.max_current_a == pytest.approx(13.5)
    # offered the cap, it keeps drawing 13: cap kept
    assert read(est, 3, (13, 13, 13), 13.5).max_current_a == pytest.approx(13.5)
    # it comes up to the cap: it might take more
    assert read(est, 4, (13.4, 13.4, 13.4), 13.5).max_current_a is None
    # a car that takes what it is offered never gets a cap
    est2 = RateEstimator()
    for t in range(10):
        assert read(est2, t, (31.5, 31.5, 31.5), 32).max_current_a is None


@given(
    st.lists(
        st.tuples(st.floats(0, 40), st.floats(0, 40), st.floats(0, 40), st.floats(0, 40)),
        max_size=40,
    )
)
def test_rate_estimate_is_always_well_formed(rows: list[tuple[float, ...]]) -> None:
    est = RateEstimator(wired=(L1, L2))
    for i, (a, b, c, offered) in enumerate(rows):
        r = read(est, i, (a, b, c), offered)
        assert r.lines and set(r.lines) <= {L1, L2}
        assert r.max_current_a is None or r.max_current_a > 0
