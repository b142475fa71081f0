"""Who the HTTP port answers: the Host it is asked for, proxies, anonymous reads, headers.

A web page in a browser on the site's machine can name its own domain's
address 127.0.0.1 (DNS rebinding) and read what the service answers as if it
were same-origin; only the Host header still says which name was asked for.
The tests run the app in process (any client address) and the real service
on a loopback port.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from gridshare.api import create_api
from gridshare.api.auth import in_networks
from gridshare.api.security import SECURITY_HEADERS, host_name
from gridshare.config import ApiConfig, GridshareConfig, parse_config
from gridshare.http_server import http_allowed_hosts, http_server_config
from gridshare.service import Service
from tests.api.conftest import READ, READ_TOKEN, WRITE, WRITE_TOKEN, api_config, client_for
from tests.api.fake_backend import FakeSite
from tests.service.test_service import FakeCentral, fake_factory

READS = ["/api/status", "/api/live", "/metrics", "/api/sessions"]


# --- Host -------------------------------------------------------------------------------


@pytest.mark.parametrize("path", [*READS, "/", "/static/dashboard.js", "/api/openapi.json"])
async def test_another_host_is_refused(fake: FakeSite, path: str) -> None:
    app = create_api(fake, api_config(open_reads=True))
    async with client_for(app) as c:
        for headers in ({"Host": "evil.example"}, {"Host": "evil.example:8080", **READ}):
            r = await c.get(path, headers=headers)
            assert r.status_code == 400, r.text
            assert r.json() == {"detail": "invalid Host header"}


async def test_another_host_cannot_write(fake: FakeSite) -> None:
    app = create_api(fake, api_config())
    async with client_for(app) as c:
        r = await c.put(
            "/api/groups/grid/limit",
            json={"limit_a": 50},
            headers={"Host": "evil.example", **WRITE},
        )
        assert r.status_code == 400
    assert fake.plan_count == 1 and fake.audit == []


@pytest.mark.parametrize(
    "host", ["localhost", "localhost:8080", "127.0.0.1:8080", "[::1]:8080", "LOCALHOST.", "[::1]"]
)
async def test_loopback_names_are_answered(fake: FakeSite, host: str) -> None:
    app = create_api(fake, api_config())
    async with client_for(app) as c:
        assert (await c.get("/api/status", headers={"Host": host, **READ})).status_code == 200


async def test_configured_names_and_patterns(fake: FakeSite) -> None:
    app = create_api(fake, api_config(), allowed_hosts=["site.example", "*.depot.example"])
    async with client_for(app) as c:
        for host, status in [
            ("site.example", 200),
            ("SITE.example:443", 200),
            ("ops.depot.example", 200),
            ("depot.example", 400),
            ("localhost", 400),
            ("evil.example", 400),
            ("site.example.evil.example", 400),
        ]:
            r = await c.get("/api/status", headers={"Host": host, **READ})
            assert r.status_code == status, host


@pytest.mark.parametrize(
    ("header", "name"),
    [
        ("localhost:8080", "localhost"),
        ("Example.COM.", "example.com"),
        ("[::1]:8080", "::1"),
        ("[::1]", "::1"),
        ("127.0.0.1", "127.0.0.1"),
        ("[::1]x", "[::1]x"),
        ("host:port", "host:port"),
        ("::1", "::1"),
    ],
)
def test_host_name(header: str, name: str) -> None:
    assert host_name(header) == name


def site(tmp_path: Path, server: dict[str, Any] | None = None, **api: Any) -> GridshareConfig:
    data = {
        "site": {"name": "sec", "horizon_hours": 2},
        "groups": [{"id": "grid", "limit_a": 64}],
        "chargers": [
            {"id": "CP1", "group": "grid", "connectors": [{"id": 1, "max_current_a": 32}]}
        ],
        "server": {"host": "127.0.0.1", "ocpp_port": 0, "http_port": 0, **(server or {})},
        "api": {
            "tokens": [
                {"name": "viewer", "token": READ_TOKEN, "role": "read"},
                {"name": "alice", "token": WRITE_TOKEN, "role": "write"},
            ],
            **api,
        },
    }
    return parse_config(data, "sec.toml", tmp_path / "sec.toml", environ={})


def test_default_names_are_loopback_the_bind_address_and_the_advertised_one(
    tmp_path: Path,
) -> None:
    cfg = site(tmp_path, {"host": "10.1.2.3"})
    assert http_allowed_hosts(cfg, "10.1.2.3") == ["localhost", "127.0.0.1", "::1", "10.1.2.3"]
    assert http_allowed_hosts(cfg, "0.0.0.0") == ["localhost", "127.0.0.1", "::1"]
    advertised = cfg.model_copy(
        update={"oscp": cfg.oscp.model_copy(update={"base_url": "https://fp.example:8443/oscp"})}
    )
    assert http_allowed_hosts(advertised, "127.0.0.1")[-1] == "fp.example"
    chosen = site(tmp_path, {"allowed_hosts": ["ops.example"]})
    assert http_allowed_hosts(chosen, "127.0.0.1") == ["ops.example"]
    env = {"GRIDSHARE_SERVER__ALLOWED_HOSTS": "a.example, b.example"}
    data = {"site": {"name": "e"}, "groups": [{"id": "grid", "limit_a": 16}], "chargers": []}
    from_env = parse_config(data, environ=env)
    assert from_env.server.allowed_hosts == ["a.example", "b.example"]


@asynccontextmanager
async def serving(cfg: GridshareConfig) -> AsyncIterator[tuple[Service, httpx.AsyncClient]]:
    made: list[FakeCentral] = []
    svc = Service(cfg, gateway_factory=fake_factory(made), scheduler=False)
    await svc.start()
    try:
        async with httpx.AsyncClient(base_url=svc.http_url, timeout=10) as c:
            yield svc, c
    finally:
        await svc.stop()


async def test_the_service_refuses_another_host(tmp_path: Path) -> None:
    async with serving(site(tmp_path, open_reads_on_loopback=True)) as (svc, c):
        for path in ("/api/status", "/metrics"):
            assert (await c.get(path)).status_code == 200
            r = await c.get(path, headers={"Host": f"evil.example:{svc.http_port}"})
            assert r.status_code == 400
            assert r.json() == {"detail": "invalid Host header"}
        async with c.stream("GET", "/api/live", headers={"Host": "evil.example"}) as r:
            assert r.status_code == 400


# --- anonymous reads and proxies --------------------------------------------------------


async def test_anonymous_reads_are_off_by_default(fake: FakeSite) -> None:
    config = ApiConfig.model_validate({"tokens": [{"name": "v", "token": READ_TOKEN}]})
    assert config.open_reads_on_loopback is False
    app = create_api(fake, config)
    async with client_for(app) as c:
        for path in READS:
            assert (await c.get(path)).status_code == 401, path
        assert (await c.get("/api/status", headers=READ)).status_code == 200


async def test_the_service_reads_need_a_token_by_default_and_says_so(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="gridshare.service")
    async with serving(site(tmp_path)) as (_, c):
        assert (await c.get("/api/status")).status_code == 401
        assert (await c.get("/api/status", headers=READ)).status_code == 200
    said = [r for r in caplog.records if "operator API" in r.getMessage()]
    assert [(r.levelname, r.getMessage()) for r in said] == [
        ("INFO", "operator API: every read needs a token")
    ]
    caplog.clear()
    async with serving(site(tmp_path, open_reads_on_loopback=True)) as (_, c):
        assert (await c.get("/api/status")).status_code == 200
    said = [r for r in caplog.records if "operator API" in r.getMessage()]
    assert [r.levelname for r in said] == ["WARNING"]
    assert "open_reads_on_loopback" in said[0].getMessage()


async def test_forwarded_for_from_an_unconfigured_proxy_is_not_local(
    tmp_path: Path, fake: FakeSite, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A remote peer that claims to forward for 127.0.0.1 stays remote, even where the
    environment trusts every proxy (uvicorn reads FORWARDED_ALLOW_IPS)."""
    monkeypatch.setenv("FORWARDED_ALLOW_IPS", "*")
    cfg = site(tmp_path, open_reads_on_loopback=True)
    server = http_server_config(create_api(fake, cfg.api), cfg)
    server.load()
    transport = httpx.ASGITransport(app=server.loaded_app, client=("192.0.2.10", 40000))
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as c:
        for xff in ("127.0.0.1", "::1", "192.0.2.10, 127.0.0.1"):
            r = await c.get("/api/status", headers={"X-Forwarded-For": xff})
            assert r.status_code == 401, xff


