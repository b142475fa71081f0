"""The soak benchmark runs end to end on a small site for one simulated day (it
must not rot), and its helpers count what they say."""

from __future__ import annotations

import csv
import importlib.util
import itertools
import random
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType

import pytest

PATH = Path(__file__).parents[2] / "benchmarks" / "soak.py"


def soak_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("benchmark_soak", PATH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("benchmark_soak", module)  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def test_slopes_and_percentiles() -> None:
    soak = soak_module()
    assert soak.slope([1.0, 3.0, 5.0, 7.0]) == pytest.approx(2.0)
    assert soak.slope([4.0, float("nan"), 4.0]) == pytest.approx(0.0)
    assert soak.slope([1.0]) != soak.slope([1.0])  # NaN: too few days
    assert soak.percentile(list(range(101)), 99) == 99
    assert soak.percentile([], 50) != soak.percentile([], 50)


def test_a_day_of_cars_never_puts_two_on_a_connector() -> None:
    soak = soak_module()
    cids = [f"S{i:04d}/{k}" for i in range(50) for k in (1, 2)]
    day0 = datetime(2026, 12, 1, tzinfo=UTC)
    cars = soak.day_of_cars(cids, day0, random.Random(3))
    assert 100 <= len(cars) <= 200
    by_connector: dict[str, list[tuple[datetime, datetime]]] = {}
    for car in cars:
        assert car.departs > car.arrives >= day0
        by_connector.setdefault(car.connector_id, []).append((car.arrives, car.departs))
    for spans in by_connector.values():
        spans.sort()
        assert all(a[1] < b[0] for a, b in itertools.pairwise(spans))


def test_the_site_is_half_one_six_half_two_oh_one() -> None:
    soak = soak_module()
    config = soak.site_config(40, 1800)
    specs = soak.station_specs(config, 1800)
    assert sum(len(s.connectors) for s in specs) == 40
    assert {s.version for s in specs[::2]} == {"1.6"}
    assert {s.version for s in specs[1::2]} == {"2.0.1"}


@pytest.mark.slow
def test_one_day_of_a_small_site(tmp_path: Path) -> None:
    out = tmp_path / "soak.csv"
    run = subprocess.run(
        [
            sys.executable,
            str(PATH),
            *("--days", "1", "--connectors", "20", "--speed", "3000", "--out", str(out)),
        ],
        capture_output=True,
        text=True,
        timeout=150,
        cwd=PATH.parents[1],
    )
    assert run.returncode == 0, run.stdout + run.stderr
    with out.open() as f:
        [row] = list(csv.DictReader(f))
    assert row["day"] == "1"
    assert float(row["rss_mb"]) > 0 and int(row["fds"]) > 0 and float(row["db_mb"]) > 0
    assert int(row["replans"]) > 0 and int(row["cars"]) > 0
    assert row["errors"] == "0" and row["api_failures"] == "0"
    assert "slopes per day" in run.stdout
