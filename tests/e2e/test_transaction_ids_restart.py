"""OCPP 1.6 transaction ids across a SIGKILL of `gridshare serve`: a station that
starts a transaction after the restart gets an id never handed out before, the
transactions acknowledged before the kill keep what was stored of them, and
the site is still planned (an operator limit is answered with a new plan).

The service runs as a separate process started through its command line; the
station is a plain OCPP 1.6 websockets client in this process.
"""

from __future__ import annotations

import signal
import sqlite3
import subprocess
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidHandshake

from ocpp_adapter.rpc import OcppVersion
from tests.e2e.test_restart_live import free_port, serve, until
from tests.ocpp.helpers import Station

pytestmark = pytest.mark.slow

WRITE_TOKEN = "write-token-9876543210"
WRITE = {"Authorization": f"Bearer {WRITE_TOKEN}"}
EARLIER = 40
"""Transactions before the kill: many more than the seconds the restart takes."""


def write_site(path: Path, ocpp_port: int, http_port: int) -> None:
    path.write_text(
        f"""
[site]
name = "transaction ids"
horizon_hours = 2

[server]
host = "127.0.0.1"
ocpp_port = {ocpp_port}
http_port = {http_port}

[controller]
coalesce_s = 0.02

[[api.tokens]]
name = "alice"
token = "{WRITE_TOKEN}"
role = "write"

[[groups]]
id = "grid"
limit_a = 64

[[chargers]]
id = "CP1"
group = "grid"
[[chargers.connectors]]
id = 1
max_current_a = 32
[[chargers.connectors]]
id = 2
max_current_a = 32
"""
    )


async def connected(port: int) -> Station:
    async def attempt() -> Station | None:
        try:
            ws = await connect(
                f"ws://127.0.0.1:{port}/ocpp/CP1",
                subprotocols=["ocpp1.6"],  # type: ignore[list-item]
                compression=None,
            )
        except (OSError, InvalidHandshake):
            return None
        return Station(ws, OcppVersion.V16)

    station: Station = await until(attempt, 20, "the central system accepts the station")
    await station.boot()
    return station


def ts() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


async def start(st: Station, connector: int, meter: int) -> int:
    reply = await st.call(
        "StartTransaction",
        {"connectorId": connector, "idTag": f"tag-{meter}", "meterStart": meter, "timestamp": ts()},
    )
    assert reply["idTagInfo"]["status"] == "Accepted"
    return int(reply["transactionId"])


async def stop(st: Station, tx: int, meter: int) -> None:
    await st.call("StopTransaction", {"transactionId": tx, "meterStop": meter, "timestamp": ts()})


async def test_ids_issued_before_a_kill_are_never_issued_again(tmp_path: Path):
    ocpp_port, http_port = free_port(), free_port()
    config, db = tmp_path / "site.toml", tmp_path / "site.db"
    write_site(config, ocpp_port, http_port)
    procs = [serve(config, db, tmp_path / "first.log")]
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
        assert len(set(issued)) == len(issued)

        procs[0].send_signal(signal.SIGKILL)  # no clean shutdown
        procs[0].wait(10)
        await st.close()
        procs.append(serve(config, db, tmp_path / "second.log"))
        st = await connected(ocpp_port)
        stations.append(st)

        new = await start(st, 2, 7)
        assert new not in issued
        await stop(st, new, 9)  # meter_stop < an earlier session's meter_start: its own

        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{http_port}") as client:

            async def limit_set() -> Any:
                try:
                    return await client.put(
                        "/api/groups/grid/limit", json={"limit_a": 40}, headers=WRITE
                    )
                except httpx.TransportError:
                    return None  # not listening yet

            r = await until(limit_set, 20, "the limit answered")
            assert r.status_code == 200, r.text
            r = await client.get("/api/sessions", params={"state": "active"}, headers=WRITE)
            assert [s["session_id"] for s in r.json()] == [str(running)]
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

    with sqlite3.connect(db) as con:
        rows = con.execute("SELECT transaction_id, meter_start_wh, meter_stop_wh FROM sessions")
        stored = {int(tx): (start_wh, stop_wh) for tx, start_wh, stop_wh in rows}
    con.close()
    # every acknowledged transaction is there, each with what its station said
    assert set(stored) == {*issued, new}
    assert all(stop_wh is None or stop_wh >= start_wh for start_wh, stop_wh in stored.values())
    assert stored[new] == (7.0, 9.0)
