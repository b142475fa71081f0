"""The building-load forecaster: prior, day types, learned quantile, correction."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from forecasts.building_load import (
    LINE_COLUMNS,
    SUNDAY,
    WORKDAY,
    BuildingLoadForecaster,
    ConstantLoad,
    DayTypes,
    ForecastSettings,
    Reading,
    StandardProfile,
    readings_frame,
)
from forecasts.errors import ForecastError

BERLIN = "Europe/Berlin"


def _history(days: int, end: str = "2026-03-02", seed: int = 0) -> pd.DataFrame:
    """A building whose load is 20 A at night and 100 A ± uniform 20 A from 8 to
    18 local on workdays, every line alike, read every 5 minutes."""
    idx = pd.date_range(end=pd.Timestamp(end, tz=BERLIN), periods=days * 288, freq="5min")
    rng = np.random.default_rng(seed)
    day = (idx.hour >= 8) & (idx.hour < 18) & (idx.day_of_week < 5)
    base = np.where(day, 100.0, 20.0) + np.where(day, rng.uniform(-20, 20, len(idx)), 0.0)
    return pd.DataFrame(np.repeat(base[:, None], 3, axis=1), index=idx, columns=list(LINE_COLUMNS))


def _at(text: str) -> datetime:
    return pd.Timestamp(text, tz=BERLIN).to_pydatetime()


def test_standard_profile_holds_the_annual_energy_and_office_hours() -> None:
    p = StandardProfile("g1", annual_kwh=100_000, voltage_v=230.0)
    idx = pd.date_range("2026-01-01", "2027-01-01", freq="15min", inclusive="left", tz=BERLIN)
    days = DayTypes("DE").of(idx)
    kwh = float(p.kw(idx, days).sum()) * 0.25
    assert kwh == pytest.approx(100_000, rel=0.03)
    amps = p.amps(idx, days)
    # a workday noon against a Sunday noon; all three lines alike
    noon = np.flatnonzero((idx.hour == 12) & (idx.minute == 0))
    wd = [i for i in noon if days[i] == WORKDAY]
    su = [i for i in noon if days[i] == SUNDAY]
    assert amps[wd, 0].mean() > 3 * amps[su, 0].mean()
    assert np.allclose(amps[:, 0], amps[:, 2])
    # kW → A per line: P / (3 · 230 V)
    first = int(wd[0])
    assert amps[first, 0] == pytest.approx(p.kw(idx[[first]], days[[first]])[0] * 1000 / 690)


@pytest.mark.parametrize("profile", ["g0", "g1", "h0"])
def test_every_standard_profile_sums_to_its_annual_energy(profile: str) -> None:
    idx = pd.date_range("2026-01-01", "2027-01-01", freq="15min", inclusive="left", tz=BERLIN)
    kw = StandardProfile(profile, annual_kwh=1000).kw(idx, DayTypes("DE").of(idx))
    assert float(kw.sum()) * 0.25 == pytest.approx(1000, rel=0.02)


def test_holidays_of_the_country_are_sundays() -> None:
    christmas = pd.DatetimeIndex([pd.Timestamp("2026-12-25 12:00", tz=BERLIN)])  # a Friday
    assert DayTypes("DE").of(christmas)[0] == SUNDAY
    assert DayTypes(None).of(christmas)[0] == WORKDAY
    with pytest.raises(ForecastError, match="holidays"):
        DayTypes("XX")


def test_without_history_the_prior_is_the_forecast() -> None:
    f = BuildingLoadForecaster(prior=ConstantLoad((40.0, 30.0, 20.0)), timezone=BERLIN)
    out = f.forecast(_at("2026-03-02 09:00"), slots=8, slot_minutes=15)
    assert out.shape == (8, 3)
    assert np.allclose(out, [40.0, 30.0, 20.0])


def test_learned_profile_covers_its_quantile_on_new_days() -> None:
    settings = ForecastSettings(quantile=0.9, correction_minutes=0)
    f = BuildingLoadForecaster(
        prior=ConstantLoad((0.0, 0.0, 0.0)), timezone=BERLIN, settings=settings
    )
    f.fit(_history(28))
    fresh = _history(7, end="2026-03-09", seed=1)
    start = fresh.index[0].to_pydatetime()
    fc = f.forecast(start, slots=len(fresh), slot_minutes=5)
    day = fresh.to_numpy()[:, 0] > 30  # office hours
    covered = float(np.mean(fresh.to_numpy()[day, 0] <= fc[day, 0]))
    assert 0.85 <= covered <= 0.95
    # the 0.9 quantile of 100 ± 20 uniform is 116; nights stay at 20
    assert fc[day, 0].mean() == pytest.approx(116, abs=3)
    assert np.allclose(fc[~day, 0], 20.0)


def test_too_few_days_keep_the_prior() -> None:
    settings = ForecastSettings(min_days=3, correction_minutes=0)
    f = BuildingLoadForecaster(
        prior=ConstantLoad((55.0, 55.0, 55.0)), timezone=BERLIN, settings=settings
    )
    f.fit(_history(2))  # two days: no cell has three
    out = f.forecast(_at("2026-03-03 10:00"), slots=4, slot_minutes=15)
    assert np.allclose(out, 55.0)


def test_latest_reading_steers_the_next_hour_only() -> None:
    f = BuildingLoadForecaster(prior=ConstantLoad((0.0, 0.0, 0.0)), timezone=BERLIN)
    f.fit(_history(28))
    now = _at("2026-03-02 10:00")  # a Monday, office hours
    spike = Reading(now, (300.0, 300.0, 300.0))
    out = f.forecast(now, slots=12, slot_minutes=15, reading=spike)
    plain = f.forecast(now, slots=12, slot_minutes=15, reading=Reading(now, (100.0,) * 3))
    assert out[0, 0] > 250  # the reading itself, now
    assert out[2, 0] > plain[2, 0] + 50  # still counts within the hour
    assert out[8, 0] == pytest.approx(plain[8, 0])  # two hours on: the profile
    assert out[8, 0] == pytest.approx(116, abs=5)


def test_slot_takes_the_highest_of_its_points() -> None:
    f = BuildingLoadForecaster(
        prior=ConstantLoad((0.0, 0.0, 0.0)),
        timezone=BERLIN,
        settings=ForecastSettings(correction_minutes=0),
    )
    f.fit(_history(28))
    # one 2-hour slot from 07:00 spans the 08:00 rise
    out = f.forecast(_at("2026-03-02 07:00"), slots=1, slot_minutes=120)
    assert out[0, 0] > 100


def test_bad_readings_are_refused_or_left_out() -> None:
    f = BuildingLoadForecaster(prior=ConstantLoad((0.0, 0.0, 0.0)), timezone=BERLIN)
    naive = pd.DataFrame({c: [1.0] for c in LINE_COLUMNS}, index=[datetime(2026, 1, 1)])
    with pytest.raises(ForecastError, match="timezone-aware"):
        f.fit(naive)
    with pytest.raises(ForecastError, match="l3_a"):
        f.fit(readings_frame([datetime(2026, 1, 1, tzinfo=UTC)], [[1, 2, 3]])[["l1_a", "l2_a"]])
    h = _history(28)
    h.iloc[100:200] = np.nan
    f.fit(h)
    assert np.isfinite(f.forecast(_at("2026-03-02 10:00"), 4, 15)).all()
    with pytest.raises(ForecastError):
        ForecastSettings(quantile=1.5)
    with pytest.raises(ForecastError):
        BuildingLoadForecaster(prior=ConstantLoad((0.0, 0.0, 0.0)), timezone="Mars/Olympus")
    with pytest.raises(ForecastError):
        StandardProfile("x9", annual_kwh=1.0)
    with pytest.raises(ForecastError, match="aware"):
        f.forecast(datetime(2026, 1, 1), 1, 15)
    assert f.forecast(_at("2026-03-02 10:00") + timedelta(days=400), 1, 15).shape == (1, 3)
