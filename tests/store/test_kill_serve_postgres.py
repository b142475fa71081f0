"""`gridshare serve --db postgresql://…` killed (SIGKILL) and started again: every
transaction acknowledged before the kill is in PostgreSQL with what its station
said, and no 1.6 transaction id is issued twice.

The service runs as a separate process through its command line; the station is
a plain OCPP 1.6 websockets client in this process.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.e2e.test_restart_live import free_port
from tests.e2e.test_transaction_ids_restart import connected, start, stop, write_site
from tests.ocpp.helpers import Station
from tests.store.engines import Engine, fresh_schema

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
EARLIER = 30


def serve(config: Path, url: str, log: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "gridshare.cli", "serve", "--config", str(config), "--db", url]
    with log.open("wb") as out:
        return subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)


async def test_what_was_acknowledged_before_a_kill_is_in_postgresql(
    tmp_path: Path, postgres_admin: str
):
    ocpp_port, http_port = free_port(), free_port()
    config = tmp_path / "site.toml"
    write_site(config, ocpp_port, http_port)
    with fresh_schema(postgres_admin) as url:
        procs = [serve(config, url, tmp_path / "first.log")]
        stations: list[Station] = []
        try:
            st = await connected(ocpp_port)
            stations.append(st)
            issued = []
            for k in range(EARLIER):
                tx = await start(st, 1, 1000 * k)
                await stop(st, tx, 1000 * k + 500)
                issued.append(tx)
            running = await start(st, 1, 100_000)
            issued.append(running)
            procs[0].send_signal(signal.SIGKILL)  # no clean shutdown
            procs[0].wait(10)
            await st.close()
            procs.append(serve(config, url, tmp_path / "second.log"))
            st = await connected(ocpp_port)
            stations.append(st)
            new = await start(st, 2, 7)
            assert new not in issued
            await stop(st, new, 9)
        finally:
            for s in stations:
                await s.close()
            for proc in procs:
                if proc.poll() is None:
                    proc.send_signal(signal.SIGTERM)
                    try:
                        proc.wait(10)
                    except subprocess.TimeoutExpired:
                        proc.kill()
                        proc.wait(5)
        rows = Engine("postgresql", url).rows(
            "SELECT transaction_id, meter_start_wh, meter_stop_wh, ended_at FROM sessions"
        )
    stored = {int(r[0]): (r[1], r[2], r[3]) for r in rows}
    assert set(stored) == {*issued, new}
    for k, tx in enumerate(issued[:-1]):
        assert stored[tx][:2] == (1000.0 * k, 1000.0 * k + 500)
    assert stored[running][1:] == (None, None)  # still running when killed
    assert stored[new][:2] == (7.0, 9.0)
