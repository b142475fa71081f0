"""The billing period's peak so far: interval averages, paid once, reset at
the period's start in the site's time zone, kept across a restart."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from gridshare.tariff.bill import bill
from gridshare.tariff.config import TariffConfig
from gridshare.tariff.peak import PeakTracker
from gridshare.tariff.tariff import Tariff

ZONE = "America/Los_Angeles"


def tariff(interval: int = 15) -> Tariff:
    cfg = TariffConfig(peak_price_per_kw=15.0, peak_interval_minutes=interval)
    return Tariff.of(cfg, ZONE)


def feed(tr: PeakTracker, start: datetime, kws: list[float], every_s: int = 10) -> datetime:
    """One sample every ``every_s`` seconds, each power for 5 minutes."""
    t = start
    for kw in kws:
        for _ in range(300 // every_s):
            tr.observe(t, kw)
            t += timedelta(seconds=every_s)
    return t


def test_the_peak_is_the_highest_interval_average_not_a_spike() -> None:
    tr = PeakTracker(tariff())
    start = datetime(2019, 5, 10, 17, 0, tzinfo=UTC)
    # 15-minute intervals: (10, 10, 40) → 20; (10, 10, 10) → 10
    end = feed(tr, start, [10, 10, 40, 10, 10, 10, 0])
    assert tr.so_far(end) == pytest.approx(20.0, rel=1e-3)
    assert tr.peak_at == start


def test_the_peak_resets_at_the_local_start_of_the_month() -> None:
    tr = PeakTracker(tariff())
    # 2019-06-01 00:00 in Los Angeles is 07:00 UTC
    before = datetime(2019, 6, 1, 6, 30, tzinfo=UTC)
    t = feed(tr, before, [30, 30, 30, 30, 30, 30])  # until 07:00
    assert tr.so_far(t - timedelta(seconds=1)) == pytest.approx(30.0, rel=1e-3)
    t = feed(tr, t, [5, 5, 5, 5])
    assert tr.so_far(t) == pytest.approx(5.0, rel=1e-3)
    assert tr.period_start == datetime(2019, 6, 1, 7, 0, tzinfo=UTC)


def test_the_peak_survives_a_restart() -> None:
    tr = PeakTracker(tariff())
    start = datetime(2019, 5, 10, 17, 0, tzinfo=UTC)
    end = feed(tr, start, [10, 10, 40, 0, 0, 0])
    again = PeakTracker.of_state(tariff(), tr.to_state())
    assert again.so_far(end) == pytest.approx(tr.so_far(end))
    assert PeakTracker.of_state(tariff(), {"peak_kw": "nonsense"}).so_far(end) == 0.0


def test_the_bill_charges_each_period_s_peak_once() -> None:
    t = tariff()
    start = datetime(2019, 5, 31, 6, 0, tzinfo=UTC)  # the last day of May, local
    step = timedelta(minutes=5)
    n = 12 * 48  # two days: May 30/31 local, then June 1
    kw = [10.0] * n
    kw[3] = 40.0  # one spike in May: its interval averages 20
    b = bill(t, start, step, np.array(kw))
    assert b.peak_kw == pytest.approx(20.0)
    assert b.peak_charge == pytest.approx(15.0 * (20.0 + 10.0))  # May, then June
