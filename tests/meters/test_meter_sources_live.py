"""Meters over MQTT (a real mosquitto broker on 127.0.0.1:1883) and over the
operator API (``POST /api/meters/{id}/readings`` with a write token), with
real OCPP stations: a spike lowers the chargers, garbage is refused and
changes nothing."""

from __future__ import annotations

import asyncio
import json
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import aiomqtt
import httpx
import pytest

from gridshare.peers.ev import EvSpec
from optimizer.site import Line
from tests.meters.live import CARS, LIMIT_A, Building, building_config, eventually, live_building

pytestmark = pytest.mark.slow

BROKER = ("127.0.0.1", 1883)
WRITE = "meter-integration-write-token"
READ = "dashboard-read-token"


def _listening() -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(BROKER) == 0


@pytest.fixture(scope="module")
def broker() -> Iterator[None]:
    """Mosquitto on 1883: the one already running, else one started (and
    stopped) here."""
    if _listening():
        yield
        return
    exe = shutil.which("mosquitto") or shutil.which("mosquitto", path="/usr/sbin:/usr/local/sbin")
    if exe is None:  # `make test` installs it
        pytest.skip("no MQTT broker on 127.0.0.1:1883 and mosquitto is not installed")
    proc = subprocess.Popen([exe, "-p", str(BROKER[1])], stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 5
        while not _listening():
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail("mosquitto did not come to listen on 127.0.0.1:1883")
            time.sleep(0.1)
        yield
    finally:
        proc.terminate()
        proc.wait(timeout=10)


async def test_an_mqtt_meter_through_a_real_broker(tmp_path: Path, broker: None) -> None:
    topic = f"gridshare-test/{uuid.uuid4().hex}/meter"
    cfg = building_config(
        tmp_path,
        {
            "measures": "load",
            "stale_after_s": 30,
            "max_non_ev_a": 20,
            "source": {"type": "mqtt", "topic": topic, "json_path": ["i.l1", "i.l2", "i.l3"]},
        },
    )
    async with live_building(cfg) as (svc, fleet), aiomqtt.Client(*BROKER) as client:
        assert svc.meters is not None
        state = svc.meters.building.meters["main"]
        building = Building(fleet, CARS)

        async def publish(body: object) -> None:
            await client.publish(topic, json.dumps(body), qos=1)

        # the subscription is up once a first message arrives
        async def first() -> bool:
            await publish({"i": {"l1": 2, "l2": 2, "l3": 2}})
            await asyncio.sleep(0.2)
            return bool(state.readings)

        for _ in range(50):
            if await first():
                break
        building.load = {"L1": 2.0, "L2": 2.0, "L3": 2.0}
        for cid in CARS:
            fleet.plug_in(cid, EvSpec(battery_kwh=80, soc_start=0.1, lag_s=0.3))
        await eventually(lambda: building.limits_sum() >= LIMIT_A - 2 - 4, 10)
        # a load meter shows the building only: a 35 A spike on L2
        building.load["L2"] = 35.0
        await publish({"i": {"l1": 2, "l2": 35, "l3": 2}})
        await eventually(lambda: building.excess() <= 1e-6, 2.5)
        # garbage: refused, counted, the last good reading stands
        refused = state.refused
        await client.publish(topic, b'{"i": {"l1": NaN, "l2": 1, "l3": 1}}', qos=1)
        await publish({"i": {"l1": -4, "l2": 1, "l3": 1}})
        await client.publish(topic, b"not json", qos=1)
        await eventually(lambda: state.refused >= refused + 3, 3)
        assert svc.meters.building.non_ev("grid", svc.clock())[Line.L2] == 35.0
        assert building.excess() <= 1e-6


async def test_an_http_meter_posts_readings_with_a_write_token(tmp_path: Path) -> None:
    cfg = building_config(
        tmp_path,
        {"measures": "connection", "max_non_ev_a": 10, "source": {"type": "http"}},
        api={
            "tokens": [
                {"name": "meter", "token": WRITE, "role": "write"},
                {"name": "dash", "token": READ, "role": "read"},
            ]
        },
    )
    async with live_building(cfg) as (svc, fleet):
        building = Building(fleet, CARS, {"L1": 3.0, "L2": 3.0, "L3": 3.0})
        url = "/api/meters/main/readings"
        write = {"Authorization": f"Bearer {WRITE}"}
        async with httpx.AsyncClient(base_url=svc.http_url) as http:

            async def post(body: object, headers: dict[str, str] = write) -> httpx.Response:
                return await http.post(url, json=body, headers=headers)

            assert (await post({"current_a": building.connection()})).status_code == 202
            for cid in CARS:
                fleet.plug_in(cid, EvSpec(battery_kwh=80, soc_start=0.1, lag_s=0.3))
            await eventually(lambda: building.limits_sum() >= LIMIT_A - 3 - 4, 10)
            assert building.excess() <= 1e-6
            # refused: no token, a read token, an unknown meter, garbage
            assert (await post({"current_a": {"L1": 1}}, {})).status_code == 401
            read = {"Authorization": f"Bearer {READ}"}
            assert (await post({"current_a": {"L1": 1}}, read)).status_code == 403
            nope = await http.post(
                "/api/meters/nope/readings", json={"current_a": {"L1": 1}}, headers=write
            )
            assert nope.status_code == 404
            before = building.limits_sum()
            garbage = await http.post(
                url,
                content=b'{"current_a": {"L1": NaN}}',
                headers={**write, "Content-Type": "application/json"},
            )
            assert garbage.status_code == 422, garbage.text
            naive = await post({"current_a": {"L1": 1}, "at": "2026-12-07T12:00:00"})
            assert naive.status_code == 422
            assert (await post({"current_a": {"L5": 1}})).status_code == 422
            assert svc.meters is not None and svc.meters.building.meters["main"].refused >= 2
            await asyncio.sleep(0.3)
            assert building.limits_sum() == before
            # a spike posted: the chargers step down at once
            building.load["L3"] = 30.0
            assert (await post({"current_a": building.connection()})).status_code == 202
            await eventually(lambda: building.excess() <= 1e-6, 2.0)
            await asyncio.sleep(1.5)  # the cars follow, and report it (1 s meter values)
            assert (await post({"current_a": building.connection()})).status_code == 202
            view = (await http.get("/api/meters", headers=read)).json()
            group = view["groups"][0]
            assert group["non_ev_a"]["L3"] == pytest.approx(30.0, abs=1.5)
            assert group["headroom_a"]["L3"] is not None
            metrics = (await http.get("/metrics", headers=read)).text
            assert 'gridshare_group_non_ev_amperes{group="grid",line="L3"}' in metrics
            # the dashboard finds the meters in the API's own description
            spec = (await http.get("/api/openapi.json")).json()
            assert "/api/meters" in spec["paths"]
            assert 'id="meters"' in (await http.get("/")).text


async def test_a_stations_main_meter_over_ocpp(tmp_path: Path) -> None:
    """MeterValues on connector 0 (the station's inlet) of CP1, as a connection meter."""
    cfg = building_config(
        tmp_path,
        {
            "measures": "connection",
            "stale_after_s": 5,
            "max_non_ev_a": 10,
            "source": {"type": "ocpp", "station": "CP1"},
        },
    )
    async with live_building(cfg) as (svc, fleet):
        building = Building(fleet, CARS, {"L1": 2.0, "L2": 2.0, "L3": 2.0})
        protocol = fleet.station("CP1").protocol

        async def main_meter() -> None:
            while True:
                sampled = [
                    {
                        "measurand": "Current.Import",
                        "phase": line,
                        "location": "Inlet",
                        "unit": "A",
                        "value": f"{a:.1f}",
                    }
                    for line, a in building.connection().items()
                ]
                stamp = datetime.now(UTC).isoformat().replace("+00:00", "Z")
                protocol.send_later(
                    "MeterValues",
                    {
                        "connectorId": 0,
                        "meterValue": [{"timestamp": stamp, "sampledValue": sampled}],
                    },
                )
                await asyncio.sleep(0.2)

        feeder = asyncio.create_task(main_meter())
        try:
            assert svc.meters is not None
            b = svc.meters.building
            await eventually(lambda: b.non_ev("grid", svc.clock())[Line.L1] <= 2.5, 5)
            for cid in CARS:
                fleet.plug_in(cid, EvSpec(battery_kwh=80, soc_start=0.1, lag_s=0.3))
            await eventually(lambda: building.limits_sum() >= LIMIT_A - 2 - 4, 10)
            building.load["L1"] = 30.0
            await eventually(lambda: building.excess() <= 1e-6, 2.5)
            # silent: counted at max_non_ev_a after stale_after_s
            feeder.cancel()
            building.load["L1"] = 2.0
            await eventually(lambda: b.stale(svc.clock()) == ["main"], 5 + 2)
        finally:
            feeder.cancel()
