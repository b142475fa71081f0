"""`gridshare serve --db postgresql://…`: the service keeps its state in PostgreSQL."""

from __future__ import annotations

import logging
from pathlib import Path

import httpx
import pytest

from gridshare.config import database_url
from gridshare.service import Service
from gridshare.store import open_store
from ocpp_adapter.events import MeterReading, SessionStarted, StationBooted, StationConnected
from tests.service.sites import NOW
from tests.service.test_service import FakeCentral, config, fake_factory
from tests.store.engines import fresh_schema


async def test_the_service_on_postgresql_keeps_what_it_accepted(
    tmp_path: Path, postgres_admin: str, caplog: pytest.LogCaptureFixture
):
    with fresh_schema(postgres_admin) as url:
        # trust authentication ignores the password: it is here to be hidden
        url = url.replace("postgresql://postgres@", "postgresql://postgres:s3cret@", 1)
        cfg = config(tmp_path)
        assert database_url(cfg, url) == url
        made: list[FakeCentral] = []
        svc = Service(
            cfg, db=url, gateway_factory=fake_factory(made), scheduler=False, clock=lambda: NOW
        )
        with caplog.at_level(logging.INFO):
            await svc.start()
        try:
            central = made[0]
            await central.sink(StationConnected("CP1", "ocpp1.6", NOW))
            await central.sink(StationBooted("CP1", "acme", "x", NOW))
            central.gw.start("CP1/1")
            await central.sink(SessionStarted("CP1/1", "tx-1", "tag", 0.0, NOW))
            await central.sink(MeterReading("CP1/1", NOW, current_a={"L1": 10.0}, energy_wh=500))
            assert svc.controller is not None
            await svc.controller.wait_idle()
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{svc.http_port}") as client:
                body = (await client.get("/api/status")).json()
            assert [s["transaction_id"] for s in body["sessions"]] == ["tx-1"]
            assert body["service"]["database"].startswith("postgresql://postgres:***@127.0.0.1")
        finally:
            await svc.stop()
        assert "s3cret" not in caplog.text and "postgres:***@" in caplog.text
        store = open_store(url)
        try:
            [s] = store.active_sessions()
            assert s.transaction_id == "tx-1" and s.energy_wh == 500
            assert store.plan_count() >= 1 and store.stations()[0]["vendor"] == "acme"
        finally:
            store.close()
