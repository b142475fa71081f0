"""The EV model: lag toward the offered limit, taper near full, stop when full."""

from __future__ import annotations

import pytest

from gridshare.peers.ev import Ev, EvSpec

VXP3 = 230.0 * 3


def test_draw_follows_the_limit_with_a_first_order_lag() -> None:
    ev = Ev.plugged(EvSpec(lag_s=3.0))
    ev.step(30.0, 32.0, VXP3)
    assert ev.current_a == pytest.approx(32.0, abs=0.01)
    ev.step(3.0, 10.0, VXP3)  # one time constant: 63 % of the way down
    assert ev.current_a == pytest.approx(10.0 + 22.0 * 0.3679, abs=0.05)
    ev.step(15.0, 10.0, VXP3)
    assert ev.current_a == pytest.approx(10.0, abs=0.2)


def test_never_above_its_own_maximum() -> None:
    ev = Ev.plugged(EvSpec(max_current_a=16.0, lag_s=0.0))
    ev.step(10.0, 32.0, VXP3)
    assert ev.current_a == 16.0


def test_pauses_below_its_minimum_current() -> None:
    ev = Ev.plugged(EvSpec(lag_s=0.0))
    assert ev.step(60.0, 5.0, VXP3) == 0.0
    assert ev.current_a == 0.0


def test_energy_matches_current_times_voltage() -> None:
    ev = Ev.plugged(EvSpec(lag_s=0.0, battery_kwh=100.0))
    wh = ev.step(3600.0, 16.0, VXP3)
    assert wh == pytest.approx(16.0 * VXP3, rel=1e-6)
    assert ev.soc == pytest.approx(0.3 + 16.0 * VXP3 / 100_000.0)


def test_tapers_above_the_taper_soc() -> None:
    ev = Ev.plugged(EvSpec(soc_start=0.9, taper_from_soc=0.8, lag_s=0.0))
    # halfway through the taper band: halfway between max and min current
    assert ev.acceptance_a() == pytest.approx(32.0 - 26.0 * 0.5)
    ev.step(5.0, 32.0, VXP3)
    assert ev.current_a < 20.0


def test_stops_when_the_target_is_reached() -> None:
    ev = Ev.plugged(EvSpec(battery_kwh=10.0, soc_start=0.79, soc_target=0.8, lag_s=0.0))
    wh = ev.step(3600.0, 32.0, VXP3)
    assert wh == pytest.approx(100.0)
    assert ev.full
    assert ev.current_a == 0.0
    assert ev.step(60.0, 32.0, VXP3) == 0.0


def test_a_one_phase_car_draws_power_of_one_phase() -> None:
    ev = Ev.plugged(EvSpec(phases=1, lag_s=0.0))
    assert ev.step(3600.0, 16.0, 230.0) == pytest.approx(16.0 * 230.0)


def test_rejects_impossible_specs() -> None:
    with pytest.raises(ValueError):
        EvSpec(phases=4)
    with pytest.raises(ValueError):
        EvSpec(soc_start=1.5)
