"""`benchmarks/bus_scale.py` still runs (smallest sizes, against the tests'
server): its figures are measured by hand, a benchmark that no longer starts
would only be found when someone needs it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_bus_benchmark_runs(nats_url: str) -> None:
    args = ["--url", nats_url, "--events", "20", "--commands", "10", "--failovers", "1"]
    args += ["--ttl", "1", "--poll", "0.2"]
    done = subprocess.run(
        [sys.executable, "benchmarks/bus_scale.py", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "p99" in done.stdout and "bound 1.20 s" in done.stdout
