"""/metrics (prometheus text) and the dashboard's static files."""

from __future__ import annotations

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from gridshare.api import MetricsRecorder, create_api
from gridshare.api.app import WEB_DIR
from gridshare.api.schemas import StatusConflict, StatusOut
from tests.api.conftest import WRITE, api_config, client_for
from tests.api.fake_backend import FakeSite


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


async def test_metrics_reflect_the_site_and_the_service(
    client: httpx.AsyncClient, metrics: MetricsRecorder
) -> None:
    metrics.record_replan(seconds=0.03, status="optimal", reason="meter values")
    metrics.record_replan(seconds=0.4, status="heuristic", reason="slot")
    for outcome in ("sent", "sent", "accepted", "rejected", "timeout"):
        metrics.record_profile(outcome)
    metrics.record_oscp_message("in", "UpdateGroupCapacityForecast")
    metrics.record_oscp_message("out", "Heartbeat")
    metrics.record_oscp_message("out", "Heartbeat")
    metrics.set_dso_online("dso-1", True)
    await client.put("/api/groups/panel-a/limit", json={"limit_a": 45}, headers=WRITE)

    r = await client.get("/metrics")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/plain")
    got = samples(r.text)
    assert got[("gridshare_stations_connected", ())] == 5
    assert got[("gridshare_stations_known", ())] == 5
    assert got[("gridshare_sessions_active", ())] == 5
    assert got[("gridshare_replans_total", (("reason", "meter values"),))] == 1
    assert got[("gridshare_replan_seconds_count", ())] == 2
    assert got[("gridshare_replan_seconds_bucket", (("le", "0.05"),))] == 1
    assert got[("gridshare_solver_status_total", (("status", "heuristic"),))] == 1
    assert got[("gridshare_profiles_total", (("outcome", "sent"),))] == 2
    assert got[("gridshare_profiles_total", (("outcome", "accepted"),))] == 1
    assert got[("gridshare_profiles_total", (("outcome", "rejected"),))] == 1
    assert got[("gridshare_profiles_total", (("outcome", "timeout"),))] == 1
    assert got[("gridshare_profiles_total", (("outcome", "not_connected"),))] == 0
    assert (
        got[("gridshare_oscp_messages_total", (("direction", "out"), ("type", "Heartbeat")))] == 2
    )
    assert got[("gridshare_dso_online", (("provider", "dso-1"),))] == 1
    assert got[("gridshare_group_capacity_amperes", (("group", "panel-a"),))] == 45
    assert got[("gridshare_group_capacity_kilowatts", (("group", "grid"),))] == 80
    assert ("gridshare_group_capacity_kilowatts", (("group", "panel-a"),)) not in got
    planned = got[("gridshare_group_planned_amperes", (("group", "panel-a"), ("line", "L1")))]
    assert planned == pytest.approx(45, abs=0.01)
    measured = got[("gridshare_group_measured_amperes", (("group", "panel-b"), ("line", "L1")))]
    assert measured > 0


def test_recorders_keep_separate_figures() -> None:
    a, b = MetricsRecorder(), MetricsRecorder()
    a.record_profile("sent")
    assert b'gridshare_profiles_total{outcome="sent"} 1.0' in a.render()
    assert b'gridshare_profiles_total{outcome="sent"} 0.0' in b.render()


def test_oscp_direction_is_checked() -> None:
    with pytest.raises(ValueError, match="direction"):
        MetricsRecorder().record_oscp_message("sideways", "Heartbeat")


async def test_dashboard_and_its_assets_are_served(client: httpx.AsyncClient) -> None:
    page = await client.get("/")
    assert page.status_code == 200
    html = page.text
    for asset in (
        "/static/dashboard.js",
        "/static/dashboard.css",
        "/static/vendor/uplot/uPlot.iife.min.js",
        "/static/vendor/uplot/uPlot.min.css",
    ):
        assert asset in html
        r = await client.get(asset)
        assert r.status_code == 200, asset
    assert "http://" not in html and "https://" not in html
    licence = await client.get("/static/vendor/uplot/LICENSE")
    assert "MIT License" in licence.text
    assert (await client.get("/static/missing.js")).status_code == 404


def test_nothing_in_the_dashboard_loads_from_the_internet() -> None:
    for name in ("index.html", "dashboard.js", "dashboard.css"):
        text = (WEB_DIR / name).read_text()
        assert "://" not in text, name


async def test_other_routers_are_served_alongside(fake: FakeSite) -> None:
    from fastapi import APIRouter

    oscp = APIRouter(prefix="/oscp/fp/2.0")

    @oscp.post("/heartbeat", status_code=204)
    async def heartbeat() -> None:
        return None

    app = create_api(fake, api_config(), routers=[oscp])
    async with client_for(app) as c:
        assert (await c.post("/oscp/fp/2.0/heartbeat")).status_code == 204
        assert (await c.get("/api/status")).status_code == 200


def _status(*kinds: str) -> StatusOut:
    conflicts = [
        StatusConflict.model_construct(kind=k, transaction_id=str(n)) for n, k in enumerate(kinds)
    ]
    return StatusOut.model_construct(
        stations_connected=0, stations_known=0, sessions_active=0, conflicts=conflicts
    )


def test_the_conflicts_gauge_counts_sessions_isolated_now_only() -> None:
    """Refused and superseded sessions are events: counted, never a gauge that stays up."""
    m = MetricsRecorder()
    m.observe_status(_status("isolated", "refused", "superseded", "refused"))
    m.record_conflicts({"refused": 2, "superseded": 1})
    got = samples(m.render().decode())
    assert got[("gridshare_session_conflicts", ())] == 1
    assert got[("gridshare_sessions_refused_total", ())] == 2
    assert got[("gridshare_sessions_superseded_total", ())] == 1

    m.observe_status(_status("refused", "superseded", "refused"))  # the isolation resolved
    m.record_conflicts({"refused": 3, "superseded": 1})
    got = samples(m.render().decode())
    assert got[("gridshare_session_conflicts", ())] == 0
    assert got[("gridshare_sessions_refused_total", ())] == 3
    assert got[("gridshare_sessions_superseded_total", ())] == 1
