"""Nothing about a meter may ever raise a limit above what the group's static
limit, the operator's override and the DSO's forecast allow — composed as the
service composes them: the DSO's capacity, less the building, under the
operator's limits."""

from __future__ import annotations

from datetime import datetime, timedelta

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from gridshare.meters.building import BuildingLoad
from gridshare.meters.readings import checked
from gridshare.site.operator_limits import OperatorLimits
from optimizer import Capacity, Site, TimeGrid
from optimizer.families import family_limit
from optimizer.problem import LimitWindow
from optimizer.site import LINES
from tests.meters.test_building_load import T0, amps, meter, site

AMPS = st.floats(-500, 500)
LINE_AMPS = st.tuples(AMPS, AMPS, AMPS)


@settings(max_examples=60, deadline=None)
@given(
    connection=st.lists(LINE_AMPS, max_size=4),
    load=st.lists(st.tuples(*(st.floats(0, 500),) * 3), max_size=3),
    generation=st.lists(st.tuples(*(st.floats(0, 500),) * 3), max_size=3),
    dso_a=st.floats(0, 150),
    override_a=st.floats(0, 80),
    later_s=st.sampled_from([1.0, 30.0, 3600.0]),
)
def test_no_reading_ever_raises_a_limit_above_static_override_or_dso(
    connection: list[tuple[float, float, float]],
    load: list[tuple[float, float, float]],
    generation: list[tuple[float, float, float]],
    dso_a: float,
    override_a: float,
    later_s: float,
) -> None:
    meters = [
        meter(),
        meter(id="kitchen", group="panel", measures="load", max_non_ev_a=16),
        meter(id="pv", group="panel", measures="generation", max_non_ev_a=0),
    ]
    b = BuildingLoad(site(), meters)
    for k, values in enumerate(connection):
        at = T0 + timedelta(seconds=k)
        b.accept(checked(meters[0], at, amps(*values), at))
    for m, readings in ((meters[1], load), (meters[2], generation)):
        for k, values in enumerate(readings):
            at = T0 + timedelta(seconds=k)
            b.accept(checked(m, at, amps(*values), at))

    def dso(s: Site, grid: TimeGrid, now: datetime) -> Capacity:
        cut = LimitWindow("grid", T0, T0 + timedelta(hours=1), limit_a=dso_a)
        return Capacity.static(s, grid).limited(grid, [cut])

    operator = OperatorLimits()
    operator.set(
        "panel", limit_a=override_a, limit_kw=None, start=None, end=None, set_by="op", at=T0
    )
    now = T0 + timedelta(seconds=later_s)
    grid = TimeGrid.covering(now, 15, 2)
    s = site()
    cap = operator.fold(b.capacity_provider(dso)(s, grid, now), grid, now)
    allowed = operator.fold(dso(s, grid, now), grid, now)
    for group in ("grid", "panel"):
        for line in LINES:
            key = (group, line.value)
            got = family_limit(s, cap, key, grid.slots)
            bound = family_limit(s, allowed, key, grid.slots)
            assert np.all(got <= bound + 1e-9), (key, got, bound)
            assert np.all(got >= 0.0)
    # and the bound itself is what the three allow
    assert np.all(family_limit(s, allowed, ("grid", "L1"), grid.slots) <= 100.0)
    assert np.all(family_limit(s, allowed, ("panel", "L1"), grid.slots) <= override_a + 1e-9)
