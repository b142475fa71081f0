"""Fixtures for the operator API tests: a planning fake, tokens, clients."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from fastapi import FastAPI

from gridshare.api import MetricsRecorder, create_api
from gridshare.config import ApiConfig
from tests.api.fake_backend import FakeSite

NOW = datetime(2026, 3, 2, 17, 7, tzinfo=UTC)
READ_TOKEN = "read-token-0123456789"
WRITE_TOKEN = "write-token-9876543210"
READ = {"Authorization": f"Bearer {READ_TOKEN}"}
WRITE = {"Authorization": f"Bearer {WRITE_TOKEN}"}


class Clock:
    """A clock the test moves by hand."""

    def __init__(self, now: datetime = NOW) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


def api_config(*, open_reads: bool = True) -> ApiConfig:
    return ApiConfig.model_validate(
        {
            "tokens": [
                {"name": "viewer", "token": READ_TOKEN, "role": "read"},
                {"name": "alice", "token": WRITE_TOKEN, "role": "write"},
            ],
            "open_reads_on_loopback": open_reads,
        }
    )


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def fake(clock: Clock) -> FakeSite:
    site = FakeSite(clock=clock)
    for _ in range(3):
        clock.advance(5)
        site.tick(5)
    return site


@pytest.fixture
def metrics() -> MetricsRecorder:
    return MetricsRecorder()


@pytest.fixture
def app(fake: FakeSite, metrics: MetricsRecorder) -> FastAPI:
    return create_api(fake, api_config(), metrics=metrics)


def client_for(app: FastAPI, host: str = "127.0.0.1") -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, client=(host, 40000))
    return httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1")


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with client_for(app) as c:
        yield c
