"""Money and carbon in the plan (`optimizer.costs`): the peak is paid once per
billing period and from 0 after its start, the dispatch keeps the LP's peak,
drivers come first unless unmet energy has a price, energy goes where it is
cheap or clean."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import numpy as np
import pytest

from optimizer import SessionDemand, costs, solve
from optimizer.cost_signal import CostSignal, PeakCharge
from optimizer.highs_backend import solve_arrays
from optimizer.prepare import prepare
from optimizer.problem import PlanningProblem
from optimizer.site import LINES, Site
from tests.optimizer.sites import NOW, site_from
from tests.optimizer.sites import problem as any_problem

BASE_A = 10.0  # the building, per line
AT = NOW.replace(minute=0)  # on a slot's start: a slot's power is its interval's average
VOLT = 230.0


def site(limit_a: float = 200.0, slot_minutes: int = 15) -> Site:
    cons = [{"id": 1, "max_current_a": 32.0, "min_current_a": 6.0, "phases": ["L1", "L2", "L3"]}]
    chargers = [{"id": f"C{i}", "group": "g", "connectors": cons} for i in (1, 2)]
    return site_from([{"id": "g", "limit_a": limit_a}], chargers, slot_minutes=slot_minutes)


def cars(kwh: float = 30.0, hours: float = 6.0) -> list[SessionDemand]:
    end = AT + timedelta(hours=hours)
    return [SessionDemand(f"s{i}", f"C{i}/1", AT, end, kwh) for i in (1, 2)]


def problem(site: Site, sessions: list[SessionDemand]) -> PlanningProblem:
    return any_problem(site, sessions, now=AT)


def with_costs(p: PlanningProblem, costs: CostSignal) -> PlanningProblem:
    cap = p.capacity.with_non_ev({"g": {ln: np.full(p.grid.slots, BASE_A) for ln in LINES}})
    return replace(p, capacity=cap, costs=costs)


def base_kw() -> float:
    return 3 * BASE_A * VOLT / 1000.0


def import_kw(plan, p: PlanningProblem) -> np.ndarray:
    """Per slot: the connection's import as planned (chargers + building)."""
    return plan.power_kw.sum(axis=0) + base_kw()


def rise_of(p: PlanningProblem) -> np.ndarray:
    lp = prepare(p)
    raw = solve_arrays(lp, 10.0)
    assert raw.extra is not None
    return raw.extra


UNHEDGED = 0.0
"""`CostSignal.hedge_share` for tests of a term's own trade up to the stated
departure (the hedge has tests of its own)."""


def test_the_peak_is_paid_once_and_then_free_within_the_period() -> None:
    p = with_costs(
        problem(site(), cars()),
        CostSignal(peak=PeakCharge(15.0, so_far_kw=0.0), hedge_share=UNHEDGED),
    )
    rise = rise_of(p)
    plan = solve(p)
    peak = float(import_kw(plan, p).max())
    # one rise for the whole horizon: the highest interval, not a sum over intervals
    assert rise[0] == pytest.approx(peak, rel=0.02)
    # the energy spread flat: the lowest peak that delivers it
    need = 60.0
    hours = (p.grid.end - AT).total_seconds() / 3600.0
    assert peak <= base_kw() + need / min(hours, 6.0) + 1.0
    assert sum(plan.unmet_kwh.values()) < 0.01 * need  # the dispatch's 0.1 A steps
    # the next re-plan knows that peak: using it again costs nothing
    known = PeakCharge(15.0, so_far_kw=float(rise[0]))
    again = with_costs(problem(site(), cars()), CostSignal(peak=known, hedge_share=UNHEDGED))
    assert rise_of(again)[0] == pytest.approx(0.0, abs=1e-6)
    assert float(import_kw(solve(again), again).max()) <= rise[0] + 1e-6


def test_the_dispatch_keeps_the_lp_s_peak() -> None:
    """Give-back of leftover room would charge at the cars' maximum now; the
    peak row keeps the interval at the peak so far."""
    so_far = base_kw() + 12.0
    peak = PeakCharge(15.0, so_far_kw=so_far)
    p = with_costs(problem(site(), cars()), CostSignal(peak=peak, hedge_share=UNHEDGED))
    plan = solve(p)
    assert plan.status.value == "optimal"
    assert float(import_kw(plan, p)[0]) <= so_far + 1e-6
    free = solve(replace(p, costs=None))
    assert float(import_kw(free, p)[0]) > so_far + 1.0  # without the term it would


