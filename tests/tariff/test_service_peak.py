"""The service with a ``[tariff]``: the chargers' meter values make the peak
so far, shown on /api/tariff and /metrics, kept across a restart, and the
planner is told it (a car is held under it rather than setting a new one)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import httpx

from gridshare.config import GridshareConfig, parse_config
from gridshare.service import Service
from ocpp_adapter.events import MeterReading, SessionStarted, StationBooted, StationConnected
from tests.service.sites import NOW
from tests.service.test_service import FakeCentral, fake_factory


def config(tmp_path: Path) -> GridshareConfig:
    data = {
        "site": {"name": "svc", "horizon_hours": 4, "timezone": "UTC"},
        "groups": [{"id": "grid", "limit_a": 64}],
        "chargers": [
            {
                "id": f"CP{i}",
                "group": "grid",
                "connectors": [{"id": 1, "max_current_a": 32, "phases": ["L1", "L2", "L3"]}],
            }
            for i in (1, 2)
        ],
        "server": {"host": "127.0.0.1", "ocpp_port": 0, "http_port": 0},
        "controller": {"coalesce_s": 0.005},
        "api": {"open_reads_on_loopback": True},
        "tariff": {"peak_price_per_kw": 15.0, "peak_interval_minutes": 15},
    }
    return parse_config(data, "svc.toml", tmp_path / "svc.toml", environ={})


async def test_the_peak_so_far_is_metered_shown_kept_and_planned_with(tmp_path: Path) -> None:
    cfg = config(tmp_path)
    clock = [NOW.replace(minute=0, second=0, microsecond=0)]
    made: list[FakeCentral] = []
    svc = Service(cfg, gateway_factory=fake_factory(made), scheduler=False, clock=lambda: clock[0])
    await svc.start()
    try:
        central = made[0]
        await central.sink(StationConnected("CP1", "ocpp1.6", clock[0]))
        await central.sink(StationBooted("CP1", "acme", "x", clock[0]))
        central.gw.start("CP1/1")
        await central.sink(SessionStarted("CP1/1", "tx-1", "tag", 0.0, clock[0]))
        # 10 A on three lines (6.9 kW) for a whole 15-minute interval, then one more reading
        for s in range(0, 16 * 60, 10):
            at = clock[0] + timedelta(seconds=s)
            amps = {"L1": 10.0, "L2": 10.0, "L3": 10.0}
            await central.sink(MeterReading("CP1/1", at, current_a=amps))
        clock[0] += timedelta(minutes=16)
        assert svc.controller is not None
        await svc.controller.wait_idle()
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{svc.http_port}") as client:
            body = (await client.get("/api/tariff")).json()
            metrics = (await client.get("/metrics")).text
        peak = body["tariff"]["peak_so_far_kw"]
        assert abs(peak - 6.9) < 0.01
        shown = next(
            ln for ln in metrics.splitlines() if ln.startswith("gridshare_peak_so_far_kw ")
        )
        assert abs(float(shown.split()[1]) - peak) < 0.01
        problem, _ = svc.controller.problem(clock[0])
        assert problem.costs is not None and problem.costs.peak is not None
        assert abs(problem.costs.peak.so_far_kw - peak) < 1e-9
    finally:
        await svc.stop()
    again = Service(cfg, gateway_factory=fake_factory([]), scheduler=False, clock=lambda: clock[0])
    await again.start()
    try:
        assert again.costs is not None
        assert abs(again.costs.view(clock[0])["tariff"]["peak_so_far_kw"] - peak) < 1e-9
    finally:
        await again.stop()
