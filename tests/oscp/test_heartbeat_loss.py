"""Heartbeat loss → the DSO's fallback capacity → recovery, over real HTTP."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import numpy as np

from forecasts import Block, ForecastType, Phase, Unit
from optimizer import Site, TimeGrid
from oscp.messages import Message

from .harness import running


def site() -> Site:
    return Site.model_validate(
        {
            "site": {"name": "depot", "slot_minutes": 15, "horizon_hours": 2},
            "groups": [
                {"id": "grid", "limit_a": 250},
                {"id": "trafo", "parent": "grid", "limit_a": 160, "oscp_group_id": "trafo-1"},
            ],
        }
    )


async def test_fallback_while_offline_then_recovery() -> None:
    s = site()
    async with running() as h:
        await h.dso.register()
        now = datetime.now(UTC)
        grid = TimeGrid.covering(now, 15, 2)
        span = (grid.start, grid.end)
        await h.dso.send_forecast(
            "trafo-1", ForecastType.CONSUMPTION, [Block(100, Unit.A, Phase.ALL, *span)]
        )
        await h.dso.send_forecast(
            "trafo-1", ForecastType.FALLBACK_CONSUMPTION, [Block(40, Unit.A, Phase.ALL, *span)]
        )
        await h.dso.heartbeat(offline_in_s=1.0)

        cap = h.book.capacity(s, grid, datetime.now(UTC))
        assert np.all(cap.limit_a["trafo"] == 100)
        assert np.all(cap.limit_a["grid"] == 250)

        # no further heartbeat: the FP notices and the fallback is in force
        for _ in range(500):
            if h.offline:
                break
            await asyncio.sleep(0.01)
        assert h.offline == ["dso"]
        assert h.fp.is_offline("dso")
        cap = h.book.capacity(s, grid, datetime.now(UTC))
        assert np.all(cap.limit_a["trafo"] == 40)
        # the stations' fallback profiles get it too
        fb = h.book.fallback_capacity(s, grid)
        assert np.all(fb.limit_a["trafo"] == 40)

        # a heartbeat again: back to the forecast
        await h.dso.heartbeat(offline_in_s=60)
        assert not h.fp.is_offline("dso")
        cap = h.book.capacity(s, grid, datetime.now(UTC))
        assert np.all(cap.limit_a["trafo"] == 100)


async def test_dso_heartbeat_loop_keeps_it_online() -> None:
    async with running() as h:
        await h.dso.register()
        h.dso.start_heartbeats(0.05, offline_in_s=5.0)
        await asyncio.sleep(0.4)
        await h.dso.stop_heartbeats()
        assert len(h.heartbeats) >= 3
        assert h.offline == []
        assert h.book.next_change(datetime.now(UTC) - timedelta(seconds=1)) is not None
        r = await h.dso.send(Message.HEARTBEAT, {"offline_mode_at": "2026-01-01T00:00:00Z"})
        assert r.status_code == 204
