"""Departure, energy and real-rate estimates."""

from __future__ import annotations

from datetime import timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from forecasts import (
    DemandDefaults,
    EvNeeds,
    PastSession,
    RateLearner,
    RateSettings,
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
    got = estimate_departure(T0, late, defaults=DemandDefaults(dwell_hours=8, overstay_hours=0.5))
    assert got.departure == late + timedelta(minutes=30)


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


def read(r: RateLearner, a: tuple[float, float, float], offered: float, t: float = 0) -> bool:
    return r.observe(dict(zip((L1, L2, L3), a, strict=True)), offered, at=minutes(t))


def test_a_one_phase_car_is_learned_with_hysteresis() -> None:
    r = RateLearner()
    read(r, (16, 0, 0), 16)
    assert r.lines is None  # one reading is not enough
    assert read(r, (16, 0.2, 0), 16) and r.lines == (L1,)
    # a paused car teaches nothing about lines
    for _ in range(4):
        read(r, (0, 0, 0), 16)
    assert r.lines == (L1,)
    # it loads more lines: counted on every line at once
    assert read(r, (10, 10, 10), 16) and r.lines is None


def test_a_car_taking_less_is_planned_at_its_rate_and_shows_when_it_takes_more() -> None:
    r = RateLearner()
    assert not read(r, (13, 13, 13), 32)  # a single low reading changes nothing
    assert read(r, (13, 13, 13), 32)
    assert (r.rate_a, r.max_current_a) == (13, 14)
    # offered its rate and headroom, it keeps drawing it (or wobbles): nothing changes
    assert not read(r, (13.4, 13.4, 13.4), 14)
    assert not read(r, (12.6, 12.6, 12.6), 14)
    # it takes more: its rate goes
    assert read(r, (13.9, 13.9, 13.9), 14)
    assert r.max_current_a is None
    # a car that takes what it is offered is never limited
    r2 = RateLearner()
    for _ in range(10):
        assert not read(r2, (31.5, 31.5, 31.5), 32)


def test_a_tapering_car_is_followed_down() -> None:
    r = RateLearner()
    read(r, (16, 16, 16), 32)
    read(r, (16, 16, 16), 32)
    assert r.max_current_a == 17
    # under its rate and under the offer: falling, its room goes to others
    assert read(r, (12, 12, 12), 17) and r.max_current_a == 13
    assert read(r, (9, 9, 9), 13) and r.max_current_a == 10
    # drawing all of a lower offer says nothing about a fall
    assert not read(r, (6, 6, 6), 6) and r.rate_a == 9


def test_an_idle_car_is_planned_at_nothing_and_offered_some_again_hourly() -> None:
    r = RateLearner()
    read(r, (0, 0, 0), 16, t=0)
    assert read(r, (0, 0, 0), 16, t=1) and r.idle and r.max_current_a == 0
    # paused, it can't show it wants more: after an hour it is offered some
    assert not read(r, (0, 0, 0), 0, t=30)
    assert read(r, (0, 0, 0), 0, t=61) and r.max_current_a == 1
    # offered some and still idle: nothing again, for another hour
    assert read(r, (0, 0, 0), 1, t=62) and r.max_current_a == 0
    assert read(r, (0, 0, 0), 0, t=123) and r.max_current_a == 1
    # this time it draws: no longer idle
    assert read(r, (1, 1, 1), 1, t=124) and r.max_current_a is None and not r.idle


def test_readings_under_an_old_offer_do_not_count_as_low() -> None:
    r = RateLearner()
    read(r, (10, 10, 10), 32)
    r.offer_changed()
    read(r, (10, 10, 10), 32)
    assert r.rate_a is None
    read(r, (10, 10, 10), 32)
    assert r.rate_a == 10


def test_one_reading_may_stand_for_several() -> None:
    """A simulator's step of constant draw is as many readings as fit in it."""
    r = RateLearner()
    assert r.observe({L1: 7.0}, 32, at=T0, readings=30) and r.rate_a == 7


def test_without_per_line_readings_the_rate_is_still_learned() -> None:
    r = RateLearner()
    for _ in range(2):
        r.observe({}, 32, drawn_a=7.0, at=T0)
    assert r.max_current_a == 8 and r.lines is None


def test_a_car_could_never_show_it_takes_more_so_the_settings_are_refused() -> None:
    with pytest.raises(ValueError):
        RateSettings(headroom_a=0.5, release_a=0.8)
    with pytest.raises(ValueError):
        RateSettings(confirm=0)


@given(
    st.lists(
        st.tuples(*[st.one_of(st.just(0.0), st.floats(0, 40))] * 4),
        max_size=40,
    )
)
def test_what_is_learned_is_always_well_formed(rows: list[tuple[float, ...]]) -> None:
    r = RateLearner(wired=(L1, L2))
    for a, b, c, offered in rows:
        read(r, (a, b, c), offered)
        assert r.lines is None or (r.lines and set(r.lines) <= {L1, L2})
        m = r.max_current_a
        assert m is None or m == 0 or m >= r.settings.headroom_a
