"""Read routes: what an operator sees of the site."""

from __future__ import annotations

import httpx
import pytest

from tests.api.conftest import NOW, WRITE
from tests.api.fake_backend import FakeSite


async def test_status_reports_site_counts_plan_and_dso(client: httpx.AsyncClient) -> None:
    r = await client.get("/api/status")
    assert r.status_code == 200
    body = r.json()
    assert body["site"] == "Test depot"
    assert body["stations_known"] == 5
    assert body["stations_connected"] == 5
    assert body["sessions_active"] == 5
    assert body["plan"]["status"] == "optimal"
    assert body["plan"]["slots"] == 96
    assert body["dso"] == {
        "configured": True,
        "online": True,
        "last_heartbeat": body["dso"]["last_heartbeat"],
        "fallback_active": False,
        "detail": "fake DSO",
    }


async def test_groups_are_a_tree_with_limits_and_loads(client: httpx.AsyncClient) -> None:
    body = (await client.get("/api/groups")).json()
    assert body["root"] == "grid"
    by_id = {g["id"]: g for g in body["groups"]}
    assert [g["id"] for g in body["groups"]] == ["grid", "panel-a", "panel-b"]
    assert by_id["grid"]["children"] == ["panel-a", "panel-b"]
    a = by_id["panel-a"]
    assert a["static_limit_a"] == 80
    assert a["capacity_a"] == 80
    assert a["override"] is None
    assert a["lines"] == ["L1", "L2", "L3"]
    # three 32 A cars share 80 A per line
    assert a["planned_a"]["L1"] == pytest.approx(80, abs=0.01)
    assert 0 < a["measured_a"]["L1"] <= 80
    assert by_id["grid"]["dso_forecast"]["source"] == "oscp:fake-dso"


async def test_timeline_has_measured_past_and_planned_future(client: httpx.AsyncClient) -> None:
    r = await client.get("/api/groups/panel-a/timeline", params={"hours": 1})
    assert r.status_code == 200
    body = r.json()
    measured = [p for p in body["points"] if p["measured_a"] is not None]
    planned = [p for p in body["points"] if p["planned_a"] is not None]
    assert len(measured) == 3
    assert len(planned) == 96
    assert all(p["capacity_a"] == 80 for p in planned)
    times = [p["at"] for p in body["points"]]
    assert times == sorted(times)


async def test_timeline_of_unknown_group_is_404(client: httpx.AsyncClient) -> None:
    r = await client.get("/api/groups/nope/timeline")
    assert r.status_code == 404
    assert r.json() == {"detail": "unknown group 'nope'"}


@pytest.mark.parametrize("hours", ["0", "-1", "49", "abc"])
async def test_timeline_hours_out_of_range_is_422(client: httpx.AsyncClient, hours: str) -> None:
    r = await client.get("/api/groups/grid/timeline", params={"hours": hours})
    assert r.status_code == 422
    assert r.json()["detail"][0]["loc"] == ["query", "hours"]


async def test_stations_list_connectors_with_limit_draw_and_energy(
    client: httpx.AsyncClient,
) -> None:
    body = (await client.get("/api/stations")).json()
    assert [s["station_id"] for s in body] == ["CP01", "CP02", "CP03", "CP04", "CP05"]
    cp05 = body[4]
    assert [c["connector_id"] for c in cp05["connectors"]] == ["CP05/1", "CP05/2"]
    busy, idle = cp05["connectors"]
    assert busy["session_id"] == "T5"
    assert busy["lines"] == ["L1"]
    assert busy["limit_a"] == pytest.approx(20)
    assert set(busy["draw_a"]) == {"L1"}
    assert busy["energy_kwh"] > 0
    assert busy["profile"]["outcome"] == "accepted"
    assert idle["session_id"] is None and idle["limit_a"] is None and idle["status"] == "Available"


async def test_one_station_and_unknown_station(client: httpx.AsyncClient) -> None:
    r = await client.get("/api/stations/CP02")
    assert r.status_code == 200
    assert r.json()["station_id"] == "CP02"
    r = await client.get("/api/stations/CP99")
    assert r.status_code == 404
    assert r.json()["detail"] == "unknown station 'CP99'"


async def test_sessions_by_state(client: httpx.AsyncClient) -> None:
    r = await client.post(
        "/api/stations/CP04/commands",
        json={"command": "remote_stop", "connector": 1},
        headers=WRITE,
    )
    assert r.json()["outcome"] == "accepted"
    active = (await client.get("/api/sessions", params={"state": "active"})).json()
    recent = (await client.get("/api/sessions", params={"state": "recent"})).json()
    every = (await client.get("/api/sessions")).json()
    assert sorted(s["session_id"] for s in active) == ["T1", "T2", "T3", "T5"]
    assert [s["session_id"] for s in recent] == ["T4"]
    assert recent[0]["ended_at"] is not None and recent[0]["planned_a"] is None
    assert len(every) == 5
    r = await client.get("/api/sessions", params={"state": "finished"})
    assert r.status_code == 422
    assert r.json()["detail"][0]["loc"] == ["query", "state"]


