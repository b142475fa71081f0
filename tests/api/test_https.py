"""HTTPS on the HTTP port: the API, the dashboard and OSCP with a DSO, on loopback.

The certificate is a throwaway self-signed one for localhost / 127.0.0.1
(`tests.certs`); clients trust it as their CA. The simulated DSO trusts it
through ``SSL_CERT_FILE`` (httpx reads it), as a DSO would be given the site's
CA. Stations are the recording fake gateway: OCPP is not what is tested here.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from forecasts.model import ForecastType
from gridshare.config import GridshareConfig, parse_config
from gridshare.http_server import security_warnings
from gridshare.peers.dso import SimulatedDso, step_at
from gridshare.service import Service
from tests.api.conftest import READ, READ_TOKEN, WRITE_TOKEN
from tests.api.test_http_security import assert_security_headers
from tests.certs import server_certificate
from tests.service.test_service import FakeCentral, fake_factory

REGISTRATION_TOKEN = "out-of-band-registration-1"


def site(
    tmp_path: Path, server: dict[str, Any], oscp: dict[str, Any] | None = None
) -> GridshareConfig:
    data = {
        "site": {"name": "tls", "horizon_hours": 2},
        "groups": [{"id": "grid", "limit_a": 64, "oscp_group_id": "dso-grid"}],
        "chargers": [
            {"id": f"CP{i}", "group": "grid", "connectors": [{"id": 1, "max_current_a": 32}]}
            for i in (1, 2)
        ],
        "server": {"host": "127.0.0.1", "ocpp_port": 0, "http_port": 0, **server},
        "controller": {"coalesce_s": 0.005},
        "api": {
            "tokens": [
                {"name": "viewer", "token": READ_TOKEN, "role": "read"},
                {"name": "alice", "token": WRITE_TOKEN, "role": "write"},
            ]
        },
        "oscp": oscp or {},
    }
    return parse_config(data, "tls.toml", tmp_path / "tls.toml", environ={})


@asynccontextmanager
async def serving(
    cfg: GridshareConfig, ca: Path
) -> AsyncIterator[tuple[Service, httpx.AsyncClient]]:
    made: list[FakeCentral] = []
    svc = Service(cfg, gateway_factory=fake_factory(made), scheduler=False)
    await svc.start()
    try:
        trust = ssl.create_default_context(cafile=str(ca))
        async with httpx.AsyncClient(base_url=svc.http_url, verify=trust, timeout=10) as c:
            yield svc, c
    finally:
        await svc.stop()


async def test_the_api_and_the_dashboard_over_https(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    cert, key = server_certificate(tmp_path)
    cfg = site(tmp_path, {"http_tls_cert": str(cert), "http_tls_key": str(key)})
    caplog.set_level(logging.INFO, logger="gridshare.service")
    async with serving(cfg, cert) as (svc, c):
        url = svc.http_url
        assert url == f"https://127.0.0.1:{svc.http_port}"
        page = await c.get("/")
        assert page.status_code == 200 and "text/html" in page.headers["content-type"]
        assert_security_headers(page)
        script = await c.get("/static/dashboard.js")
        assert script.status_code == 200
        assert (await c.get("/api/status")).status_code == 401
        status = await c.get("/api/status", headers=READ)
        assert status.status_code == 200 and status.json()["site"] == "tls"
        async with c.stream("GET", "/api/live", headers=READ) as live:
            assert live.status_code == 200
            async for line in live.aiter_lines():
                if line.startswith("event: snapshot"):
                    break
        # no plain HTTP on the port, and no client that does not trust the site's CA
        async with httpx.AsyncClient(timeout=5) as plain:
            with pytest.raises(httpx.HTTPError):
                await plain.get(f"http://127.0.0.1:{svc.http_port}/api/status", headers=READ)
            with pytest.raises(httpx.ConnectError):
                await plain.get(f"{svc.http_url}/api/status", headers=READ)
    assert any(f"HTTP on {url}," in r.getMessage() for r in caplog.records)


async def test_the_ocpp_certificate_serves_the_http_port_too(tmp_path: Path) -> None:
    cert, key = server_certificate(tmp_path)
    cfg = site(tmp_path, {"tls_cert": str(cert), "tls_key": str(key)})
    assert cfg.server.http_tls() == (cert, key)
    async with serving(cfg, cert) as (svc, c):
        assert svc.http_url.startswith("https://")
        assert (await c.get("/api/status", headers=READ)).status_code == 200


async def test_oscp_with_the_dso_over_https(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The FP registers with the DSO advertising its https URL; the DSO answers and
    sends a forecast over https, and the site plans with it."""
    cert, key = server_certificate(tmp_path)
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))  # the DSO's httpx client trusts the CA
    dso = SimulatedDso(registration_token=REGISTRATION_TOKEN)
    await dso.start()
    try:
        provider = {
            "id": "dso",
            "base_url": dso.base_url,
            "registration_token": REGISTRATION_TOKEN,
            "heartbeat_interval_s": 3600,
        }
        cfg = site(
            tmp_path,
            {"tls_cert": str(cert), "tls_key": str(key)},
            {"capacity_providers": [provider]},
        )
        async with serving(cfg, cert) as (svc, c):
            await asyncio.wait_for(dso.registered.wait(), 10)
            assert dso.fp_url == f"https://127.0.0.1:{svc.http_port}/oscp/fp/2.0"
            now = datetime.now(UTC)
            await dso.send_forecast(
                "dso-grid",
                ForecastType.CONSUMPTION,
                step_at(now - timedelta(minutes=5), before=64, after=20),
            )
            for _ in range(100):
                [grid] = (await c.get("/api/groups", headers=READ)).json()["groups"]
                if grid["capacity_a"] == 20:
                    break
                await asyncio.sleep(0.05)
            assert grid["capacity_a"] == 20
            assert grid["dso_forecast"]["limit_a"] == 20
    finally:
        await dso.stop()


def test_startup_warns_of_secrets_in_clear(tmp_path: Path) -> None:
    cert, key = server_certificate(tmp_path)
    plain = site(tmp_path, {})
    assert [w.split(":")[0] for w in security_warnings(plain, "127.0.0.1")] == [
        "OCPP without TLS (ws",
        "OCPP without station authentication",
    ]
    public = security_warnings(plain, "10.1.2.3")
    assert any(w.startswith("HTTP on 10.1.2.3 without TLS") for w in public)
    everywhere = security_warnings(plain, "0.0.0.0")
    assert any("allowed_hosts" in w for w in everywhere)
    provider = {"id": "dso", "base_url": "https://dso.example/cp", "token_to_them": "t"}
    with_dso = site(tmp_path, {}, {"capacity_providers": [provider]})
    assert any(w.startswith("OSCP:") for w in security_warnings(with_dso, "0.0.0.0"))
    assert not any(w.startswith("OSCP:") for w in security_warnings(with_dso, "10.1.2.3"))
    secured = site(
        tmp_path,
        {
            "tls_cert": str(cert),
            "tls_key": str(key),
            "station_passwords": {"CP1": "s3cret-s3cret-s3cret"},
            "allowed_hosts": ["depot.example"],
        },
    )
    assert security_warnings(secured, "0.0.0.0") == []


async def test_the_warnings_reach_the_log(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="gridshare.service")
    cert, _ = server_certificate(tmp_path)
    async with serving(site(tmp_path, {}), cert):
        pass
    said = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert any(m.startswith("OCPP without TLS") for m in said)
    assert any(m.startswith("OCPP without station authentication") for m in said)
