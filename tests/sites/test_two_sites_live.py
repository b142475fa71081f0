"""Two sites in one process, on loopback: one OCPP port, one HTTP port.

Each site's stations get their own site's profiles; an operator limit on one
site moves only that site's stations; the API answers per site; the unscoped
routes tell which scoped one to use; a station of no site is refused."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from gridshare.deployment import Deployment
from gridshare.deployment_config import load_deployment
from ocpp_adapter.versions import OcppVersion
from tests.ocpp.helpers import Station
from tests.sites.helpers import TOKEN, site_toml, write_sites

pytestmark = pytest.mark.slow

NORTH_A, SOUTH_A = 24.0, 10.0
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def ts() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


async def open_station(node: Deployment, sid: str) -> Station:
    ws = await connect(
        f"ws://127.0.0.1:{node.ocpp_port}/ocpp/{sid}",
        subprotocols=[OcppVersion.V16.value],  # type: ignore[list-item]
        compression=None,
    )
    st = Station(ws, OcppVersion.V16, {})
    await st.boot()
    return st


async def charge(st: Station) -> None:
    await st.call(
        "StatusNotification",
        {"connectorId": 1, "errorCode": "NoError", "status": "Preparing", "timestamp": ts()},
    )
    reply = await st.call(
        "StartTransaction", {"connectorId": 1, "idTag": "tag", "meterStart": 0, "timestamp": ts()}
    )
    assert reply["idTagInfo"]["status"] == "Accepted"


def tx_limits(st: Station) -> list[float]:
    """The limit of each TxProfile the station was sent, in order."""
    out = []
    for payload in st.sent("SetChargingProfile"):
        profile = payload["csChargingProfiles"]
        if profile["chargingProfilePurpose"] == "TxProfile":
            out.append(float(profile["chargingSchedule"]["chargingSchedulePeriod"][0]["limit"]))
    return out


async def until(check: Any, what: str, seconds: float = 10.0) -> None:
    async with asyncio.timeout(seconds):
        while not check():
            await asyncio.sleep(0.02)


@pytest.fixture
async def node(tmp_path: Path) -> AsyncIterator[Deployment]:
    folder = write_sites(
        tmp_path / "sites",
        {
            "north": site_toml("North depot", NORTH_A, ("N1",)),
            "south": site_toml("South depot", SOUTH_A, ("S1",)),
        },
    )
    sites, edges = load_deployment(folder, str(tmp_path / "data"))
    deployment = Deployment(sites, edges)
    await deployment.start()
    try:
        yield deployment
    finally:
        await deployment.stop()


async def test_each_site_plans_its_own_stations_and_keeps_its_store(
    node: Deployment, tmp_path: Path
) -> None:
    north, south = await open_station(node, "N1"), await open_station(node, "S1")
    try:
        await charge(north)
        await charge(south)
        await until(lambda: tx_limits(north) and tx_limits(south), "profiles of both sites")
        assert max(tx_limits(north)) <= NORTH_A and max(tx_limits(south)) <= SOUTH_A
        assert tx_limits(north)[-1] > SOUTH_A  # north is not held to south's capacity
        # each site's store holds its own station's session only
        stores = {sid: rt.store for sid, rt in node.runtimes.items()}
        assert all(s is not None for s in stores.values())
        assert {f.name for f in (tmp_path / "data").glob("*.db")} == {"north.db", "south.db"}
        north_ctl, south_ctl = node.runtimes["north"].controller, node.runtimes["south"].controller
        assert north_ctl is not None and south_ctl is not None
        assert set(north_ctl.sessions) == {"N1/1"} and set(south_ctl.sessions) == {"S1/1"}

        # an operator limit on south moves south's station, not north's
        sent_north = len(tx_limits(north))
        limit_north = north_ctl.limit_now("N1/1", north_ctl.clock())
        async with httpx.AsyncClient(base_url=node.http_url, headers=AUTH) as http:
            r = await http.put("/api/sites/south/groups/grid/limit", json={"limit_a": 6})
            assert r.status_code == 200, r.text
        await until(lambda: tx_limits(south)[-1] <= 6, "south's lowered limit")
        await south_ctl.wait_idle()
        await north_ctl.wait_idle()
        assert north_ctl.limit_now("N1/1", north_ctl.clock()) == limit_north
        assert len(tx_limits(north)) == sent_north
    finally:
        await north.close()
        await south.close()


async def test_the_api_answers_per_site(node: Deployment) -> None:
    north = await open_station(node, "N1")
    try:
        async with httpx.AsyncClient(base_url=node.http_url, headers=AUTH) as http:
            sites = (await http.get("/api/sites")).json()
            assert [(s["id"], s["name"]) for s in sites] == [
                ("north", "North depot"),
                ("south", "South depot"),
            ]
            assert sites[1]["oscp"] == "/sites/south/oscp/fp/2.0"
            expected = (("north", "North depot", "N1"), ("south", "South depot", "S1"))
            for sid, name, station in expected:
                status = await http.get(f"/api/sites/{sid}/status")
                assert status.status_code == 200 and status.json()["site"] == name
                stations = (await http.get(f"/api/sites/{sid}/stations")).json()
                assert [s["station_id"] for s in stations] == [station]
                groups = (await http.get(f"/api/sites/{sid}/groups")).json()
                assert [g["id"] for g in groups["groups"]] == ["grid"]
                metrics = await http.get(f"/api/sites/{sid}/metrics")
                assert metrics.status_code == 200 and "gridshare_" in metrics.text
            node_metrics = await http.get("/metrics")  # every site's, labelled
            assert node_metrics.status_code == 200
            connected = [
                line
                for line in node_metrics.text.splitlines()
                if line.startswith("gridshare_stations_connected{")
            ]
            assert sorted(connected) == [
                'gridshare_stations_connected{site="north"} 1.0',
                'gridshare_stations_connected{site="south"} 0.0',
            ]
            assert node_metrics.text.count("# TYPE gridshare_stations_connected gauge") == 1
            unscoped = await http.get("/api/status")
            assert unscoped.status_code == 409
            assert "/api/sites/{site}/status" in unscoped.json()["detail"]
            oscp = await http.post("/oscp/fp/2.0/register", json={})
            assert oscp.status_code == 409 and "/sites/{site}/oscp/" in oscp.json()["detail"]
            # each site's OSCP endpoints under its prefix, told its DSO as its base URL
            for sid, rt in node.runtimes.items():
                assert rt.oscp is not None
                assert rt.oscp.our_base_url == f"{node.http_url}/sites/{sid}/oscp/fp/2.0"
            register = await http.post("/sites/north/oscp/fp/2.0/register", json={})
            assert register.status_code == 401  # OSCP's own answer: no DSO token
            west = await http.post(
                "/sites/west/oscp/fp/2.0/register", headers={"Authorization": ""}
            )
            assert west.status_code == 404 and "north" not in west.text  # no sites told
            oscp = await http.post("/oscp/fp/2.0/register", headers={"Authorization": ""})
            assert oscp.status_code == 409 and "north" not in oscp.text
            async with http.stream("GET", "/api/sites/south/live") as live:
                assert live.status_code == 200
                async with asyncio.timeout(10):
                    async for line in live.aiter_lines():
                        if line.startswith("data:"):
                            assert "S1/1" in line and "N1" not in line  # south's only
                            break
            unknown = await http.get("/api/sites/west/status")
            assert unknown.status_code == 404 and "north, south" in unknown.json()["detail"]
            # without a token, nothing of the sites is told
            assert (await http.get("/api/sites", headers={"Authorization": ""})).status_code == 401
            page = await http.get("/")
            assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    finally:
        await north.close()


async def test_a_station_of_no_site_is_refused_as_today(node: Deployment) -> None:
    with pytest.raises(InvalidStatus) as e:
        await connect(
            f"ws://127.0.0.1:{node.ocpp_port}/ocpp/W1",
            subprotocols=[OcppVersion.V16.value],  # type: ignore[list-item]
        )
    assert e.value.response.status_code == 404


async def test_one_site_keeps_its_routes_and_answers_the_scoped_ones(tmp_path: Path) -> None:
    folder = write_sites(tmp_path / "sites", {"solo": site_toml("Solo depot", 16, ("O1",))})
    sites, edges = load_deployment(folder / "solo.toml")
    node = Deployment(sites, edges)
    await node.start()
    try:
        async with httpx.AsyncClient(base_url=node.http_url, headers=AUTH) as http:
            listed = (await http.get("/api/sites")).json()
            assert listed == [
                {
                    "id": "solo",
                    "name": "Solo depot",
                    "api": "/api/sites/solo",
                    "oscp": "/oscp/fp/2.0",
                }
            ]
            for path in ("/api/status", "/api/sites/solo/status"):
                r = await http.get(path)
                assert r.status_code == 200 and r.json()["site"] == "Solo depot"
            for path in ("/metrics", "/api/sites/solo/metrics"):
                r = await http.get(path)
                assert r.status_code == 200 and 'site="' not in r.text  # as before: no label
            assert (await http.get("/api/sites/other/status")).status_code == 404
        assert node.runtimes["solo"].oscp is not None
        assert node.runtimes["solo"].oscp.our_base_url == f"{node.http_url}/oscp/fp/2.0"
    finally:
        await node.stop()