async def test_one_session_and_unknown_session(client: httpx.AsyncClient) -> None:
    body = (await client.get("/api/sessions/T1")).json()
    assert body["connector_id"] == "CP01/1"
    assert body["energy_need_kwh"] > 0 and body["priority"] == 1.0 and not body["paused"]
    r = await client.get("/api/sessions/T404")
    assert r.status_code == 404


async def test_plan_per_connector_per_slot(client: httpx.AsyncClient) -> None:
    body = (await client.get("/api/plan")).json()
    assert body["plan"]["plan_id"] == 1
    assert len(body["slot_starts"]) == 96
    rows = {c["connector_id"]: c for c in body["connectors"]}
    assert set(rows) == {"CP01/1", "CP02/1", "CP03/1", "CP04/1", "CP05/1", "CP05/2"}
    assert all(len(c["current_a"]) == 96 for c in rows.values())
    assert rows["CP05/2"]["session_id"] is None
    assert sum(rows["CP05/2"]["current_a"]) == 0
    sessions = {s["session_id"]: s for s in body["sessions"]}
    assert sessions["T1"]["requested_kwh"] == pytest.approx(40, abs=0.5)
    assert {"group_id": "panel-a", "quantity": "L1", "slot": 0} in body["binding"]


async def test_plan_before_any_plan_is_404(client: httpx.AsyncClient, fake: FakeSite) -> None:
    fake.plan_obj = None
    fake.plan_status = None
    r = await client.get("/api/plan")
    assert r.status_code == 404
    assert r.json() == {"detail": "no plan yet"}


async def test_forecasts(client: httpx.AsyncClient) -> None:
    body = (await client.get("/api/forecasts")).json()
    assert len(body) == 1
    f = body[0]
    assert f["group_id"] == "grid" and f["kind"] == "capacity"
    assert f["points"][0]["limit_a"] == 100


async def test_events_are_paged_newest_first(client: httpx.AsyncClient) -> None:
    for a in (70, 60, 50, 40, 30):
        r = await client.put("/api/groups/panel-a/limit", json={"limit_a": a}, headers=WRITE)
        assert r.status_code == 200
    first = (await client.get("/api/events", params={"limit": 2})).json()
    assert [e["detail"]["limit_a"] for e in first["events"]] == [30, 40]
    assert first["events"][0]["actor"] == "alice"
    second = (
        await client.get("/api/events", params={"limit": 2, "before": first["next_before"]})
    ).json()
    assert [e["detail"]["limit_a"] for e in second["events"]] == [50, 60]
    last = (
        await client.get("/api/events", params={"limit": 2, "before": second["next_before"]})
    ).json()
    assert [e["detail"]["limit_a"] for e in last["events"]] == [70]
    assert last["next_before"] is None


@pytest.mark.parametrize(
    ("params", "field"),
    [({"limit": 0}, "limit"), ({"limit": 501}, "limit"), ({"before": 0}, "before")],
)
async def test_events_paging_validation(
    client: httpx.AsyncClient, params: dict[str, int], field: str
) -> None:
    r = await client.get("/api/events", params=params)
    assert r.status_code == 422
    assert r.json()["detail"][0]["loc"] == ["query", field]


async def test_times_are_aware_iso(client: httpx.AsyncClient) -> None:
    body = (await client.get("/api/status")).json()
    assert body["now"].startswith(NOW.date().isoformat())
    assert body["now"].endswith("Z") or body["now"].endswith("+00:00")


async def test_openapi_schema_lists_every_route(client: httpx.AsyncClient) -> None:
    schema = (await client.get("/api/openapi.json")).json()
    paths = schema["paths"]
    expected = {
        "/api/status": {"get"},
        "/api/groups": {"get"},
        "/api/groups/{group_id}/timeline": {"get"},
        "/api/groups/{group_id}/limit": {"put", "delete"},
        "/api/stations": {"get"},
        "/api/stations/{station_id}": {"get"},
        "/api/stations/{station_id}/commands": {"post"},
        "/api/sessions": {"get"},
        "/api/sessions/{session_id}": {"get", "patch"},
        "/api/plan": {"get"},
        "/api/forecasts": {"get"},
        "/api/events": {"get"},
        "/api/live": {"get"},
        "/metrics": {"get"},
    }
    for path, methods in expected.items():
        assert set(paths[path]) == methods, path
    assert schema["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
    put = paths["/api/groups/{group_id}/limit"]["put"]
    assert {"200", "401", "403", "404", "422"} <= set(put["responses"])
    assert "GroupLimitResult" in schema["components"]["schemas"]
    assert (await client.get("/api/docs")).status_code == 404  # no page loading a CDN


def test_the_fake_is_an_operator_backend(fake: FakeSite) -> None:
    from gridshare.api import OperatorBackend

    assert isinstance(fake, OperatorBackend)
