"""POST /api/groups/{id}/adjust: the operator asks the DSO for a different capacity."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx
import pytest

from tests.api.conftest import NOW, READ, WRITE
from tests.api.fake_backend import FakeSite


def body(**over: Any) -> dict[str, Any]:
    return {
        "capacity": 150,
        "unit": "A",
        "start": (NOW + timedelta(hours=2)).isoformat(),
        "end": (NOW + timedelta(hours=4)).isoformat(),
        **over,
    }


async def test_a_request_reaches_the_dso_and_is_audited(
    client: httpx.AsyncClient, fake: FakeSite
) -> None:
    r = await client.post("/api/groups/grid/adjust", json=body(), headers=WRITE)
    assert r.status_code == 202, r.text
    got = r.json()
    assert got["group_id"] == "grid" and got["oscp_group_id"] == "fake-grid"
    assert got["capacity"] == 150 and got["unit"] == "A" and got["providers"] == 1
    [sent] = fake.adjustments
    assert sent.start == NOW + timedelta(hours=2) and sent.end == NOW + timedelta(hours=4)
    [event] = (await client.get("/api/events")).json()["events"][:1]
    assert event["kind"] == "capacity_adjust_requested"
    assert event["subject"] == "grid" and event["actor"] == "alice"


async def test_start_defaults_to_now_and_kw_is_accepted(
    client: httpx.AsyncClient, fake: FakeSite
) -> None:
    r = await client.post(
        "/api/groups/grid/adjust", json=body(start=None, unit="KW", capacity=90), headers=WRITE
    )
    assert r.status_code == 202, r.text
    assert fake.adjustments[-1].start == fake.clock()
    assert r.json()["unit"] == "KW"


async def test_a_write_token_is_needed(client: httpx.AsyncClient) -> None:
    assert (await client.post("/api/groups/grid/adjust", json=body())).status_code == 401
    r = await client.post("/api/groups/grid/adjust", json=body(), headers=READ)
    assert r.status_code == 403


@pytest.mark.parametrize(
    ("group", "status"),
    [("nope", 404), ("panel-a", 409)],
)
async def test_unknown_groups_and_groups_the_dso_does_not_know(
    client: httpx.AsyncClient, fake: FakeSite, group: str, status: int
) -> None:
    r = await client.post(f"/api/groups/{group}/adjust", json=body(), headers=WRITE)
    assert r.status_code == status
    assert r.json()["detail"]
    assert fake.adjustments == []


async def test_no_dso_configured_is_a_conflict(client: httpx.AsyncClient, fake: FakeSite) -> None:
    fake.dso_limit_a = None
    r = await client.post("/api/groups/grid/adjust", json=body(), headers=WRITE)
    assert r.status_code == 409 and "DSO" in r.json()["detail"]


async def test_a_window_in_the_past_is_a_conflict(client: httpx.AsyncClient) -> None:
    past = body(
        start=(NOW - timedelta(hours=2)).isoformat(), end=(NOW - timedelta(hours=1)).isoformat()
    )
    r = await client.post("/api/groups/grid/adjust", json=past, headers=WRITE)
    assert r.status_code == 409


@pytest.mark.parametrize(
    "bad",
    [
        {"unit": "KWH"},
        {"capacity": -1},
        {"end": (NOW + timedelta(hours=1)).isoformat()},  # before the start
        {"end": "2026-03-02T20:00:00"},  # no offset
        {"phase": "ALL"},  # unknown field
    ],
)
async def test_invalid_bodies_are_422(client: httpx.AsyncClient, bad: dict[str, Any]) -> None:
    r = await client.post("/api/groups/grid/adjust", json=body(**bad), headers=WRITE)
    assert r.status_code == 422, r.text


async def test_the_route_is_in_the_schema(client: httpx.AsyncClient) -> None:
    schema = (await client.get("/api/openapi.json")).json()
    op = schema["paths"]["/api/groups/{group_id}/adjust"]["post"]
    assert {"202", "401", "403", "404", "409", "422"} <= set(op["responses"])
    assert "CapacityAdjustRequest" in schema["components"]["schemas"]