async def test_forwarded_for_is_ignored_from_a_loopback_peer_not_configured(
    tmp_path: Path,
) -> None:
    async with serving(site(tmp_path, open_reads_on_loopback=True)) as (_, c):
        r = await c.get("/api/status", headers={"X-Forwarded-For": "192.0.2.10"})
        assert r.status_code == 200  # the peer is 127.0.0.1; its header says nothing


async def test_a_configured_proxy_is_never_a_local_reader(tmp_path: Path) -> None:
    cfg = site(tmp_path, {"trusted_proxies": ["127.0.0.1"]}, open_reads_on_loopback=True)
    async with serving(cfg) as (_, c):
        # the proxy said nothing of its client, or named a remote one, or itself
        for headers in ({}, {"X-Forwarded-For": "192.0.2.10"}, {"X-Forwarded-For": "127.0.0.1"}):
            assert (await c.get("/api/status", headers=headers)).status_code == 401, headers
        r = await c.get("/api/status", headers={"X-Forwarded-For": "192.0.2.10", **READ})
        assert r.status_code == 200


# --- security headers -------------------------------------------------------------------


def assert_security_headers(r: httpx.Response) -> None:
    for name, value in SECURITY_HEADERS.items():
        assert r.headers.get(name) == value, (r.request.url, name)
    csp = r.headers["content-security-policy"]
    assert "default-src 'self'" in csp and "frame-ancestors 'none'" in csp
    assert "unsafe-inline" not in csp


