"""The capacity book in the running service: what ``/api/groups`` and
``/api/forecasts`` show of the DSO's forecasts, and that the book forgets what
ended while the service runs. Real HTTP on loopback, the simulated DSO, a
clock the test moves."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from forecasts import Block, Forecast, ForecastType, Phase, Unit
from gridshare.operator import CAPACITY_HISTORY
from optimizer.problem import TimeGrid
from tests.api.conftest import READ
from tests.forecasts.helpers import CountingBook
from tests.service.test_oscp_wiring import Clock, running, settle, simulated_dso, site_config


def aligned(clock: Clock, minutes_in: float) -> datetime:
    """Move the clock ``minutes_in`` into a 15-minute slot; that slot's start."""
    start = TimeGrid.covering(clock(), 15, 0.25).start + timedelta(minutes=15)
    clock.now = start + timedelta(minutes=minutes_in)
    return start


def amps(capacity: float, start: datetime, minutes: float) -> Block:
    return Block(capacity, Unit.A, Phase.ALL, start, start + timedelta(minutes=minutes))


async def get(svc: Any, path: str, **params: Any) -> httpx.Response:
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{svc.http_port}") as c:
        r = await c.get(path, params=params, headers=READ)
    assert r.status_code == 200, r.text
    return r


async def test_groups_show_the_slot_now_not_the_next_one(tmp_path: Path) -> None:
    clock = Clock()
    slot = aligned(clock, 7)
    async with (
        simulated_dso() as dso,
        running(site_config(tmp_path, dso.base_url), clock, dso) as (svc, _),
    ):
        blocks = [amps(40, slot, 15), amps(20, slot + timedelta(minutes=15), 15)]
        await dso.send_forecast("dso-grid", ForecastType.CONSUMPTION, blocks)
        await settle(svc)
        grid = (await get(svc, "/api/groups")).json()["groups"][0]
        assert grid["id"] == "grid"
        assert grid["dso_forecast"]["limit_a"] == 40
        assert grid["capacity_a"] == 40  # the planner's slot now, not the lower next one


async def test_overlapping_blocks_show_what_applies(tmp_path: Path) -> None:
    clock = Clock()
    slot = aligned(clock, 7)
    async with (
        simulated_dso() as dso,
        running(site_config(tmp_path, dso.base_url), clock, dso) as (svc, _),
    ):
        wide = amps(300, slot - timedelta(minutes=15), 75)
        await dso.send_forecast("dso-grid", ForecastType.CONSUMPTION, [wide, amps(50, slot, 30)])
        await settle(svc)
        grid = (await get(svc, "/api/groups")).json()["groups"][0]
        assert grid["dso_forecast"]["limit_a"] == 50 and grid["capacity_a"] == 50
        [fc] = (await get(svc, "/api/forecasts")).json()
        points = [
            (datetime.fromisoformat(p["start"]), datetime.fromisoformat(p["end"]), p["limit_a"])
            for p in fc["points"]
        ]
        # now and ahead, one value at a time: the 300 A block only where it applies
        assert points == [
            (slot, slot + timedelta(minutes=30), 50),
            (slot + timedelta(minutes=30), slot + timedelta(minutes=60), 300),
        ]


async def test_forecasts_are_paged_with_the_total_in_a_header(tmp_path: Path) -> None:
    clock = Clock()
    slot = aligned(clock, 1)
    async with (
        simulated_dso() as dso,
        running(site_config(tmp_path, dso.base_url), clock, dso) as (svc, _),
    ):
        blocks = [amps(60 + i % 3, slot + timedelta(minutes=5 * i), 5) for i in range(300)]
        await dso.send_forecast("dso-grid", ForecastType.CONSUMPTION, blocks)
        await dso.send_forecast(
            "dso-panel", ForecastType.FALLBACK_CONSUMPTION, [amps(16, slot, 60)]
        )
        await settle(svc)
        r = await get(svc, "/api/forecasts")
        assert r.headers["X-Total-Count"] == "301"
        whole = r.json()
        assert [(f["group_id"], f["kind"], len(f["points"])) for f in whole] == [
            ("grid", "capacity", 300),
            ("panel", "fallback", 1),
        ]
        r = await get(svc, "/api/forecasts", limit=100, offset=250)
        page = r.json()
        assert r.headers["X-Total-Count"] == "301"
        assert [(f["group_id"], len(f["points"])) for f in page] == [("grid", 50), ("panel", 1)]
        assert page[0]["points"] == whole[0]["points"][250:]
        assert (await get(svc, "/api/forecasts", offset=301)).json() == []
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{svc.http_port}") as c:
            for bad in ({"limit": 0}, {"limit": 5001}, {"offset": -1}):
                r = await c.get("/api/forecasts", params=bad, headers=READ)
                assert r.status_code == 422, bad


