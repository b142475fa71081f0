"""Kill the service mid-session, start it again on the same database: nothing accepted is lost."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def spawn(db: Path, phase: str) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(
        [sys.executable, "-m", "tests.service.crash_helper", f"sqlite:///{db}", phase],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def read_line(proc: subprocess.Popen[str], prefix: str) -> dict:
    assert proc.stdout is not None
    for _ in range(50):
        line = proc.stdout.readline()
        if not line:
            break
        if line.startswith(prefix + " "):
            return json.loads(line[len(prefix) + 1 :])
    proc.kill()
    _, err = proc.communicate(timeout=10)
    raise AssertionError(f"no {prefix} line; stderr:\n{err}")


@pytest.mark.slow
def test_sessions_energy_and_plans_survive_a_kill(tmp_path: Path):
    db = tmp_path / "g.db"
    first = spawn(db, "first")
    try:
        ready = read_line(first, "READY")
    finally:
        first.send_signal(signal.SIGKILL)  # no clean shutdown
        first.communicate(timeout=10)
    assert ready["plans"] >= 1 and set(ready["limits"]) == {"CP1/1", "CP2/1"}

    second = spawn(db, "resume")
    try:
        state = read_line(second, "STATE")
        _, err = second.communicate(timeout=30)
    finally:
        if second.poll() is None:
            second.kill()
            second.communicate(timeout=10)
    assert second.returncode == 0, err
    # every meter value accepted before the kill counts: 5 × 250 Wh each
    assert state["sessions"] == {"tx-1": 1.25, "tx-2": 1.25}
    assert state["plans"] > ready["plans"]
    # the transactions were re-adopted: new profiles for them, within the group
    assert state["sent_tx"] == ["tx-1", "tx-2"]
    assert sum(state["limits"].values()) <= 64


@pytest.mark.slow
def test_sigterm_stops_cleanly_and_flushes_the_store(tmp_path: Path):
    db = tmp_path / "g.db"
    proc = spawn(db, "first")
    try:
        read_line(proc, "READY")
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate(timeout=10)
    assert proc.returncode == 0, err
    wal = Path(str(db) + "-wal")
    assert not wal.exists() or wal.stat().st_size == 0  # checkpointed on close
    con = sqlite3.connect(db)
    try:
        n = con.execute("SELECT COUNT(*) FROM meter_minute").fetchone()[0]
    finally:
        con.close()
    assert n >= 1
