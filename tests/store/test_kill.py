"""A kill in the middle of pruning or rolling up loses nothing (on both engines)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.store.engines import Engine
from tests.store.helpers import T0, a_plan, fill_minutes, totals

ROOT = Path(__file__).resolve().parents[2]
NOW = T0 + timedelta(days=3)
CONNECTORS = [f"CP{c}/1" for c in range(12)]


def state(engine: Engine) -> dict[str, Any]:
    """What must survive: the meter figures, every plan's figures, the latest plan."""
    store = engine.open()
    try:
        last = store.last_plan()
        assert last is not None
        return {
            "meters": totals(engine),
            "energy": {
                (k, cid): round(wh, 6)
                for k in range(12)
                for cid, wh in store.meter_energy(
                    T0 + k * timedelta(hours=6), T0 + (k + 1) * timedelta(hours=6)
                ).items()
            },
            "plans": {
                p["id"]: (p["created_at"], p["summary"], p["now_a"]) for p in store.plans_since(T0)
            },
            "last": (last["id"], last["current_a"].tolist()),
            "audit_recent": len(store.audit_page(10_000, None))
            - store._db.execute(
                "SELECT COUNT(*) FROM audit WHERE at < ?", ((NOW - timedelta(days=1)).isoformat(),)
            ).fetchone()[0],
            "integrity": (
                store._db.execute("PRAGMA integrity_check").fetchone()[0]
                if engine.name == "sqlite"
                else "ok"  # PostgreSQL's write-ahead log makes a killed client's work atomic
            ),
        }
    finally:
        store.close()


def spawn(engine: Engine) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(
        [sys.executable, "-m", "tests.store.prune_child", engine.url, NOW.isoformat()],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env=env,
    )


@pytest.mark.slow
def test_sigkill_mid_prune_loses_nothing(engine: Engine):
    store = engine.open()
    try:
        for m in range(0, 3 * 24 * 60, 20):
            store.save_plan(a_plan(40, 96, m / 100), T0 + timedelta(minutes=m), "tick")
            store.audit(T0 + timedelta(minutes=m), "note", "x", {"m": m})
    finally:
        store.close()
    fill_minutes(engine, connectors=len(CONNECTORS), minutes=3 * 24 * 60)
    before = state(engine)
    assert before["integrity"] == "ok"
    kills = 0
    for delay in (0.02, 0.1, 0.2, 0.4):
        proc = spawn(engine)
        try:
            assert proc.stdout is not None
            line = proc.stdout.readline()
            if line.startswith("DONE"):
                break
            assert line.startswith("STEP"), proc.stderr.read() if proc.stderr else line
            time.sleep(delay)
            proc.send_signal(signal.SIGKILL)
        finally:
            if proc.poll() is None:
                proc.kill()
            proc.communicate(timeout=30)
        kills += proc.returncode == -signal.SIGKILL
        after = state(engine)
        assert after["meters"] == before["meters"]
        assert after["energy"] == before["energy"]
        assert after["last"] == before["last"]
        assert after["integrity"] == "ok"
        assert after["audit_recent"] == before["audit_recent"]
        # plans go only past their horizon; the figures of those left are as they were
        assert all(before["plans"][k] == p for k, p in after["plans"].items())
        gone = [p[0] for k, p in before["plans"].items() if k not in after["plans"]]
        assert all(at < (NOW - timedelta(days=2)).isoformat() for at in gone)
    assert kills >= 3
    # a run to the end finishes what the killed ones began
    proc = spawn(engine)
    out, err = proc.communicate(timeout=120)
    assert out.rstrip().endswith("DONE"), err
    store = engine.open()
    try:
        assert (
            store._db.execute("SELECT MIN(minute) FROM meter_minute").fetchone()[0]
            == (NOW - timedelta(hours=1)).isoformat()
            or store._db.execute("SELECT COUNT(*) FROM meter_minute").fetchone()[0] == 0
        )
    finally:
        store.close()
    final = state(engine)
    assert final["meters"] == before["meters"] and final["last"] == before["last"]