async def test_the_book_forgets_what_ended_on_forecasts_and_plans(tmp_path: Path) -> None:
    clock = Clock()
    slot = aligned(clock, 1)
    async with (
        simulated_dso() as dso,
        running(site_config(tmp_path, dso.base_url), clock, dso) as (svc, _),
    ):
        day = [amps(50, slot + timedelta(minutes=15 * i), 15) for i in range(96)]
        await dso.send_forecast("dso-grid", ForecastType.CONSUMPTION, day)
        await settle(svc)
        book, store, ctl = svc.capacity_book, svc.store, svc.controller
        assert store is not None and ctl is not None

        def saved_blocks() -> int:
            saved = store.get_state("capacity_book")
            assert saved is not None
            return sum(len(f["blocks"]) for f in saved["forecasts"])

        assert saved_blocks() == 96
        # a day and the history the timeline shows later: a re-plan forgets all
        clock.advance((timedelta(days=1) + CAPACITY_HISTORY).total_seconds() + 60)
        await ctl.replan_now("test")
        assert book.pieces("dso-grid", ForecastType.CONSUMPTION) == ()
        assert saved_blocks() == 0
        # and a new forecast does so before it is added
        await dso.send_forecast("dso-grid", ForecastType.CONSUMPTION, [amps(40, clock(), 15)])
        await settle(svc)
        clock.advance((CAPACITY_HISTORY + timedelta(minutes=20)).total_seconds())
        await dso.send_forecast("dso-grid", ForecastType.CONSUMPTION, [amps(30, clock(), 15)])
        [piece] = book.pieces("dso-grid", ForecastType.CONSUMPTION)
        assert piece.block.capacity == 30
        assert saved_blocks() == 1


async def test_groups_read_only_what_applies_now_of_a_long_history(tmp_path: Path) -> None:
    clock = Clock()
    slot = aligned(clock, 7)
    book = CountingBook()
    five = timedelta(minutes=5)
    first = slot + timedelta(hours=2) - 100_000 * five
    for k in range(50):  # 100,000 five-minute blocks, up to two hours ahead
        t = first + k * 2000 * five
        blocks = tuple(amps(40 + i % 5, t + i * five, 5) for i in range(2000))
        book.add(Forecast("dso-grid", ForecastType.CONSUMPTION, blocks, t, "dso"))
    cfg = site_config(tmp_path, None)
    async with running(cfg, clock, capacity=book.capacity) as (svc, _):
        svc.capacity_book = book
        book.read = 0
        groups = (await get(svc, "/api/groups")).json()["groups"]
        # the slot's three blocks for the capacity, one for the DSO's value now
        assert book.read == 4
        grid = next(g for g in groups if g["id"] == "grid")
        in_slot = [40 + i % 5 for i in range(100_000) if slot <= first + i * five < slot + 3 * five]
        assert grid["capacity_a"] == min(in_slot)
        now_i = int((clock() - first) / five)
        assert grid["dso_forecast"]["limit_a"] == 40 + now_i % 5


def test_the_timeline_looks_back_no_further_than_the_book_keeps() -> None:
    from gridshare.api import create_api
    from tests.api.conftest import api_config
    from tests.api.fake_backend import FakeSite

    schema = create_api(FakeSite(), api_config()).openapi()
    params = schema["paths"]["/api/groups/{group_id}/timeline"]["get"]["parameters"]
    [hours] = [p for p in params if p["name"] == "hours"]
    assert hours["schema"]["maximum"] == CAPACITY_HISTORY.total_seconds() / 3600
