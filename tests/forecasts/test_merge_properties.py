"""Property tests: the merged capacity equals a minute-by-minute reference and is
never more permissive than any forecast in force."""

from __future__ import annotations

import math

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from forecasts import CapacityBook, ForecastType, Limit, Phase, Unit, block_limit
from optimizer import TimeGrid

from .helpers import T0, block, forecast, site

GRID = TimeGrid(start=T0, slot_minutes=15, slots=8)  # minutes 0..120
V = 230.0


@st.composite
def blocks(draw: st.DrawFn) -> tuple[float, int, int, Unit, Phase]:
    m0 = draw(st.integers(-30, 140))
    m1 = draw(st.integers(m0 + 1, 160))
    unit = draw(st.sampled_from([Unit.A, Unit.KW, Unit.W, Unit.KWH]))
    phase = draw(st.sampled_from(list(Phase)))
    cap = draw(st.floats(0, 300, allow_nan=False))
    return cap, m0, m1, unit, phase


forecasts_st = st.lists(st.lists(blocks(), min_size=1, max_size=4), min_size=1, max_size=6)


def reference(fcs: list[list[tuple[float, int, int, Unit, Phase]]]) -> list[Limit]:
    """Per minute 0..119: the limit of the newest forecast with a block there."""
    out = []
    for m in range(120):
        lim: Limit | None = None
        for fc in fcs:
            here = [b for b in fc if b[1] <= m < b[2]]
            if here:
                lim = Limit()
                for cap, m0, m1, unit, phase in here:
                    lim = lim.tighter(block_limit(block(cap, m0, m1, unit, phase), V))
        out.append(lim or Limit())
    return out


@settings(max_examples=150, deadline=None)
@given(fcs=forecasts_st)
def test_merge_matches_reference(fcs: list[list[tuple[float, int, int, Unit, Phase]]]) -> None:
    book = CapacityBook()
    for i, fc in enumerate(fcs):
        book.add(forecast(*(block(*b) for b in fc), at=i))
    cap = book.capacity(site(V), GRID, T0)
    ref = reference(fcs)
    for s in range(GRID.slots):
        minutes_ = ref[15 * s : 15 * s + 15]
        want_a = min([160.0] + [x.limit_a for x in minutes_])
        want_kw = min([math.inf] + [x.limit_kw for x in minutes_])
        assert np.isclose(cap.limit_a["trafo"][s], want_a)
        assert cap.limit_kw["trafo"][s] == want_kw or np.isclose(cap.limit_kw["trafo"][s], want_kw)
        # never more permissive than what is in force anywhere in the slot
        for x in minutes_:
            assert cap.limit_a["trafo"][s] <= x.limit_a + 1e-9
            assert cap.limit_kw["trafo"][s] <= x.limit_kw + 1e-9
    # other groups keep their static limits
    assert np.all(cap.limit_a["grid"] == 250)


@settings(max_examples=60, deadline=None)
@given(
    fcs=forecasts_st,
    fb=st.lists(blocks(), min_size=1, max_size=3),
    offline=st.booleans(),
    override=st.floats(0, 200),
)
def test_capacity_is_the_minimum_of_all_sources(
    fcs: list[list[tuple[float, int, int, Unit, Phase]]],
    fb: list[tuple[float, int, int, Unit, Phase]],
    offline: bool,
    override: float,
) -> None:
    from forecasts import Override

    from .helpers import minutes

    book = CapacityBook()
    for i, fc in enumerate(fcs):
        book.add(forecast(*(block(*b) for b in fc), at=i))
    book.add(forecast(*(block(*b) for b in fb), type_=ForecastType.FALLBACK_CONSUMPTION))
    book.set_override(Override("o", "trafo", minutes(30), minutes(60), limit_a=override))
    book.heartbeat("dso", minutes(-1) if offline else minutes(1))
    br = book.breakdown(site(V), GRID, T0, "trafo")
    cap = book.capacity(site(V), GRID, T0)
    assert np.all(cap.limit_a["trafo"] <= br["static_a"])
    assert np.all(cap.limit_a["trafo"] <= br["override_a"])
    assert np.all(cap.limit_a["trafo"] <= br["dso_a"])
    assert np.all(cap.limit_kw["trafo"] <= br["dso_kw"])
    if offline:
        assert np.all(cap.limit_a["trafo"] <= br["fallback_a"])
        assert np.all(cap.limit_kw["trafo"] <= br["fallback_kw"])
    else:
        dso_only = np.minimum.reduce([br["static_a"], br["override_a"], br["dso_a"]])
        assert np.allclose(cap.limit_a["trafo"], dso_only)
    assert np.all(cap.limit_a["trafo"] >= 0)


@settings(max_examples=100, deadline=None)
@given(fcs=forecasts_st, cut=st.integers(-30, 160))
def test_what_applies_and_what_is_kept_match_the_reference(
    fcs: list[list[tuple[float, int, int, Unit, Phase]]], cut: int
) -> None:
    import json

    from .helpers import minutes

    book = CapacityBook()
    for i, fc in enumerate(fcs):
        book.add(forecast(*(block(*b) for b in fc), at=i))
    ref = reference(fcs)

    def at_minute(b: CapacityBook, m: int) -> Limit:
        s = b.applied_at("trafo-1", ForecastType.CONSUMPTION, V, minutes(m + 0.5))
        return Limit() if s is None else s.limit

    for m in range(120):
        got = at_minute(book, m)
        assert np.isclose(got.limit_a, ref[m].limit_a) or got.limit_a == ref[m].limit_a
        assert np.isclose(got.limit_kw, ref[m].limit_kw) or got.limit_kw == ref[m].limit_kw
    # pruned, saved and read back: the same from the cut on
    book.prune(minutes(cut))
    again = CapacityBook.from_export(json.loads(json.dumps(book.export())))
    assert again.pieces("trafo-1", ForecastType.CONSUMPTION) == book.pieces(
        "trafo-1", ForecastType.CONSUMPTION
    )
    for m in range(max(cut, 0), 120):
        assert at_minute(again, m) == at_minute(book, m)
