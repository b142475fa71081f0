"""The store-writes benchmark still runs (its figures are measured by hand)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_store_writes_benchmark_runs(postgres_admin: str) -> None:
    done = subprocess.run(
        [sys.executable, "benchmarks/store_writes.py", "--seconds", "0.2", "--connectors", "5",
         "--postgres", postgres_admin],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    assert "postgresql   meter values" in done.stdout and "vs sqlite" in done.stdout
