"""The service wired together (with an in-memory gateway): HTTP status, store, shutdown."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from gridshare.config import ConfigError, GridshareConfig, database_url, parse_config
from gridshare.service import EventSink, Service
from gridshare.store import UnsupportedDatabase, open_store
from ocpp_adapter.events import (
    ChargingLimitSpec,
    CommandResult,
    MeterReading,
    SessionStarted,
    StationBooted,
    StationConnected,
)
from tests.service.fakes import FakeGateway
from tests.service.sites import NOW


def config(tmp_path: Path, **server: object) -> GridshareConfig:
    data = {
        "site": {"name": "svc", "horizon_hours": 2},
        "groups": [{"id": "grid", "limit_a": 64}],
        "chargers": [
            {"id": f"CP{i}", "group": "grid", "connectors": [{"id": 1, "max_current_a": 32}]}
            for i in (1, 2)
        ],
        "server": {"host": "127.0.0.1", "ocpp_port": 0, "http_port": 0, **server},
        "controller": {"coalesce_s": 0.005},
        "api": {"open_reads_on_loopback": True},  # reads without a token below
    }
    return parse_config(data, "svc.toml", tmp_path / "svc.toml", environ={})


@dataclass
class FakeCentral:
    gw: FakeGateway
    sink: EventSink
    started: bool = False
    stopped: bool = False

    @property
    def port(self) -> int:
        return 0

    async def start(self) -> None:
        self.started = True

    async def stop(self) -> None:
        self.stopped = True

    async def set_limit(self, station_id: str, spec: ChargingLimitSpec) -> CommandResult:
        return await self.gw.set_limit(station_id, spec)

    async def clear_limit(self, station_id: str, connector: int) -> CommandResult:
        return await self.gw.clear_limit(station_id, connector)

    def __getattr__(self, name: str) -> object:
        # station listing and operator commands: the recording gateway's
        return getattr(self.gw, name)


def fake_factory(holder: list[FakeCentral]):
    def make(cfg: GridshareConfig, port: int, host: str, sink: EventSink) -> FakeCentral:
        central = FakeCentral(FakeGateway(cfg.site), sink)
        holder.append(central)
        return central

    return make


async def test_status_over_http_and_a_clean_stop(tmp_path: Path):
    cfg = config(tmp_path)
    made: list[FakeCentral] = []
    svc = Service(cfg, gateway_factory=fake_factory(made), scheduler=False, clock=lambda: NOW)
    await svc.start()
    try:
        central = made[0]
        assert central.started and svc.http_port > 0
        await central.sink(StationConnected("CP1", "ocpp1.6", NOW))
        await central.sink(StationBooted("CP1", "acme", "x", NOW))
        central.gw.start("CP1/1")
        await central.sink(SessionStarted("CP1/1", "tx-1", "tag", 0.0, NOW))
        await central.sink(MeterReading("CP1/1", NOW, current_a={"L1": 10.0}, energy_wh=500))
        assert svc.controller is not None
        await svc.controller.wait_idle()
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{svc.http_port}") as client:
            r = await client.get("/api/status")
        assert r.status_code == 200
        body = r.json()
        assert body["stations"]["connected"] == ["CP1"]
        assert [s["transaction_id"] for s in body["sessions"]] == ["tx-1"]
        assert body["sessions"][0]["energy_kwh"] == 0.5
        assert body["plan"]["status"] in ("optimal", "feasible")
        assert body["service"]["database"].endswith("svc.db")
        grid = body["groups"]["grid"]
        assert grid["capacity_a"] == 64 and max(grid["limits_in_force_a"].values()) <= 64
    finally:
        await svc.stop()
    assert made[0].stopped
    # what was accepted is in the database next to the config
    store = open_store(database_url(cfg))
    try:
        [s] = store.active_sessions()
        assert s.transaction_id == "tx-1" and s.energy_wh == 500
    finally:
        store.close()


def test_database_url_defaults_next_to_the_config(tmp_path: Path):
    cfg = config(tmp_path)
    assert database_url(cfg) == f"sqlite:///{tmp_path / 'svc.db'}"
    assert database_url(cfg, "x.db") == "sqlite:///x.db"
    assert database_url(config(tmp_path, database_url="sqlite:///y.db")) == "sqlite:///y.db"
    with pytest.raises(UnsupportedDatabase):
        open_store("mysql://db/gridshare")


def test_server_settings_come_from_the_environment_and_secrets_stay_hidden(tmp_path: Path):
    data = {
        "site": {"name": "svc"},
        "groups": [{"id": "grid", "limit_a": 64}],
        "server": {"station_passwords": {"CP1": "s3cret-s3cret-s3cret"}},
    }
    cfg = parse_config(data, "x.toml", environ={"GRIDSHARE_SERVER__HTTP_PORT": "8181"})
    assert cfg.server.http_port == 8181
    assert "s3cret" not in repr(cfg.server) and "s3cret" not in str(cfg.model_dump())
    with pytest.raises(ConfigError, match="controller"):
        parse_config({**data, "controller": {"coalesce_s": -1}}, "x.toml", environ={})


def test_the_assumed_battery_tail_is_a_site_default(tmp_path: Path):
    data = {"site": {"name": "svc"}, "groups": [{"id": "grid", "limit_a": 64}]}
    assert parse_config(data, "x.toml", environ={}).defaults.taper_kwh == 3.0
    off = parse_config({**data, "defaults": {"taper_kwh": 0}}, "x.toml", environ={})
    assert off.defaults.taper_kwh == 0.0
    with pytest.raises(ConfigError, match="taper_kwh"):
        parse_config({**data, "defaults": {"taper_kwh": -1}}, "x.toml", environ={})


async def test_a_dso_forecast_over_oscp_lowers_the_limits_in_force(tmp_path: Path):
    from datetime import UTC, datetime, timedelta

    data = {
        "site": {"name": "svc", "horizon_hours": 2},
        "groups": [{"id": "grid", "limit_a": 64, "oscp_group_id": "dso-grid"}],
        "chargers": [
            {"id": f"CP{i}", "group": "grid", "connectors": [{"id": 1, "max_current_a": 32}]}
            for i in (1, 2)
        ],
        "server": {"host": "127.0.0.1", "ocpp_port": 0, "http_port": 0},
        "controller": {"coalesce_s": 0.005, "reserve_for_arrivals": False},
        "api": {"open_reads_on_loopback": True},
        "oscp": {
            "capacity_providers": [
                {
                    "id": "dso",
                    "base_url": "http://127.0.0.1:9/oscp/cp/2.0",
                    "token_to_us": "token-the-dso-presents-1",
                    "token_to_them": "token-we-present-to-dso-1",
                    "heartbeat_interval_s": 3600,
                }
            ]
        },
    }
    cfg = parse_config(data, "svc.toml", tmp_path / "svc.toml", environ={})
    made: list[FakeCentral] = []
    svc = Service(cfg, gateway_factory=fake_factory(made), scheduler=False)
    await svc.start()
    try:
        central = made[0]
        now = datetime.now(UTC)
        for sid in ("CP1", "CP2"):
            await central.sink(StationConnected(sid, "ocpp1.6", now))
            await central.sink(StationBooted(sid, "acme", "x", now))
            central.gw.start(f"{sid}/1")
            await central.sink(SessionStarted(f"{sid}/1", f"tx-{sid}", None, 0.0, now))
        assert svc.controller is not None
        await svc.controller.wait_idle()
        before = {cid: s.at(now) for cid, s in central.gw.tx.items()}
        assert sum(before.values()) == 64
        body = {
            "group_id": "dso-grid",
            "type": "CONSUMPTION",
            "forecasted_blocks": [
                {
                    "capacity": 20,
                    "phase": "ALL",
                    "unit": "A",
                    "start_time": (now - timedelta(minutes=1)).isoformat(),
                    "end_time": (now + timedelta(hours=1)).isoformat(),
                }
            ],
        }
        headers = {"Authorization": "Token token-the-dso-presents-1", "X-Request-ID": "r1"}
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{svc.http_port}") as client:
            r = await client.post(
                "/oscp/fp/2.0/update_group_capacity_forecast", json=body, headers=headers
            )
            assert r.status_code == 204, r.text
            bad = await client.post(
                "/oscp/fp/2.0/update_group_capacity_forecast",
                json=body,
                headers={**headers, "Authorization": "Token wrong"},
            )
            assert bad.status_code == 403
        for _ in range(100):
            await svc.controller.wait_idle()
            if not svc.controller.busy():
                break
            await asyncio.sleep(0.02)
        after = {cid: s.at(datetime.now(UTC)) for cid, s in central.gw.tx.items()}
        assert sum(after.values()) <= 20
        assert svc.store is not None and svc.store.get_state("capacity_book")
        # the operator sees the forecast, the capacity it makes, and the DSO's messages
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{svc.http_port}") as client:
            [forecast] = (await client.get("/api/forecasts")).json()
            [grid] = (await client.get("/api/groups")).json()["groups"]
            dso = (await client.get("/api/status")).json()["dso"]
            metrics = (await client.get("/metrics")).text
        assert forecast["group_id"] == "grid" and forecast["source"] == "oscp:dso"
        assert forecast["kind"] == "capacity" and forecast["points"][0]["limit_a"] == 20
        assert grid["dso_forecast"]["limit_a"] == 20 and grid["capacity_a"] == 20
        assert dso["configured"] and not dso["fallback_active"]
        assert (
            'gridshare_oscp_messages_total{direction="in",type="UpdateGroupCapacityForecast"} 1.0'
            in metrics
        )
        assert 'gridshare_dso_online{provider="dso"}' in metrics
    finally:
        await svc.stop()


async def test_the_scheduler_replans_periodically_and_stops_cleanly(tmp_path: Path):
    cfg = config(tmp_path)
    cfg = cfg.model_copy(
        update={"controller": cfg.controller.model_copy(update={"replan_interval_s": 0.1})}
    )
    made: list[FakeCentral] = []
    svc = Service(cfg, gateway_factory=fake_factory(made), clock=lambda: NOW)
    await svc.start()
    try:
        assert svc.controller is not None
        first = svc.controller.plans
        for _ in range(100):
            if svc.controller.plans >= first + 2:
                break
            await asyncio.sleep(0.05)
        assert svc.controller.plans >= first + 2
    finally:
        await svc.stop()


def test_serve_reports_a_bad_config(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    from gridshare.commands import serve

    assert serve.main(["--config", str(tmp_path / "missing.toml")]) == 2
    assert "no such file" in capsys.readouterr().err


def test_database_urls_are_logged_without_their_password():
    from gridshare.service import redact_url

    assert redact_url("postgresql://gs:s3cret@db:5432/gridshare") == (
        "postgresql://gs:***@db:5432/gridshare"
    )
    assert redact_url("sqlite:////var/lib/g.db?synchronous=FULL") == "sqlite:////var/lib/g.db"
