"""The operator's log of a running service: stations, sessions, plans and the
profiles stations refuse, one line each, and nothing from the libraries' chatter.

The service runs in this process with its real central system, store, HTTP
port and scheduler; the stations are simulated (`gridshare.peers`) over real
OCPP connections. Logging is set up as ``gridshare serve`` sets it up.
"""

from __future__ import annotations

import asyncio
import logging
import re
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from gridshare.config import parse_config
from gridshare.logs import QUIET_LIBRARIES, configure_logging, duration, fields
from gridshare.peers.ev import EvSpec
from gridshare.peers.fleet import StationFleet
from gridshare.peers.specs import SimConnectorSpec, SimStationSpec
from gridshare.rollout import LoadModel
from gridshare.service import Service
from optimizer.problem import Capacity
from tests.service.fakes import Behaviour
from tests.service.sites import small_depot
from tests.service.test_rollout import const, grid_for, rollout, setup

SPEED = 600.0
"""Simulated seconds per real second of the stations' clock."""


@pytest.fixture
def serve_logging() -> Iterator[None]:
    """Logging as ``gridshare serve --log-level INFO`` sets it up, undone after."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    levels = {name: logging.getLogger(name).level for name in QUIET_LIBRARIES}
    configure_logging("INFO", "%(levelname)s %(name)s: %(message)s")
    try:
        yield
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
        for name, lvl in levels.items():
            logging.getLogger(name).setLevel(lvl)


async def until(cond: Callable[[], bool], timeout_s: float = 10.0) -> None:
    async with asyncio.timeout(timeout_s):
        while not cond():
            await asyncio.sleep(0.02)


def pairs(message: str) -> dict[str, str]:
    return dict(re.findall(r'(\w+)=("(?:[^"\\]|\\.)*"|\S+)', message))


def test_fields_are_one_word_each() -> None:
    line = fields(id="CP 1", ocpp="1.6", tls=False, kwh=12.3456, tag=None, note='a "b"')
    assert line == 'id="CP 1" ocpp=1.6 tls=no kwh=12.35 tag=- note="a \\"b\\""'
    assert [duration(s) for s in (45, 750, 7500)] == ["45s", "12m30s", "2h05m"]


async def test_the_log_follows_stations_sessions_and_plans(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, serve_logging: None
) -> None:
    caplog.set_level(logging.INFO)
    data = {
        "site": {"name": "log", "horizon_hours": 1},
        # 16 A a line for two cars that want more in an hour: energy unmet
        "groups": [{"id": "grid", "limit_a": 16}],
        "chargers": [
            {"id": sid, "group": "grid", "connectors": [{"id": 1, "max_current_a": 32}]}
            for sid in ("CP1", "CP2")
        ],
        "server": {"host": "127.0.0.1", "ocpp_port": 0, "http_port": 0},
        "controller": {"coalesce_s": 0.01},
        "api": {"open_reads_on_loopback": True},
    }
    svc = Service(parse_config(data, "log.toml", tmp_path / "log.toml", environ={}))
    await svc.start()
    specs = [
        SimStationSpec("CP1", (SimConnectorSpec(1),), version="1.6"),
        SimStationSpec("CP2", (SimConnectorSpec(1),), version="2.0.1"),
    ]
    fleet = StationFleet(f"ws://127.0.0.1:{svc.ocpp_port}/ocpp", specs, speed=SPEED)
    try:
        await fleet.start()
        assert await fleet.wait_booted(10.0) == 2
        fleet.plug_in("CP1/1", EvSpec(lag_s=1.0), id_tag="TAG-1")
        fleet.plug_in("CP2/1", EvSpec(lag_s=1.0), id_tag="TAG-2")
        await until(lambda: fleet.transaction_id("CP1/1") is not None)
        await asyncio.sleep(1.0)  # some energy delivered on the stations' clock
        fleet.unplug("CP1/1")
        await until(lambda: any("session ended" in r.getMessage() for r in caplog.records))
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{svc.http_port}") as client:
            assert (await client.get("/api/status")).status_code == 200
        assert svc.controller is not None
        await svc.controller.wait_idle()
    finally:
        await fleet.stop()
        await svc.stop()

    ours = [(r.levelno, r.name, r.getMessage()) for r in caplog.records]
    text = "\n".join(m for _, _, m in ours)

    def line(start: str, **want: str) -> dict[str, str]:
        for _, _, message in ours:
            if message.startswith(start) and want.items() <= pairs(message).items():
                return pairs(message)
        raise AssertionError(f"no {start!r} line with {want} in:\n{text}")

    line("station connected", id="CP1", ocpp="1.6", tls="no")
    line("station connected", id="CP2", ocpp="2.0.1", tls="no")
    booted = line("station booted", id="CP1")
    assert booted["vendor"] == "gridshare" and booted["model"] == "SimStation"
    started = line("session started", connector="CP1/1")
    assert started["id_tag"] == "TAG-1"
    ended = line("session ended", connector="CP1/1", id_tag="TAG-1")
    assert float(ended["kwh"]) > 0, ended
    assert re.fullmatch(r"(\d+h)?(\d+m)?\d+s|\d+h\d+m", ended["duration"]), ended
    plan = line("plan made", status="optimal", sessions="2")
    assert float(plan["unmet_kwh"]) > 0 and "grid:" in plan["binding"], plan
    assert float(plan["requested_kwh"]) > float(plan["planned_kwh"])

    chatter = [
        (name, message)
        for level, name, message in ours
        if level < logging.WARNING and name.split(".")[0] in ("websockets", "apscheduler", "httpx")
    ]
    assert chatter == []


async def test_the_openapi_schema_is_made_without_a_warning(tmp_path: Path) -> None:
    data = {
        "site": {"name": "schema"},
        "groups": [{"id": "grid", "limit_a": 32}],
        "server": {"host": "127.0.0.1", "ocpp_port": 0, "http_port": 0},
        "api": {"open_reads_on_loopback": True},
    }
    svc = Service(parse_config(data, "s.toml", tmp_path / "s.toml", environ={}), scheduler=False)
    await svc.start()
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{svc.http_port}") as client:
                r = await client.get("/api/openapi.json")
    finally:
        await svc.stop()
    assert r.status_code == 200
    operations = [op for path in r.json()["paths"].values() for op in path.values()]
    ids = [op["operationId"] for op in operations]
    assert len(ids) == len(set(ids))
    assert "oscp_register_post" in ids
    assert [str(w.message) for w in caught] == []


@pytest.mark.parametrize(
    ("behaviour", "start", "level", "outcome"),
    [
        (Behaviour.REJECT, "profile rejected", logging.WARNING, "rejected"),
        (Behaviour.ERROR, "profile rejected", logging.WARNING, "error"),
        (Behaviour.SILENT_IGNORES, "profile unanswered", logging.WARNING, "timeout"),
        (Behaviour.OFFLINE, "profile not sent", logging.INFO, "not_connected"),
    ],
)
def test_a_profile_a_station_does_not_accept_is_one_line(
    behaviour: Behaviour, start: str, level: int, outcome: str, caplog: pytest.LogCaptureFixture
) -> None:
    site = small_depot(2, limit_a=40)
    grid = grid_for(site)
    cap = LoadModel.build(site).capacity(site, Capacity.static(site, grid), grid)
    book, gw = setup(
        site, grid, {"CP1/1": const(grid, 30), "CP2/1": const(grid, 10)}, {"CP1": behaviour}
    )
    with caplog.at_level(logging.INFO, logger="gridshare.rollout"):
        rollout(book, gw, site, grid, {"CP1/1": const(grid, 10), "CP2/1": const(grid, 10)}, cap)
    [record] = [r for r in caplog.records if r.getMessage().startswith("profile ")]
    assert record.levelno == level and record.getMessage().startswith(start)
    said = pairs(record.getMessage())
    assert said["station"] == "CP1" and said["connector"] == "CP1/1"
    assert said["purpose"] == "tx" and said["limit_a"] == "10"
    assert said["outcome"] == outcome
