"""Who may read and who may write."""

from __future__ import annotations

import httpx
import pytest

from gridshare.api import create_api
from gridshare.api.auth import is_loopback
from tests.api.conftest import READ, WRITE, api_config, client_for
from tests.api.fake_backend import FakeSite

WRITES = [
    ("PUT", "/api/groups/grid/limit", {"limit_a": 50}),
    ("DELETE", "/api/groups/grid/limit", None),
    ("PATCH", "/api/sessions/T1", {"priority": 2}),
    ("POST", "/api/stations/CP01/commands", {"command": "reset"}),
]
READS = [
    "/api/status",
    "/api/groups",
    "/api/groups/grid/timeline",
    "/api/stations",
    "/api/stations/CP01",
    "/api/sessions",
    "/api/sessions/T1",
    "/api/plan",
    "/api/forecasts",
    "/api/events",
    "/metrics",
]


@pytest.mark.parametrize(("method", "path", "body"), WRITES)
async def test_write_without_token_is_401(
    client: httpx.AsyncClient, fake: FakeSite, method: str, path: str, body: object
) -> None:
    r = await client.request(method, path, json=body)
    assert r.status_code == 401
    assert r.headers["www-authenticate"] == "Bearer"
    assert fake.plan_count == 1 and fake.audit == []


@pytest.mark.parametrize(("method", "path", "body"), WRITES)
async def test_write_with_read_token_is_403(
    client: httpx.AsyncClient, fake: FakeSite, method: str, path: str, body: object
) -> None:
    r = await client.request(method, path, json=body, headers=READ)
    assert r.status_code == 403
    assert r.json() == {"detail": "token 'viewer' may only read"}
    assert fake.plan_count == 1 and fake.audit == []


@pytest.mark.parametrize(
    "header",
    ["Bearer not-a-token", "Bearer ", "Basic dXNlcjpwYXNz", "write-token-9876543210", "Bearer"],
)
async def test_bad_authorization_is_401_for_reads_and_writes(
    client: httpx.AsyncClient, header: str
) -> None:
    r = await client.get("/api/status", headers={"Authorization": header})
    assert r.status_code == 401
    r = await client.put(
        "/api/groups/grid/limit", json={"limit_a": 50}, headers={"Authorization": header}
    )
    assert r.status_code == 401


async def test_auth_comes_before_validation_and_ids(client: httpx.AsyncClient) -> None:
    r = await client.put("/api/groups/nope/limit", json={"limit_a": -5})
    assert r.status_code == 401
    r = await client.put("/api/groups/nope/limit", json={"limit_a": 5}, headers=READ)
    assert r.status_code == 403


@pytest.mark.parametrize("path", READS)
async def test_reads_open_on_loopback(client: httpx.AsyncClient, path: str) -> None:
    assert (await client.get(path)).status_code == 200


@pytest.mark.parametrize("path", READS)
async def test_reads_from_elsewhere_need_a_token(fake: FakeSite, path: str) -> None:
    app = create_api(fake, api_config())
    async with client_for(app, host="192.0.2.10") as c:
        r = await c.get(path)
        assert r.status_code == 401
        assert (await c.get(path, headers=READ)).status_code == 200
        assert (await c.get(path, headers=WRITE)).status_code == 200


async def test_reads_closed_on_loopback_when_configured(fake: FakeSite) -> None:
    app = create_api(fake, api_config(open_reads=False))
    async with client_for(app) as c:
        assert (await c.get("/api/status")).status_code == 401
        assert (await c.get("/api/status", headers=READ)).status_code == 200
        assert (
            await c.get("/api/live", headers={"Accept": "text/event-stream"})
        ).status_code == 401


async def test_dashboard_page_needs_no_token(fake: FakeSite) -> None:
    app = create_api(fake, api_config(open_reads=False))
    async with client_for(app, host="192.0.2.10") as c:
        r = await c.get("/")
        assert r.status_code == 200
        assert "text/html" in r.headers["content-type"]


async def test_tokens_never_appear_in_answers(client: httpx.AsyncClient) -> None:
    r = await client.put("/api/groups/grid/limit", json={"limit_a": 50}, headers=WRITE)
    events = await client.get("/api/events")
    for text in (r.text, events.text):
        assert "write-token" not in text and "read-token" not in text


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.8.9.10", True),
        ("::1", True),
        ("10.0.0.1", False),
        ("testclient", False),
        (None, False),
        ("", False),
    ],
)
def test_loopback_detection(host: str | None, loopback: bool) -> None:
    assert is_loopback(host) is loopback
