"""Calibrating what drivers state: learned on some sessions, applied to others."""

from __future__ import annotations

import statistics
from datetime import datetime, timedelta

import pytest

from gridshare.simulation.information import Statement, StatementCalibration

MONDAY_8 = datetime(2019, 6, 3, 8, 0)
SATURDAY_8 = datetime(2019, 6, 8, 8, 0)


def _past(arrival: datetime, stated_h: float, real_h: float, n: int) -> list[Statement]:
    return [
        Statement(arrival + timedelta(minutes=i), stated_h, real_h + 0.01 * i, 20.0, 12.0)
        for i in range(n)
    ]


def test_a_stay_moves_by_the_median_of_its_class() -> None:
    cal = StatementCalibration.fit(
        _past(MONDAY_8, 3.0, 7.0, 21) + _past(MONDAY_8, 9.5, 9.0, 21), min_sessions=20
    )
    assert cal.dwell_h(MONDAY_8, 3.0) == pytest.approx(4.0 + 0.1 + 3.0)  # median +4.1 h
    assert cal.dwell_h(MONDAY_8, 9.5) == pytest.approx(9.0 + 0.1)
    # an energy asked is scaled by what such asks took
    assert cal.energy_kwh(20.0) == pytest.approx(12.0)


def test_a_thin_class_falls_back_to_a_coarser_one() -> None:
    """Saturday 8:00 has no class of its own: the stated stay's class is used."""
    cal = StatementCalibration.fit(_past(MONDAY_8, 3.0, 5.0, 25) + _past(SATURDAY_8, 3.0, 2.0, 3))
    shifts = [2.0 + 0.01 * i for i in range(25)] + [-1.0 + 0.01 * i for i in range(3)]
    assert cal.dwell_h(SATURDAY_8, 3.0) == pytest.approx(3.0 + statistics.median(shifts))
    nothing = StatementCalibration.fit([])
    assert nothing.dwell_h(SATURDAY_8, 3.0) == 3.0
    assert nothing.energy_kwh(20.0) == 20.0


def test_never_shorter_than_a_quarter_hour() -> None:
    cal = StatementCalibration.fit(_past(MONDAY_8, 3.0, 0.0, 25))
    assert cal.dwell_h(MONDAY_8, 3.0) == 0.25


def test_a_low_quantile_is_the_cautious_side() -> None:
    """Quantile 0.25: stays moved by the lower quartile of the shifts, energies
    scaled by the upper quartile of the ratios."""
    past = [
        Statement(MONDAY_8 + timedelta(minutes=i), 3.0, 3.0 + i, 20.0, float(i)) for i in range(21)
    ]
    cal = StatementCalibration.fit(past, quantile=0.25)
    assert cal.dwell_h(MONDAY_8, 3.0) == pytest.approx(3.0 + 5.0)
    assert cal.energy_kwh(20.0) == pytest.approx(15.0)
    assert StatementCalibration.fit(past).dwell_h(MONDAY_8, 3.0) == pytest.approx(13.0)
