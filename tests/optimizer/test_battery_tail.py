"""Battery-tail rows: a car is never planned above max × (need − delivered) / taper."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pytest

from optimizer import ProblemError, SessionDemand, solve
from optimizer.prepare import prepare
from tests.optimizer.sites import NOW, problem, site_from


def lone_site(max_a: float = 32.0):
    con = {"id": 1, "max_current_a": max_a, "min_current_a": 0, "phases": ["L1"]}
    return site_from([{"id": "g", "limit_a": 63}], [{"id": "C", "group": "g", "connectors": [con]}])


def car(kwh: float, taper: float | None, hours: float = 4) -> SessionDemand:
    return SessionDemand("s", "C/1", NOW, NOW + timedelta(hours=hours), kwh, taper_kwh=taper)


def test_a_tapering_car_is_planned_along_its_tail() -> None:
    prob = problem(lone_site(), [car(5.0, taper=3.0)])
    lp = prepare(prob)
    plan = solve(prob)
    sc = lp.sessions[0]
    x = plan.schedule("C/1")[lp.period_first[sc.periods]]
    delivered_before = np.concatenate([[0.0], np.cumsum(sc.kwh_per_a * x)[:-1]])
    assert np.all(x <= 32.0 * (5.0 - delivered_before) / 3.0 + 1e-6)
    assert x[0] == pytest.approx(32.0)  # a full battery's worth away: no tail yet
    assert 0 < x[2] < 32.0  # in the tail
    untapered = solve(problem(lone_site(), [car(5.0, taper=None)])).schedule("C/1")
    assert untapered[2] == pytest.approx(32.0)


def test_rows_are_written_only_where_the_tail_can_bind() -> None:
    lp = prepare(problem(lone_site(), [car(30.0, taper=3.0, hours=6)]))
    assert 0 < len(lp.tail_x) < lp.n_x
    assert lp.x_period[lp.tail_x].min() > 0  # 30 kWh cannot be near full in the first slot
    assert len(prepare(problem(lone_site(), [car(30.0, taper=None, hours=6)])).tail_x) == 0


@pytest.mark.parametrize("taper", [0.0, -1.0, float("inf"), float("nan")])
def test_a_tail_must_be_a_positive_energy(taper: float) -> None:
    with pytest.raises(ProblemError, match="taper_kwh"):
        car(5.0, taper=taper)
