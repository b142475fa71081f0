"""The carbon signal as an online planner sees it: the latest forecast
published by then, never what was measured later; several files, gz."""

from __future__ import annotations

import gzip
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from forecasts.carbon import CarbonFileError, read_carbon
from gridshare.tariff.config import TariffConfig
from gridshare.tariff.tariff import SignalInputs, Tariff, cost_signal
from optimizer import SessionDemand, solve
from optimizer.problem import Capacity, PlanningProblem, TimeGrid
from tests.optimizer.sites import site_from

T0 = datetime(2019, 5, 1, 12, 0, tzinfo=UTC)
N = 36


def write(path: Path, rows: list[tuple[datetime, float, list[float]]], gz: bool = False) -> Path:
    head = "time,moer," + ",".join(f"f{k}" for k in range(1, N + 1))
    lines = [head] + [",".join([t.isoformat(), f"{m}", *(f"{v}" for v in f)]) for t, m, f in rows]
    text = "\n".join(lines) + "\n"
    if gz:
        path.write_bytes(gzip.compress(text.encode()))
    else:
        path.write_text(text)
    return path


def opposite_signal(tmp_path: Path) -> Path:
    """Real rates clean in the first 90 minutes, dirty after; the forecast
    published at T0 says the opposite (and later rows are never seen)."""
    rows = []
    for k in range(72):
        t = T0 + timedelta(minutes=5 * k)
        real = 0.1 if k < 18 else 0.5
        told = [0.5 if j < 18 else 0.1 for j in range(1, N + 1)] if k == 0 else [real] * N
        rows.append((t, real, told))
    return write(tmp_path / "moer.csv.gz", rows, gz=True)


def test_the_plan_follows_the_forecast_it_had_not_the_real_signal(tmp_path: Path) -> None:
    signal = read_carbon([opposite_signal(tmp_path)])
    cons = [{"id": 1, "max_current_a": 32.0, "min_current_a": 6.0, "phases": ["L1", "L2", "L3"]}]
    site = site_from(
        [{"id": "g", "limit_a": 100}],
        [{"id": "C", "group": "g", "connectors": cons}],
        slot_minutes=15,
        horizon_hours=3,
    )
    grid = TimeGrid.covering(T0, 15, 3)
    tariff = Tariff.of(TariffConfig(carbon_price_per_kg=0.2), "UTC")
    costs = cost_signal(tariff, signal, grid, T0, SignalInputs())
    assert costs is not None and costs.carbon_kg_per_kwh is not None
    car = SessionDemand("s", "C/1", T0, T0 + timedelta(hours=3), 10.0)
    plan = solve(PlanningProblem(site, grid, T0, (car,), Capacity.static(site, grid), costs=costs))
    kw = plan.power_kw.sum(axis=0)
    early, late = kw[:6].sum(), kw[6:].sum()
    assert late > 0 and early == pytest.approx(0.0, abs=1e-6)  # the forecast's clean slots
    real = signal.real(grid.starts())
    assert real[0] < real[-1]  # while the real signal was clean early


def test_beyond_the_forecast_the_past_days_mean_stands_in(tmp_path: Path) -> None:
    rows = []
    for k in range(288 * 2):
        t = T0 + timedelta(minutes=5 * k)
        rows.append((t, 0.2 + 0.1 * ((k % 288) >= 144), [0.3] * N))
    signal = read_carbon([write(tmp_path / "a.csv", rows)])
    now = T0 + timedelta(days=1)
    f = signal.forecast(now, now, 24, 60)
    assert f[0] == pytest.approx(0.3)  # within the forecast
    assert f[12] == pytest.approx(0.3) and f[4] == pytest.approx(0.2)  # yesterday's rates


def test_several_files_merge_and_bad_files_are_one_line(tmp_path: Path) -> None:
    a = write(tmp_path / "a.csv", [(T0, 0.2, [0.2] * N)])
    b = write(tmp_path / "b.csv", [(T0 + timedelta(minutes=10), 0.3, [0.3] * N)])
    s = read_carbon([a, b])
    assert len(s.moer) == 3 and np.isnan(s.moer[1])
    bad = tmp_path / "bad.csv"
    bad.write_text("time,co2\n2019-05-01T00:00:00Z,0.2\n")
    with pytest.raises(CarbonFileError, match=r"bad.csv:1: expected the columns time,moer"):
        read_carbon([bad])
    bad.write_text("time,moer,f1\n2019-05-01T00:03:00Z,0.2,0.2\n")
    with pytest.raises(CarbonFileError, match=r"bad.csv:2: time: .* 5-minute"):
        read_carbon([bad])
    bad.write_text("time,moer,f1\n2019-05-01T00:00:00Z,450,0.2\n")
    with pytest.raises(CarbonFileError, match=r"bad.csv:2: a rate outside"):
        read_carbon([bad])
