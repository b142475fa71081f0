"""The speed benchmarks still run on the code as it is (smallest sizes, a few
events): their figures are measured by hand, but a benchmark that no longer
starts would only be found when someone needs it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize(
    "args",
    [
        ["benchmarks/plan_speed.py", "--sizes", "10", "--repeat", "1", "--no-deep"],
        ["benchmarks/replan_latency.py", "--sizes", "50", "--events", "2"],
        ["benchmarks/meter_safety.py", "--connectors", "6", "--reference", "3", "--rounds", "1"],
        ["benchmarks/cost_terms.py", "--sizes", "10", "--repeat", "1"],
        ["benchmarks/v2x_plan.py", "--connectors", "10", "--repeat", "1"],
    ],
    ids=["plan_speed", "replan_latency", "meter_safety", "cost_terms", "v2x_plan"],
)
def test_the_benchmark_runs(args: list[str]) -> None:
    done = subprocess.run(
        [sys.executable, *args], cwd=ROOT, capture_output=True, text=True, timeout=240
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "ms" in done.stdout
