"""The forecaster benchmark still runs, and the forecaster still beats its baselines."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_forecaster_beats_seasonal_naive_and_persistence_on_two_months() -> None:
    done = subprocess.run(
        [sys.executable, "benchmarks/building_forecast.py", "--to", "2025-03-01"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    rows = [line.split("|")[1:-1] for line in done.stdout.splitlines() if line.startswith("| ")]
    scores = {(r[0].strip(), r[1].strip().split(" ")[0]): r for r in rows[1:]}
    for horizon in ("next hour", "day ahead"):
        ours = float(scores[(horizon, "forecaster")][2])
        for baseline in ("seasonal-naive", "persistence"):
            assert ours < float(scores[(horizon, baseline)][2])
        assert 0.8 <= float(scores[(horizon, "forecaster")][3]) <= 0.97


def test_it_writes_a_site_load_file(tmp_path: Path) -> None:
    out = tmp_path / "load.csv"
    done = subprocess.run(
        [
            sys.executable,
            "benchmarks/building_forecast.py",
            "--from",
            "2025-06-02",
            "--to",
            "2025-06-04",
            "--write-load",
            str(out),
            "--group",
            "main",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    lines = out.read_text().splitlines()
    assert lines[0] == "start,group_id,l1_a,l2_a,l3_a"
    assert lines[1].startswith("2025-06-02T00:00,main,")
    assert len(lines) == 1 + 2 * 96
