"""The simulator's physics: energy to the Wh, caps and departures honoured."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gridshare.simulation import CarModel, Simulation, run_strategies
from gridshare.simulation.engine import StepContext
from gridshare.simulation.sessions import prepare_sessions
from gridshare.simulation.strategies import GridshareStrategy
from optimizer import SessionDemand, Site
from tests.simulation.helpers import session, tiny_site

WH = 1e-3


class Greedy:
    """Offers every car far more than any maximum: physics alone limits it."""

    name = "greedy"

    def decide(self, ctx: StepContext) -> Mapping[str, float]:
        return {s.session_id: 1000.0 for s in ctx.live}


def _check_books(sim: Simulation, r) -> None:
    # per step, per connector: drawn ≤ offered, ≤ the car's and the connector's maximum
    assert np.all(r.current_a <= r.offered_a + 1e-12)
    cmax = np.array([sim.site.connectors[c].max_current_a for c in r.connector_ids])
    assert np.all(r.current_a <= cmax[None, :] + 1e-12)
    # nothing outside a session's stay; energy per session from the trace, to the Wh
    occupied = np.zeros_like(r.current_a, dtype=bool)
    for i, s in enumerate(sim.sessions):
        c = sim.col[s.connector_id]
        a, d = sim.arrive_step[i], sim.leave_step[i]
        occupied[a:d, c] = True
        from_trace = float(r.current_a[a:d, c].sum() * sim.kwh_per_a[i])
        assert from_trace == pytest.approx(r.delivered_kwh[i], abs=WH)
        assert r.delivered_kwh[i] <= s.energy_kwh + 1e-9
    assert not np.any(r.current_a[~occupied])
    total = float(r.power_kw.sum() * sim.step_hours)
    assert total == pytest.approx(float(r.delivered_kwh.sum()), abs=WH)


def test_one_car_alone_takes_its_need_exactly() -> None:
    site = tiny_site(limit_a=100)
    # 32 A × 230 V = 7.36 kW; 5 kWh takes 41 min; 2 h stay is plenty (no taper)
    sim = Simulation(site, [session("s", "B/1", 0, 120, 5.0)], car=CarModel(taper_kwh=0))
    r = sim.run(Greedy())
    assert r.delivered_kwh[0] == pytest.approx(5.0, abs=1e-9)
    # full steps at 32 A, then the remainder
    per_step = 32 * 0.230 * 5 / 60
    full = int(5.0 // per_step)
    assert np.all(r.current_a[:full, 1] == 32.0)
    assert r.current_a[full, 1] == pytest.approx((5.0 - full * per_step) / (0.230 * 5 / 60))
    assert not r.current_a[full + 1 :].any()
    _check_books(sim, r)


def test_departure_cuts_charging() -> None:
    site = tiny_site(limit_a=100)
    sim = Simulation(site, [session("s", "A/1", 0, 30, 50.0)], car=CarModel(taper_kwh=0))
    r = sim.run(Greedy())
    # 16 A for six 5-minute steps, then gone
    assert r.delivered_kwh[0] == pytest.approx(16 * 0.230 * 0.5, abs=1e-12)
    _check_books(sim, r)


def test_taper_slows_the_end_and_the_car_never_exceeds_its_need() -> None:
    site = tiny_site(limit_a=100)
    sim = Simulation(site, [session("s", "B/1", 0, 600, 4.0)], car=CarModel(taper_kwh=2.0))
    r = sim.run(Greedy())
    draw = r.current_a[:, 1]
    assert draw[0] == 32.0
    tail = draw[draw < 32.0]
    assert len(tail) > 5 and np.all(np.diff(tail[tail > 0]) <= 1e-12)  # falls off
    assert 4.0 - 1e-3 <= r.delivered_kwh[0] <= 4.0
    _check_books(sim, r)


def test_car_maximum_is_honoured() -> None:
    site = tiny_site(limit_a=100)
    sim = Simulation(
        site, [session("s", "B/1", 0, 60, 30.0)], car=CarModel(taper_kwh=0, max_current_a=10.0)
    )
    r = sim.run(Greedy())
    assert r.current_a.max() == 10.0
    _check_books(sim, r)


def test_the_planner_never_sees_the_real_departure_or_need() -> None:
    seen: list[SessionDemand] = []

    class Spy:
        name = "spy"

        def decide(self, ctx: StepContext) -> Mapping[str, float]:
            seen.extend(ctx.demands())
            return {}

    site = tiny_site()
    s = session("s", "B/1", 0, 60, 7.0, stated=False)
    sim = Simulation(site, [s])
    sim.run(Spy())
    assert seen and all(d.departure != s.departure for d in seen)
    assert all(d.energy_kwh == 20.0 for d in seen)  # the service's default estimate


sessions_strategy = st.lists(
    st.tuples(
        st.sampled_from(["A/1", "B/1", "C/1"]),
        st.integers(0, 48),  # arrival step
        st.integers(1, 36),  # stay in steps
        st.floats(0.0, 15.0),
    ),
    min_size=1,
    max_size=6,
)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    raw=sessions_strategy,
    limit=st.sampled_from([20.0, 40.0, 100.0]),
    taper=st.sampled_from([0.0, 1.0]),
)
def test_books_balance_for_every_strategy(raw, limit, taper) -> None:
    site = tiny_site(limit_a=limit)
    from datetime import timedelta

    items = [session(f"s{i}", c, a * 5, (a + n) * 5, e) for i, (c, a, n, e) in enumerate(raw)]
    kept = prepare_sessions(items, site.connectors, timedelta(minutes=5)).sessions
    if not kept:
        return
    results = run_strategies(site, kept, car=CarModel(taper_kwh=taper))
    bound = float(results["offline-optimal"].extra["lp_bound_kwh"])  # type: ignore[arg-type]
    replay = float(results["offline-optimal"].delivered_kwh.sum())
    assert bound - len(kept) * 1e-6 - 1e-4 <= replay <= bound + 1e-4
    for name, r in results.items():
        sim = Simulation(site, kept, car=CarModel(taper_kwh=taper))
        _check_books(sim, r)
        if name != "uncontrolled":
            assert not r.violations, name
            assert r.offer_violations == 0, name
        if name != "uncontrolled":
            assert r.delivered_kwh.sum() <= bound + 1e-4, name


def _garage() -> Site:
    def station(sid: str, phases: list[str]) -> dict:
        return {
            "id": sid,
            "group": "fuse",
            "connectors": [{"id": 1, "max_current_a": 32, "phases": phases}],
        }

    return Site.model_validate(
        {
            "site": {"name": "garage", "slot_minutes": 5, "horizon_hours": 2},
            "groups": [{"id": "fuse", "limit_a": 32}],
            "chargers": [
                station("X", ["L1", "L2", "L3"]),
                station("Y", ["L2"]),
                station("Z", ["L3"]),
            ],
        }
    )


def test_one_phase_car_on_three_phase_connector_and_meter_values() -> None:
    site = _garage()
    x = replace(session("x", "X/1", 0, 60, 30.0), car_lines=("L1",))
    items = [x, session("y", "Y/1", 0, 60, 30.0), session("z", "Z/1", 0, 60, 30.0)]
    sim = Simulation(site, items, car=CarModel(taper_kwh=0))
    # a 1-phase car draws 230 V × I, not three times that
    assert sim.kw_per_a[0] == pytest.approx(0.230)
    got = {}
    for meter in (True, False):
        r = sim.run(GridshareStrategy(meter_values=meter))
        assert not r.violations and r.offer_violations == 0
        _check_books(sim, r)
        got[meter] = float(r.delivered_kwh.sum())
    assert got[True] > got[False] + 10.0  # lines L2, L3 freed for Y and Z