def test_a_new_billing_period_starts_from_zero() -> None:
    """Cheap energy after the period's start, a high peak so far before it: the
    reset makes the cheap slots dear (a new peak), so energy moves before it."""
    base = problem(site(), cars(kwh=10.0))
    slots = base.grid.slots
    price = np.where(np.arange(slots) >= slots // 2, 0.10, 0.30)
    peak = PeakCharge(15.0, so_far_kw=60.0)
    no_reset = with_costs(base, CostSignal(energy_price=price, peak=peak))
    reset = with_costs(
        base, CostSignal(energy_price=price, peak=replace(peak, reset_slot=slots // 2))
    )
    before = slice(0, slots // 2)
    e_no = solve(no_reset).power_kw[:, before].sum()
    e_re = solve(reset).power_kw[:, before].sum()
    assert e_no < 1.0  # all after the half: cheaper, and under the old peak
    assert e_re * p_hours(base) > 19.0  # all before: a new period's peak would cost


def p_hours(p: PlanningProblem) -> float:
    return p.grid.slot_hours


def test_drivers_first_the_same_energy_with_and_without_money() -> None:
    """Tight capacity: the terms never cost energy."""
    tight = problem(site(limit_a=24.0), cars(kwh=40.0, hours=4.0))
    price = np.linspace(0.5, 0.1, tight.grid.slots)
    costs = CostSignal(
        energy_price=price,
        carbon_kg_per_kwh=np.linspace(0.1, 0.5, tight.grid.slots),
        carbon_price_per_kg=0.2,
        peak=PeakCharge(30.0, so_far_kw=0.0),
    )
    plain = solve(with_costs(tight, CostSignal()))
    priced = solve(with_costs(tight, costs))
    assert sum(priced.energy_kwh.values()) == pytest.approx(
        sum(plain.energy_kwh.values()), rel=1e-4
    )
    assert sum(plain.unmet_kwh.values()) > 1.0  # capacity was short: the test binds


def test_a_value_of_unmet_energy_lets_a_car_stay_short_of_a_new_peak() -> None:
    """Peak so far just above the building: charging in full needs a new peak.
    Drivers first: full. Worth 0.05 a kWh: left short rather than pay 15 per kW."""
    so_far = base_kw() + 2.0
    p = problem(site(), cars(kwh=20.0, hours=3.0))
    first = with_costs(p, CostSignal(peak=PeakCharge(15.0, so_far_kw=so_far)))
    cheap = with_costs(
        p, CostSignal(peak=PeakCharge(15.0, so_far_kw=so_far), value_of_unmet_kwh=0.05)
    )
    dear = with_costs(
        p, CostSignal(peak=PeakCharge(15.0, so_far_kw=so_far), value_of_unmet_kwh=100.0)
    )
    assert sum(solve(first).unmet_kwh.values()) < 0.4  # 0.1 A steps under the peak
    assert sum(solve(dear).unmet_kwh.values()) < 0.4
    short = solve(cheap)
    assert sum(short.unmet_kwh.values()) > 10.0
    assert float(import_kw(short, cheap).max()) <= so_far + 1e-6


def test_energy_goes_to_the_cheapest_and_cleanest_slots() -> None:
    p = problem(site(), cars(kwh=5.0))
    slots = p.grid.slots
    cheap_at = slots - 4
    price = np.full(slots, 0.3)
    price[cheap_at] = 0.1
    plan = solve(with_costs(p, CostSignal(energy_price=price, hedge_share=UNHEDGED)))
    assert int(np.argmax(plan.power_kw.sum(axis=0))) == cheap_at
    moer = np.full(slots, 0.4)
    moer[5] = 0.1
    plan = solve(with_costs(p, CostSignal(carbon_kg_per_kwh=moer, carbon_price_per_kg=0.1)))
    assert int(np.argmax(plan.power_kw.sum(axis=0))) == 5


def test_five_minute_slots_hold_the_fifteen_minute_average() -> None:
    """5-minute slots, a 15-minute peak: rows are intervals, split per slot for
    the dispatch; every interval's average stays within the peak."""
    s = site(slot_minutes=5)
    so_far = base_kw() + 15.0
    p = with_costs(problem(s, cars()), CostSignal(peak=PeakCharge(15.0, so_far_kw=so_far)))
    plan = solve(p)
    kw = import_kw(plan, p)
    lead = (p.grid.epoch_slot() * 5 % 15) // 5
    fine = (len(kw) - 3) // 3 * 3
    avg = kw[(3 - lead) % 3 :][:fine].reshape(-1, 3).mean(axis=1)
    assert float(avg.max()) <= so_far + 1e-6
    assert sum(plan.unmet_kwh.values()) < 1.0  # of 60: 0.1 A steps under the split


def test_bad_signals_are_refused() -> None:
    p = problem(site(), cars())
    with pytest.raises(Exception, match="slots"):
        replace(p, costs=CostSignal(energy_price=np.zeros(3)))
    with pytest.raises(Exception, match="interval"):
        PeakCharge(1.0, interval_minutes=7)
    for share in (1.0, -0.1, float("nan")):
        with pytest.raises(Exception, match="hedge_share"):
            replace(p, costs=CostSignal(hedge_share=share))


def energy_before(plan, p: PlanningProblem, slot: int) -> dict[str, float]:
    """Per session: kWh the plan delivers in the grid's slots before ``slot``."""
    row = {c: i for i, c in enumerate(plan.connector_ids)}
    return {
        d.session_id: float(plan.power_kw[row[d.connector_id], :slot].sum()) * p.grid.slot_hours
        for d in p.sessions
    }


def money_defers(p: PlanningProblem, share: float) -> PlanningProblem:
    """The money terms pull energy to the stated departure: the last hour is
    cheap and clean, and a peak charge flattens the rest."""
    slots = p.grid.slots
    late = np.arange(slots) >= slots - 4
    costs = CostSignal(
        energy_price=np.where(late, 0.05, 0.45),
        carbon_kg_per_kwh=np.where(late, 0.1, 0.5),
        carbon_price_per_kg=0.2,
        peak=PeakCharge(15.0, so_far_kw=0.0),
        hedge_share=share,
    )
    return with_costs(p, costs)


def test_the_conservative_departure_of_stays_early_late_and_past_the_horizon() -> None:
    """A quarter of the stated stay before the stated departure; a car past it
    is hedged over what is left of its stay; a stay past the grid's end is
    hedged on its own departure, not on the grid's end."""
    p = problem(site(), cars())
    grid = p.grid

    def pos(t) -> float:
        return (t - grid.start).total_seconds() / 60 / grid.slot_minutes

    h = timedelta(hours=1)
    # (stated stay, now, conservative departure), from AT
    for stay, now, expected in (
        (4 * h, 0 * h, 3 * h),
        (4 * h, 3.5 * h, 3.875 * h),
        (30 * h, 0 * h, 22.5 * h),
    ):
        d = SessionDemand("s", "C1/1", AT, AT + stay, 10.0)
        q = replace(p, sessions=(d,), now=AT + now, costs=CostSignal())
        p0 = np.array([pos(q.now)])
        p1 = np.minimum(np.array([pos(d.departure)]), float(grid.slots))
        cut = float(costs.conservative_departure(q, p0, p1)[0])
        assert cut == pytest.approx(pos(AT + expected))
    assert pos(AT + 22.5 * h) > grid.slots  # the last: nothing within the grid is after it


@pytest.mark.parametrize("kwh", [10.0, 30.0, 60.0])
def test_the_money_terms_keep_the_energy_due_before_the_conservative_departure(
    kwh: float,
) -> None:
    """Whatever the energy-only plan delivers by the conservative departure,
    the plan with the money terms delivers by then too (cars leave early);
    without the hedge the money would move it after (the test binds)."""
    base = problem(site(limit_a=100.0), cars(kwh=kwh))
    hedge = CostSignal().hedge_share
    lp = prepare(money_defers(base, hedge))
    p0 = np.array([s.window[0] for s in lp.sessions])
    p1 = np.array([s.window[1] for s in lp.sessions])
    cut = int(np.floor(costs.conservative_departure(lp.problem, p0, p1).min()))
    assert 0 < cut < base.grid.slots
    energy_only = energy_before(solve(with_costs(base, CostSignal())), base, cut)
    hedged = solve(money_defers(base, hedge))
    for sid, kwh_due in energy_before(hedged, base, cut).items():
        assert kwh_due >= energy_only[sid] - 0.05 * kwh
    unhedged = energy_before(solve(money_defers(base, UNHEDGED)), base, cut)
    assert sum(unhedged.values()) < sum(energy_only.values()) - 0.2 * kwh
    assert sum(hedged.energy_kwh.values()) == pytest.approx(sum(energy_only.values()), rel=0.02)


def test_an_optimum_pulls_the_plan_towards_it() -> None:
    """Without a target the car charges early; with the DSO's optimum later on,
    there (a soft target: the energy is the same)."""
    p = problem(site(), cars(kwh=5.0))
    target = np.full(p.grid.slots, np.nan)
    target[8:12] = 10.0
    free = solve(with_costs(p, CostSignal()))
    pulled = solve(with_costs(p, CostSignal(optimum_kw=target)))
    assert free.power_kw[:, 8:12].sum() < 1.0
    assert pulled.power_kw[:, 8:12].sum() * p.grid.slot_hours == pytest.approx(10.0, rel=0.02)
    assert sum(pulled.energy_kwh.values()) == pytest.approx(sum(free.energy_kwh.values()))


def test_both_backends_plan_the_same_costs() -> None:
    slots = problem(site(), cars()).grid.slots
    costs = CostSignal(
        energy_price=np.linspace(0.4, 0.1, slots),
        peak=PeakCharge(15.0, so_far_kw=base_kw() + 5.0),
    )
    p = with_costs(problem(site(), cars()), costs)
    highs, pulp = solve(p), solve(p, backend="pulp")
    assert highs.objective is not None and pulp.objective is not None
    assert pulp.objective == pytest.approx(highs.objective, rel=1e-6, abs=1e-6)
    assert float(import_kw(pulp, p)[0]) == pytest.approx(float(import_kw(highs, p)[0]), abs=0.5)