async def test_security_headers_on_every_kind_of_answer(client: httpx.AsyncClient) -> None:
    page = await client.get("/")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    assert_security_headers(page)
    assert page.headers["cache-control"] == "no-cache"
    static = await client.get("/static/dashboard.js")
    assert static.status_code == 200
    assert_security_headers(static)
    assert "no-store" not in static.headers.get("cache-control", "")
    for r in (
        await client.get("/api/status"),
        await client.get("/api/plan", headers=READ),
        await client.get("/api/status", headers={"Authorization": "Bearer wrong"}),
        await client.get("/api/sessions/nope"),
        await client.get("/api/nothing-here"),
        await client.put("/api/groups/grid/limit", json={"limit_a": -1}, headers=WRITE),
        await client.get("/api/status", headers={"Host": "evil.example"}),
        await client.get("/metrics"),
    ):
        assert r.status_code in (200, 400, 401, 404, 422)
        assert_security_headers(r)
        assert r.headers["cache-control"] == "no-store", r.request.url


async def test_no_docs_page_that_loads_code_from_elsewhere(client: httpx.AsyncClient) -> None:
    assert (await client.get("/api/docs")).status_code == 404
    assert (await client.get("/api/openapi.json")).status_code == 200
    page = (await client.get("/")).text
    assert "http://" not in page and "https://" not in page


async def test_the_service_sends_the_headers(tmp_path: Path) -> None:
    async with serving(site(tmp_path)) as (_, c):
        for r in (await c.get("/"), await c.get("/api/status", headers=READ)):
            assert r.status_code == 200
            assert_security_headers(r)
        assert "server" not in (await c.get("/api/status")).headers


async def test_the_service_answers_422_to_numbers_json_cannot_carry(tmp_path: Path) -> None:
    async with serving(site(tmp_path)) as (_, c):
        for method, path, body in [
            ("PUT", "/api/groups/grid/limit", b'{"limit_a": NaN}'),
            ("PUT", "/api/groups/grid/limit", b'{"limit_a": 1e400}'),
            ("PUT", "/api/groups/grid/limit", b'{"limit_a": true}'),
            ("PATCH", "/api/sessions/tx-1", b'{"priority": NaN}'),
        ]:
            r = await c.request(
                method, path, content=body, headers={**WRITE, "Content-Type": "application/json"}
            )
            assert r.status_code == 422, (body, r.text)
            assert_security_headers(r)


@pytest.mark.parametrize(
    ("host", "networks", "inside"),
    [
        ("127.0.0.1", ["127.0.0.1"], True),
        ("10.0.0.7", ["10.0.0.0/24"], True),
        ("10.0.1.7", ["10.0.0.0/24"], False),
        ("::1", ["::1"], True),
        ("192.0.2.1", ["*"], True),
        ("192.0.2.1", ["not-an-address"], False),
        ("testclient", ["*"], False),
        (None, ["*"], False),
    ],
)
def test_in_networks(host: str | None, networks: list[str], inside: bool) -> None:
    assert in_networks(host, networks) is inside
