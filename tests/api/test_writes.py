"""Write routes: each re-plans, is audited, and answers with the new plan."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest

from tests.api.conftest import NOW, WRITE
from tests.api.fake_backend import FakeSite


async def planned_now(client: httpx.AsyncClient, group: str) -> dict[str, float]:
    groups = (await client.get("/api/groups")).json()["groups"]
    return next(g for g in groups if g["id"] == group)["planned_a"]


async def limits(client: httpx.AsyncClient) -> dict[str, float | None]:
    stations = (await client.get("/api/stations")).json()
    return {c["connector_id"]: c["limit_a"] for s in stations for c in s["connectors"]}


async def test_group_limit_lowers_the_planned_currents(client: httpx.AsyncClient) -> None:
    before = await limits(client)
    assert (await planned_now(client, "panel-a"))["L1"] == pytest.approx(80, abs=0.01)
    r = await client.put("/api/groups/panel-a/limit", json={"limit_a": 45}, headers=WRITE)
    assert r.status_code == 200
    body = r.json()
    assert body["plan"]["plan_id"] == 2
    assert body["plan"]["reason"] == "operator limit"
    assert body["plan"]["status"] == "optimal"
    assert body["paused_sessions"] == []
    group = body["group"]
    assert group["override"]["limit_a"] == 45
    assert group["override"]["set_by"] == "alice"
    assert group["override"]["active_now"] is True
    assert group["capacity_a"] == 45
    assert group["planned_a"]["L1"] <= 45 + 1e-6
    after = await limits(client)
    for cid in ("CP01/1", "CP02/1", "CP03/1"):
        was, now = before[cid], after[cid]
        assert was is not None and now is not None
        assert now < was
    assert sum(after[c] or 0 for c in ("CP01/1", "CP02/1", "CP03/1")) <= 45 + 1e-6
    status = (await client.get("/api/status")).json()
    assert status["overrides_active"] == 1
    assert status["plan"]["plan_id"] == 2


async def test_power_limit_alone(client: httpx.AsyncClient) -> None:
    r = await client.put("/api/groups/grid/limit", json={"limit_kw": 30}, headers=WRITE)
    assert r.status_code == 200
    g = r.json()["group"]
    assert g["capacity_kw"] == 30 and g["override"]["limit_a"] is None
    assert g["planned_kw"] <= 30 + 1e-6


async def test_limit_in_a_window_changes_only_those_slots(client: httpx.AsyncClient) -> None:
    start = NOW + timedelta(hours=1)
    end = NOW + timedelta(hours=2)
    body = {"limit_a": 20, "start": start.isoformat(), "end": end.isoformat()}
    r = await client.put("/api/groups/panel-a/limit", json=body, headers=WRITE)
    assert r.status_code == 200
    g = r.json()["group"]
    assert g["override"]["active_now"] is False
    assert g["capacity_a"] == 80
    timeline = (await client.get("/api/groups/panel-a/timeline")).json()
    for p in timeline["points"]:
        if p["planned_a"] is None:
            continue
        at = datetime.fromisoformat(p["at"])
        # a slot that overlaps the window at all gets the window's limit
        inside = at < end and at + timedelta(minutes=15) > start
        assert (p["capacity_a"] == 20) == inside, at
        if inside:
            assert p["planned_a"]["L1"] <= 20 + 1e-6


async def test_limit_the_site_cannot_meet_pauses_sessions(client: httpx.AsyncClient) -> None:
    # three cars need at least 6 A each; 10 A can keep only one of them
    r = await client.put("/api/groups/panel-a/limit", json={"limit_a": 10}, headers=WRITE)
    assert r.status_code == 200
    body = r.json()
    assert len(body["paused_sessions"]) >= 2
    assert set(body["paused_sessions"]) <= {"T1", "T2", "T3"}
    assert body["group"]["planned_a"]["L1"] <= 10 + 1e-6
    paused = (await client.get(f"/api/sessions/{body['paused_sessions'][0]}")).json()
    assert paused["paused"] is True and paused["planned_a"] == 0
    r = await client.put("/api/groups/panel-a/limit", json={"limit_a": 0}, headers=WRITE)
    assert r.status_code == 200
    assert r.json()["paused_sessions"] == ["T1", "T2", "T3"]


async def test_clearing_restores_the_static_limit(client: httpx.AsyncClient) -> None:
    await client.put("/api/groups/panel-a/limit", json={"limit_a": 30}, headers=WRITE)
    r = await client.delete("/api/groups/panel-a/limit", headers=WRITE)
    assert r.status_code == 200
    body = r.json()
    assert body["group"]["override"] is None
    assert body["group"]["capacity_a"] == 80
    assert body["group"]["planned_a"]["L1"] == pytest.approx(80, abs=0.01)
    assert body["plan"]["plan_id"] == 3
    # clearing again is harmless
    again = await client.delete("/api/groups/panel-a/limit", headers=WRITE)
    assert again.status_code == 200
    events = (await client.get("/api/events")).json()["events"]
    assert [e["kind"] for e in events] == [
        "group_limit_cleared",
        "group_limit_cleared",
        "group_limit",
    ]


@pytest.mark.parametrize("method", ["PUT", "DELETE"])
async def test_limit_of_unknown_group_is_404(client: httpx.AsyncClient, method: str) -> None:
    r = await client.request(
        method, "/api/groups/panel-z/limit", json={"limit_a": 10}, headers=WRITE
    )
    assert r.status_code == 404
    assert r.json() == {"detail": "unknown group 'panel-z'"}


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "limit_kw"),
        ({"limit_a": None, "limit_kw": None}, "limit_kw"),
        ({"limit_a": -1}, "limit_a"),
        ({"limit_a": "lots"}, "limit_a"),
        ({"limit_kw": -0.5}, "limit_kw"),
        ({"limit_a": 10, "start": "2026-03-02T18:00:00"}, "start"),
        ({"limit_a": 10, "start": "1900-01-01T00:00:00Z"}, "start"),
        ({"limit_a": 10, "end": "0001-01-01T00:00:00+01:00"}, "end"),
        (
            {"limit_a": 10, "start": "2026-03-02T18:00:00Z", "end": "2026-03-02T17:00:00Z"},
            "end",
        ),
        ({"limit_a": 10, "colour": "red"}, "colour"),
    ],
)
async def test_limit_validation_names_the_field(
    client: httpx.AsyncClient, body: dict[str, Any], field: str
) -> None:
    r = await client.put("/api/groups/panel-a/limit", json=body, headers=WRITE)
    assert r.status_code == 422, r.text
    locs = [e["loc"] for e in r.json()["detail"]]
    assert ["body", field] in locs


async def test_limit_body_must_be_json(client: httpx.AsyncClient) -> None:
    r = await client.put(
        "/api/groups/panel-a/limit",
        content=b"limit_a=10",
        headers={**WRITE, "Content-Type": "application/json"},
    )
    assert r.status_code == 422


async def test_patch_session_replans_with_the_new_figures(
    client: httpx.AsyncClient, fake: FakeSite
) -> None:
    departure = NOW + timedelta(hours=2)
    r = await client.patch(
        "/api/sessions/T3",
        json={"priority": 5, "departure": departure.isoformat(), "energy_need_kwh": 12.5},
        headers=WRITE,
    )
    assert r.status_code == 200
    body = r.json()
    assert body["plan"]["plan_id"] == 2
    assert body["plan"]["reason"] == "session changed"
    s = body["session"]
    assert s["priority"] == 5
    assert s["energy_need_kwh"] == pytest.approx(12.5)
    assert not s["energy_need_estimated"] and not s["departure_estimated"]
    assert s["departure"].startswith("2026-03-02T19:07")
    plan = (await client.get("/api/plan")).json()
    t3 = next(x for x in plan["sessions"] if x["session_id"] == "T3")
    assert t3["requested_kwh"] == pytest.approx(12.5, abs=0.01)
    assert fake.audit[-1].kind == "session_patch" and fake.audit[-1].actor == "alice"


async def test_patch_one_field_keeps_the_others(client: httpx.AsyncClient) -> None:
    before = (await client.get("/api/sessions/T1")).json()
    r = await client.patch("/api/sessions/T1", json={"priority": 2}, headers=WRITE)
    assert r.status_code == 200
    s = r.json()["session"]
    assert s["priority"] == 2
    assert s["departure"] == before["departure"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "energy_need_kwh"),
        ({"priority": 0}, "priority"),
        ({"priority": -3}, "priority"),
        ({"energy_need_kwh": -1}, "energy_need_kwh"),
        ({"departure": "tomorrow"}, "departure"),
        ({"departure": "2026-03-02T20:00:00"}, "departure"),
        ({"priority": 1, "session_id": "T9"}, "session_id"),
    ],
)
async def test_patch_validation_names_the_field(
    client: httpx.AsyncClient, body: dict[str, Any], field: str
) -> None:
    r = await client.patch("/api/sessions/T1", json=body, headers=WRITE)
    assert r.status_code == 422, r.text
    assert ["body", field] in [e["loc"] for e in r.json()["detail"]]


async def test_patch_charge_mode_round_trip(client: httpx.AsyncClient, fake: FakeSite) -> None:
    before = (await client.get("/api/sessions/T1")).json()
    assert before["charge_mode"] == "fast"
    r = await client.patch("/api/sessions/T1", json={"charge_mode": "solar"}, headers=WRITE)
    assert r.status_code == 200, r.text
    assert r.json()["session"]["charge_mode"] == "solar"
    after = (await client.get("/api/sessions/T1")).json()
    assert after["charge_mode"] == "solar" and after["priority"] == before["priority"]
    r = await client.patch("/api/sessions/T1", json={"charge_mode": "min+solar"}, headers=WRITE)
    assert (await client.get("/api/sessions/T1")).json()["charge_mode"] == "min+solar"


@pytest.mark.parametrize("mode", ["eco", "SOLAR", "", 1])
async def test_patch_bad_charge_mode_is_422_and_changes_nothing(
    client: httpx.AsyncClient, fake: FakeSite, mode: object
) -> None:
    audits = len(fake.audit)
    r = await client.patch("/api/sessions/T1", json={"charge_mode": mode}, headers=WRITE)
    assert r.status_code == 422, r.text
    error = next(e for e in r.json()["detail"] if e["loc"] == ["body", "charge_mode"])
    assert "'fast', 'solar' or 'min+solar'" in error["msg"]
    assert (await client.get("/api/sessions/T1")).json()["charge_mode"] == "fast"
    assert len(fake.audit) == audits


async def test_patch_unknown_session_is_404(client: httpx.AsyncClient) -> None:
    r = await client.patch("/api/sessions/T404", json={"priority": 2}, headers=WRITE)
    assert r.status_code == 404
    assert r.json() == {"detail": "unknown session 'T404'"}


async def test_patch_ended_session_is_409(client: httpx.AsyncClient) -> None:
    await client.post(
        "/api/stations/CP01/commands",
        json={"command": "remote_stop", "connector": 1},
        headers=WRITE,
    )
    r = await client.patch("/api/sessions/T1", json={"priority": 2}, headers=WRITE)
    assert r.status_code == 409
    assert "ended" in r.json()["detail"]


async def test_patch_departure_before_start_is_409(client: httpx.AsyncClient) -> None:
    r = await client.patch(
        "/api/sessions/T1", json={"departure": "2026-03-01T00:00:00Z"}, headers=WRITE
    )
    assert r.status_code == 409


async def command(client: httpx.AsyncClient, station: str, body: dict[str, Any]) -> httpx.Response:
    return await client.post(f"/api/stations/{station}/commands", json=body, headers=WRITE)


async def test_remote_start_and_stop(client: httpx.AsyncClient, fake: FakeSite) -> None:
    r = await command(client, "CP05", {"command": "remote_start", "connector": 2, "id_tag": "AB"})
    assert r.status_code == 200
    body = r.json()
    assert body["outcome"] == "accepted"
    assert body["command"] == "remote_start"
    assert body["plan"]["sessions"] == 6
    station = (await client.get("/api/stations/CP05")).json()
    assert station["connectors"][1]["status"] == "Charging"
    assert station["connectors"][1]["limit_a"] > 0
    again = await command(
        client, "CP05", {"command": "remote_start", "connector": 2, "id_tag": "CD"}
    )
    assert again.json()["outcome"] == "rejected"
    r = await command(client, "CP05", {"command": "remote_stop", "connector": 2})
    assert r.json()["outcome"] == "accepted"
    assert r.json()["plan"]["sessions"] == 5
    r = await command(client, "CP05", {"command": "remote_stop", "connector": 2})
    assert r.json()["outcome"] == "rejected"


@pytest.mark.parametrize(
    "body",
    [
        {"command": "trigger_meter_values"},
        {"command": "trigger_meter_values", "connector": 1},
        {"command": "reset"},
        {"command": "reset", "kind": "hard"},
        {"command": "availability", "operative": False},
        {"command": "availability", "connector": 2, "operative": True},
    ],
)
async def test_other_commands_are_accepted(
    client: httpx.AsyncClient, fake: FakeSite, body: dict[str, Any]
) -> None:
    r = await command(client, "CP05", body)
    assert r.status_code == 200
    assert r.json()["outcome"] == "accepted"
    station_id, sent, actor = fake.commands[-1]
    assert (station_id, sent.command, actor) == ("CP05", body["command"], "alice")


async def test_availability_marks_idle_connectors(client: httpx.AsyncClient) -> None:
    await command(client, "CP05", {"command": "availability", "operative": False})
    conns = (await client.get("/api/stations/CP05")).json()["connectors"]
    assert [c["status"] for c in conns] == ["Charging", "Unavailable"]


async def test_command_to_a_disconnected_station(client: httpx.AsyncClient, fake: FakeSite) -> None:
    fake.connected.discard("CP02")
    r = await command(client, "CP02", {"command": "reset"})
    assert r.status_code == 200
    assert r.json()["outcome"] == "not_connected"


@pytest.mark.parametrize(
    ("station", "body", "detail"),
    [
        ("CP99", {"command": "reset"}, "unknown station 'CP99'"),
        ("CP01", {"command": "remote_stop", "connector": 2}, "unknown connector 'CP01/2'"),
    ],
)
async def test_command_unknown_ids_are_404(
    client: httpx.AsyncClient, station: str, body: dict[str, Any], detail: str
) -> None:
    r = await command(client, station, body)
    assert r.status_code == 404
    assert r.json() == {"detail": detail}


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"command": "explode"}, None),
        ({"command": "remote_start", "connector": 1}, "id_tag"),
        ({"command": "remote_start", "connector": 0, "id_tag": "X"}, "connector"),
        ({"command": "reset", "kind": "gentle"}, "kind"),
        ({"command": "availability"}, "operative"),
    ],
)
async def test_command_validation(
    client: httpx.AsyncClient, body: dict[str, Any], field: str | None
) -> None:
    r = await command(client, "CP01", body)
    assert r.status_code == 422
    if field is not None:
        assert any(e["loc"][-1] == field for e in r.json()["detail"]), r.text


# JSON as Python reads it: NaN, Infinity and 1e400 (an infinity) are numbers to it.
NOT_FINITE = ["NaN", "Infinity", "-Infinity", "1e400"]
WRONG_TYPE = ["true", "false", '"5"']


@pytest.mark.parametrize(
    ("method", "path", "template", "field"),
    [
        ("PUT", "/api/groups/panel-a/limit", '{"limit_a": %s}', "limit_a"),
        ("PUT", "/api/groups/panel-a/limit", '{"limit_kw": %s}', "limit_kw"),
        ("PATCH", "/api/sessions/T1", '{"priority": %s}', "priority"),
        ("PATCH", "/api/sessions/T1", '{"energy_need_kwh": %s}', "energy_need_kwh"),
        (
            "POST",
            "/api/groups/grid/adjust",
            '{"capacity": %s, "unit": "A", "end": "2026-03-02T20:00:00Z"}',
            "capacity",
        ),
        (
            "POST",
            "/api/stations/CP01/commands",
            '{"command": "remote_stop", "connector": %s}',
            "connector",
        ),
    ],
)
@pytest.mark.parametrize("value", NOT_FINITE + WRONG_TYPE)
async def test_numbers_are_finite_json_numbers(
    client: httpx.AsyncClient,
    fake: FakeSite,
    method: str,
    path: str,
    template: str,
    field: str,
    value: str,
) -> None:
    r = await client.request(
        method,
        path,
        content=(template % value).encode(),
        headers={**WRITE, "Content-Type": "application/json"},
    )
    assert r.status_code == 422, r.text
    errors = r.json()["detail"]
    assert [e["loc"][-1] for e in errors] == [field]
    if field == "connector":
        assert errors[0]["msg"] == "Input should be a valid integer"
    elif value in NOT_FINITE:
        assert errors[0]["msg"] == "Input should be a finite number"
    else:
        assert errors[0]["msg"] == "Input should be a valid number"
    assert fake.plan_count == 1 and fake.audit == []


async def test_a_not_finite_input_is_named_in_the_error(client: httpx.AsyncClient) -> None:
    r = await client.put(
        "/api/groups/panel-a/limit",
        content=b'{"limit_a": NaN, "limit_kw": -Infinity, "colour": [Infinity]}',
        headers={**WRITE, "Content-Type": "application/json"},
    )
    assert r.status_code == 422, r.text
    inputs = {e["loc"][-1]: e["input"] for e in r.json()["detail"]}
    assert inputs == {"limit_a": "NaN", "limit_kw": "-Infinity", "colour": ["Infinity"]}


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"command": "availability", "operative": 1}, "operative"),
        ({"command": "availability", "operative": "yes"}, "operative"),
        ({"command": "availability", "connector": True, "operative": True}, "connector"),
        ({"command": "remote_stop", "connector": 1.0}, "connector"),
        ({"command": "remote_start", "connector": 1, "id_tag": 7}, "id_tag"),
    ],
)
async def test_command_fields_are_strict(
    client: httpx.AsyncClient, fake: FakeSite, body: dict[str, Any], field: str
) -> None:
    r = await command(client, "CP01", body)
    assert r.status_code == 422, r.text
    assert [e["loc"][-1] for e in r.json()["detail"]] == [field]
    assert fake.audit == []


@pytest.mark.parametrize("end", [1900000000, 1.9e9, True])
async def test_times_are_iso_strings(client: httpx.AsyncClient, end: object) -> None:
    r = await client.put(
        "/api/groups/panel-a/limit", json={"limit_a": 10, "end": end}, headers=WRITE
    )
    assert r.status_code == 422, r.text
    assert [e["loc"][-1] for e in r.json()["detail"]] == ["end"]


async def test_an_absurd_limit_is_refused_in_the_apis_own_terms(
    client: httpx.AsyncClient,
) -> None:
    # a float near its maximum once reached the planner and overflowed there
    for body in ({"limit_kw": 1.2491936546549876e308}, {"limit_a": 1e12}):
        r = await client.put("/api/groups/grid/limit", json=body, headers=WRITE)
        assert r.status_code == 422, body
        assert next(iter(body)) in r.text
