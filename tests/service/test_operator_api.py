"""The operator API over HTTP against a running service with in-process stations.

Every write goes through the real controller: it is stored and audited, it
re-plans, and the stations (the demo's `LocalStations`, which enforce the
limit in force as a station does) end up with new limits.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from gridshare.api.schemas import ChangeKind
from gridshare.config import GridshareConfig, parse_config
from gridshare.controller import ControllerSettings
from gridshare.service import (
    EventSink,
    Service,
    controller_settings,
)
from tests.service.local_stations import Car, LocalStations
from tests.service.sites import NOW

READ_TOKEN = "read-token-0123456789"
WRITE_TOKEN = "write-token-9876543210"
READ = {"Authorization": f"Bearer {READ_TOKEN}"}
WRITE = {"Authorization": f"Bearer {WRITE_TOKEN}"}
PANEL_A = ("CP1/1", "CP2/1")


def site_config(tmp_path: Path) -> GridshareConfig:
    data = {
        "site": {"name": "operator depot", "horizon_hours": 4},
        "groups": [
            {"id": "grid", "limit_a": 140, "description": "Grid connection"},
            {"id": "panel-a", "parent": "grid", "limit_a": 64},
            {"id": "panel-b", "parent": "grid", "limit_a": 48},
        ],
        "chargers": [
            {
                "id": f"CP{i}",
                "group": "panel-a" if i <= 2 else "panel-b",
                "connectors": [{"id": 1, "max_current_a": 32, "min_current_a": 6}],
            }
            for i in range(1, 5)
        ],
        "server": {"host": "127.0.0.1", "ocpp_port": 0, "http_port": 0},
        "api": {
            "tokens": [
                {"name": "viewer", "token": READ_TOKEN, "role": "read"},
                {"name": "alice", "token": WRITE_TOKEN, "role": "write"},
            ],
            "open_reads_on_loopback": True,  # reads without a token below
        },
    }
    return parse_config(data, "op.toml", tmp_path / "op.toml", environ={})


def cars() -> list[tuple[str, Car]]:
    return [
        (
            f"CP{i}/1",
            Car(60.0, 0.3, 32.0, 3, NOW, NOW + timedelta(hours=3), f"tag-{i}"),
        )
        for i in (1, 2, 3)
    ]


@dataclass
class Site:
    svc: Service
    stations: LocalStations
    client: httpx.AsyncClient
    sim: list[datetime]

    def now(self) -> datetime:
        return self.sim[0]

    def limit(self, cid: str) -> float:
        return self.stations.limit(cid, self.now())

    def panel_a(self) -> float:
        return sum(self.limit(c) for c in PANEL_A)

    async def settle(self) -> None:
        ctl = self.svc.controller
        assert ctl is not None
        for _ in range(300):
            await ctl.wait_idle(10)
            if not ctl.busy():
                return
            await asyncio.sleep(0.01)

    async def tick(self, seconds: float = 30.0) -> None:
        self.sim[0] += timedelta(seconds=seconds)
        await self.stations.tick(self.sim[0], seconds)
        await self.settle()


async def start_service(
    cfg: GridshareConfig, sim: list[datetime], holder: list[LocalStations]
) -> Service:
    def factory(c: GridshareConfig, port: int, host: str, sink: EventSink) -> LocalStations:
        st = LocalStations(c.site, sink, lambda: sim[0], cars())
        holder.append(st)
        return st

    base = controller_settings(cfg)
    settings = ControllerSettings(
        **{**base.__dict__, "coalesce_s": 0.005, "answer_timeout_s": 2.0, "learn_settle_s": 0}
    )
    svc = Service(
        cfg, gateway_factory=factory, clock=lambda: sim[0], scheduler=False, settings=settings
    )
    await svc.start()
    return svc


@pytest.fixture
async def site(tmp_path: Path) -> AsyncIterator[Site]:
    sim = [NOW]
    holder: list[LocalStations] = []
    svc = await start_service(site_config(tmp_path), sim, holder)
    try:
        async with httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{svc.http_port}", timeout=10
        ) as client:
            s = Site(svc, holder[0], client, sim)
            await s.tick(1)  # the cars plug in
            await s.tick(30)  # and draw: meter values
            yield s
    finally:
        await svc.stop()


async def get(site: Site, path: str, **params: Any) -> Any:
    r = await site.client.get(path, params=params)
    assert r.status_code == 200, (path, r.text)
    return r.json()


async def test_reads_show_the_running_service(site: Site) -> None:
    ctl = site.svc.controller
    assert ctl is not None
    status = await get(site, "/api/status")
    assert status["site"] == "operator depot"
    assert status["stations_known"] == 4 and status["stations_connected"] == 4
    assert status["sessions_active"] == 3
    assert status["plan"]["status"] in ("optimal", "feasible")
    assert status["plan"]["plan_id"] == ctl.plan_id
    assert status["dso"]["configured"] is False
    # what the service's status route always said is still there
    assert status["stations"]["connected"] == ["CP1", "CP2", "CP3", "CP4"]
    assert {s["transaction_id"] for s in status["sessions"]} == {"1", "2", "3"}
    assert status["service"]["database"].endswith("op.db")

    tree = await get(site, "/api/groups")
    groups = {g["id"]: g for g in tree["groups"]}
    assert tree["root"] == "grid" and next(g["id"] for g in tree["groups"]) == "grid"
    assert groups["grid"]["children"] == ["panel-a", "panel-b"]
    assert groups["panel-a"]["capacity_a"] == 64 and groups["grid"]["capacity_a"] == 140
    planned_a = groups["panel-a"]["planned_a"]["L1"]
    live_plan = ctl.plan
    assert live_plan is not None
    assert planned_a == pytest.approx(sum(live_plan.now_a(c) for c in PANEL_A), abs=0.05)
    assert 0 < groups["panel-a"]["measured_a"]["L1"] <= 64 + 1e-6
    assert groups["panel-a"]["measured_kw"] > 0

    stations = await get(site, "/api/stations")
    assert [s["station_id"] for s in stations] == ["CP1", "CP2", "CP3", "CP4"]
    cp1 = stations[0]
    assert cp1["connected"] and cp1["protocol"] == "ocpp1.6" and cp1["vendor"] == "gridshare"
    assert "SmartCharging" in cp1["capabilities"] and cp1["last_seen"] is not None
    [con] = cp1["connectors"]
    assert con["limit_a"] == pytest.approx(site.limit("CP1/1"), abs=0.01)
    assert con["session_id"] == "1" and con["energy_kwh"] > 0
    assert con["profile"]["outcome"] == "accepted"
    assert con["draw_a"]["L1"] > 0
    assert stations[3]["connectors"][0]["session_id"] is None
    assert (await get(site, "/api/stations/CP2"))["station_id"] == "CP2"

    sessions = await get(site, "/api/sessions", state="active")
    assert {s["session_id"] for s in sessions} == {"1", "2", "3"}
    one = await get(site, "/api/sessions/1")
    assert one["connector_id"] == "CP1/1" and one["active"] and one["departure_estimated"]
    assert one["limit_a"] == pytest.approx(site.limit("CP1/1"), abs=0.01)

    plan = await get(site, "/api/plan")
    assert plan["plan"]["plan_id"] == ctl.plan_id
    assert {s["session_id"] for s in plan["sessions"]} == {"1", "2", "3"}
    row = next(c for c in plan["connectors"] if c["connector_id"] == "CP1/1")
    assert len(row["current_a"]) == len(plan["slot_starts"])

    assert await get(site, "/api/forecasts") == []
    events = await get(site, "/api/events", limit=5)
    assert len(events["events"]) == 5 and events["next_before"] is not None
    assert {e["kind"] for e in events["events"]} == {"limit_accepted"}
    older = await get(site, "/api/events", limit=5, before=events["next_before"])
    assert max(e["id"] for e in older["events"]) < min(e["id"] for e in events["events"])

    timeline = await get(site, "/api/groups/panel-a/timeline", hours=1)
    measured = [p for p in timeline["points"] if p["measured_a"] is not None]
    planned = [p for p in timeline["points"] if p["planned_a"] is not None]
    assert measured and planned and measured[-1]["at"] < planned[0]["at"]
    assert measured[-1]["measured_a"]["L1"] > 0 and measured[-1]["capacity_a"] == 64
    assert planned[0]["planned_a"]["L1"] == pytest.approx(planned_a, abs=0.05)


async def test_a_group_limit_replans_and_the_stations_follow(site: Site) -> None:
    ctl = site.svc.controller
    assert ctl is not None
    before_id = ctl.plan_id or 0
    assert site.panel_a() == pytest.approx(64)
    r = await site.client.put("/api/groups/panel-a/limit", json={"limit_a": 20}, headers=WRITE)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["plan"]["plan_id"] > before_id and body["plan"]["reason"] == "operator limit"
    assert body["group"]["override"]["limit_a"] == 20
    assert body["group"]["override"]["set_by"] == "alice"
    assert body["group"]["capacity_a"] == 20 and body["paused_sessions"] == []
    # by the time the answer came the stations had their new limits
    assert site.panel_a() <= 20 + 1e-6
    assert site.limit("CP3/1") > 16  # the other panel is not touched

    events = (await get(site, "/api/events", limit=50))["events"]
    set_ = next(e for e in events if e["kind"] == "group_limit")
    assert set_["subject"] == "panel-a" and set_["actor"] == "alice"
    assert set_["detail"]["limit_a"] == 20

    r = await site.client.delete("/api/groups/panel-a/limit", headers=WRITE)
    assert r.status_code == 200, r.text
    assert r.json()["group"]["override"] is None
    assert site.panel_a() == pytest.approx(64)
    events = (await get(site, "/api/events", limit=50))["events"]
    assert any(e["kind"] == "group_limit_cleared" and e["actor"] == "alice" for e in events)


async def test_a_limit_below_the_minimum_currents_pauses_sessions(site: Site) -> None:
    r = await site.client.put("/api/groups/panel-a/limit", json={"limit_a": 8}, headers=WRITE)
    assert r.status_code == 200, r.text
    body = r.json()
    # two cars need 6 A each at least: one of them waits at 0 A
    assert len(body["paused_sessions"]) == 1
    limits = [site.limit(c) for c in PANEL_A]
    assert sum(limits) <= 8 + 1e-6 and min(limits) == 0 and max(limits) >= 6
    paused = await get(site, f"/api/sessions/{body['paused_sessions'][0]}")
    assert paused["paused"] and paused["limit_a"] == 0


async def test_a_limit_for_a_window_applies_only_then(site: Site) -> None:
    start = site.now() + timedelta(minutes=30)  # 17:37:31, in the 17:30 slot
    end = start + timedelta(minutes=30)
    request = {"limit_a": 10, "start": start.isoformat(), "end": end.isoformat()}
    r = await site.client.put("/api/groups/grid/limit", json=request, headers=WRITE)
    assert r.status_code == 200, r.text
    override = r.json()["group"]["override"]
    assert override["active_now"] is False and r.json()["group"]["capacity_a"] == 140
    assert datetime.fromisoformat(override["start"]) == start
    # now the stations keep their limits; the profiles already step down in the window
    assert site.panel_a() == pytest.approx(64)

    def total(at: datetime) -> float:
        return sum(site.stations.limit(f"CP{i}/1", at) for i in (1, 2, 3))

    assert total(start - timedelta(minutes=10)) > 10
    assert total(start) <= 10 + 1e-6 and total(end - timedelta(seconds=1)) <= 10 + 1e-6
    timeline = await get(site, "/api/groups/grid/timeline", hours=1)
    ahead = {
        datetime.fromisoformat(p["at"]): p["capacity_a"]
        for p in timeline["points"]
        if p["planned_a"] is not None
    }
    slot = start.replace(minute=30, second=0)
    assert ahead[slot - timedelta(minutes=15)] == 140
    assert [ahead[slot + timedelta(minutes=15 * k)] for k in range(3)] == [10, 10, 10]
    assert ahead[slot + timedelta(minutes=45)] == 140


async def test_a_session_patch_changes_the_plan(site: Site) -> None:
    r = await site.client.patch("/api/sessions/1", json={"energy_need_kwh": 0.5}, headers=WRITE)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["session"]["energy_need_kwh"] == pytest.approx(0.5, abs=0.01)
    assert not body["session"]["energy_need_estimated"]
    plan = await get(site, "/api/plan")
    [s1] = [s for s in plan["sessions"] if s["session_id"] == "1"]
    assert s1["requested_kwh"] == pytest.approx(0.5, abs=0.01)

    departure = (site.now() + timedelta(hours=1)).isoformat()
    r = await site.client.patch(
        "/api/sessions/2", json={"priority": 5, "departure": departure}, headers=WRITE
    )
    assert r.status_code == 200, r.text
    s2 = r.json()["session"]
    assert s2["priority"] == 5
    assert datetime.fromisoformat(s2["departure"]) == datetime.fromisoformat(departure)
    assert not s2["departure_estimated"]
    assert site.svc.store is not None
    stored = site.svc.store.session_by_id("2")
    assert stored is not None and stored.priority == 5
    events = (await get(site, "/api/events", limit=20))["events"]
    assert [e["subject"] for e in events if e["kind"] == "session_changed"][:2] == ["2", "1"]

    too_early = (site.now() - timedelta(days=1)).isoformat()
    r = await site.client.patch("/api/sessions/1", json={"departure": too_early}, headers=WRITE)
    assert r.status_code == 409


async def test_station_commands_reach_the_stations(site: Site) -> None:
    st = site.stations

    async def command(station: str, body: dict[str, Any]) -> dict[str, Any]:
        r = await site.client.post(f"/api/stations/{station}/commands", json=body, headers=WRITE)
        assert r.status_code == 200, r.text
        out: dict[str, Any] = r.json()
        return out

    out = await command("CP1", {"command": "trigger_meter_values", "connector": 1})
    assert out["outcome"] == "accepted" and out["plan"]["reason"] == "station command"
    assert st.commands[-1] == ("CP1", "trigger_message", ("MeterValues", 1))

    out = await command("CP2", {"command": "remote_stop", "connector": 1})
    assert out["outcome"] == "accepted"
    assert st.commands[-1] == ("CP2", "remote_stop", ("2",))
    await site.settle()
    assert (await get(site, "/api/status"))["sessions_active"] == 2
    ended = await get(site, "/api/sessions/2")
    assert ended["active"] is False and ended["ended_at"] is not None
    r = await site.client.patch("/api/sessions/2", json={"priority": 2}, headers=WRITE)
    assert r.status_code == 409  # it has ended

    out = await command("CP4", {"command": "remote_start", "connector": 1, "id_tag": "guest"})
    assert out["outcome"] == "accepted"
    await site.settle()
    active = await get(site, "/api/sessions", state="active")
    assert any(s["connector_id"] == "CP4/1" and s["id_tag"] == "guest" for s in active)

    out = await command("CP3", {"command": "availability", "connector": 0, "operative": False})
    assert out["outcome"] == "accepted" and "CP3/0" in st.unavailable
    out = await command("CP3", {"command": "reset", "kind": "hard"})
    assert st.commands[-1] == ("CP3", "reset", (True,))
    # nothing to stop on an idle connector: the answer says so
    out = await command("CP2", {"command": "remote_stop", "connector": 1})
    assert out["outcome"] == "rejected"

    events = (await get(site, "/api/events", limit=50))["events"]
    commands = [e for e in events if e["kind"] == "station_command"]
    assert len(commands) == 6 and all(e["actor"] == "alice" for e in commands)


async def test_unknown_ids_and_missing_tokens(site: Site) -> None:
    c = site.client
    assert (await c.get("/api/stations/CP9")).status_code == 404
    assert (await c.get("/api/sessions/nope")).status_code == 404
    assert (await c.get("/api/groups/nope/timeline")).status_code == 404
    assert (
        await c.put("/api/groups/nope/limit", json={"limit_a": 5}, headers=WRITE)
    ).status_code == 404
    assert (await c.delete("/api/groups/nope/limit", headers=WRITE)).status_code == 404
    assert (
        await c.patch("/api/sessions/nope", json={"priority": 2}, headers=WRITE)
    ).status_code == 404
    cmd = {"command": "reset", "kind": "soft"}
    assert (await c.post("/api/stations/CP9/commands", json=cmd, headers=WRITE)).status_code == 404
    bad_connector = {"command": "remote_stop", "connector": 7}
    r = await c.post("/api/stations/CP1/commands", json=bad_connector, headers=WRITE)
    assert r.status_code == 404
    # writes need a write token
    assert (await c.put("/api/groups/grid/limit", json={"limit_a": 5})).status_code == 401
    r = await c.put("/api/groups/grid/limit", json={"limit_a": 5}, headers=READ)
    assert r.status_code == 403
    assert (await c.post("/api/stations/CP1/commands", json=cmd)).status_code == 401
    r = await c.put("/api/groups/grid/limit", json={"limit_a": -1}, headers=WRITE)
    assert r.status_code == 422
    ctl = site.svc.controller
    assert ctl is not None and not ctl.overrides.by_group


async def test_metrics_count_replans_and_profiles(site: Site) -> None:
    await site.client.put("/api/groups/panel-a/limit", json={"limit_a": 30}, headers=WRITE)
    r = await site.client.get("/metrics")
    assert r.status_code == 200
    values = parse_metrics(r.text)
    assert values['gridshare_replans_total{reason="operator limit"}'] >= 1
    assert values["gridshare_replan_seconds_count"] >= 3
    assert sum(v for k, v in values.items() if k.startswith("gridshare_solver_status_total")) >= 3
    assert values['gridshare_profiles_total{outcome="sent"}'] >= 4
    assert values['gridshare_profiles_total{outcome="accepted"}'] >= 4
    assert values["gridshare_stations_connected"] == 4
    assert values["gridshare_sessions_active"] == 3
    assert values['gridshare_group_capacity_amperes{group="panel-a"}'] == 30
    assert values['gridshare_group_planned_amperes{group="panel-a",line="L1"}'] <= 30


def parse_metrics(text: str) -> dict[str, float]:
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            out[name] = float(value)
    return out


async def test_changes_follow_limits_plans_and_meter_values(site: Site) -> None:
    backend = site.svc.operator
    assert backend is not None
    seen: list[ChangeKind] = []
    changes = backend.changes()

    async def collect() -> None:
        async for change in changes:
            seen.append(change.kind)

    task = asyncio.create_task(collect())
    await asyncio.sleep(0)
    await site.client.put("/api/groups/panel-a/limit", json={"limit_a": 30}, headers=WRITE)
    await site.tick(30)
    backend.close()  # the service shutting down ends every stream
    await asyncio.wait_for(task, 5)
    assert {ChangeKind.LIMIT, ChangeKind.PLAN, ChangeKind.MEASUREMENT} <= set(seen)


async def test_an_override_survives_a_restart(tmp_path: Path) -> None:
    cfg = site_config(tmp_path)
    sim = [NOW]
    holder: list[LocalStations] = []
    svc = await start_service(cfg, sim, holder)
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{svc.http_port}") as c:
            r = await c.put("/api/groups/panel-b/limit", json={"limit_kw": 11}, headers=WRITE)
            assert r.status_code == 200, r.text
    finally:
        await svc.stop()
    svc = await start_service(cfg, sim, holder)
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{svc.http_port}") as c:
            groups = (await c.get("/api/groups")).json()["groups"]
        [panel_b] = [g for g in groups if g["id"] == "panel-b"]
        assert panel_b["override"]["limit_kw"] == 11 and panel_b["capacity_kw"] == 11
        assert panel_b["override"]["set_by"] == "alice"
    finally:
        await svc.stop()


async def test_a_lost_stations_last_reading_is_not_shown_as_now(site: Site) -> None:
    from ocpp_adapter.events import StationDisconnected

    groups = {g["id"]: g for g in (await get(site, "/api/groups"))["groups"]}
    assert groups["panel-a"]["measured_a"]["L1"] > 0
    for station in ("CP1", "CP2", "CP3", "CP4"):
        await site.stations.sink(StationDisconnected(station, site.now(), "test"))
    await site.settle()
    groups = {g["id"]: g for g in (await get(site, "/api/groups"))["groups"]}
    assert groups["panel-a"]["measured_a"]["L1"] == 0
    assert groups["panel-a"]["measured_kw"] == 0
