"""A 2.1 station cut off from the central system for longer than its profile's
``maxOfflineDuration`` drops that profile for its TxDefault. When it comes
back, its running transaction gets its profile again at once, whether the
central system saw the connection go (a close) or not (a dead link that only
the station's new connection replaces), on Dynamic and Absolute profiles."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest

from gridshare.config import GridshareConfig, parse_config
from gridshare.peers.ev import EvSpec
from gridshare.peers.fleet import StationFleet
from gridshare.peers.specs import specs_from_site
from gridshare.service import Service, controller_settings, ocpp_server_settings
from ocpp_adapter import AdapterSettings, CentralSystem
from tests.e2e.test_live_site import eventually

pytestmark = pytest.mark.slow

CAR = "CP1/1"
FALLBACK_A = 10.0
OFFLINE_S = 2
"""``maxOfflineDuration`` of the profiles (the station's own clock is the wall's)."""


def _config(tmp_path: Path) -> GridshareConfig:
    data = {
        "site": {"name": "reconnect", "slot_minutes": 15, "horizon_hours": 2},
        "groups": [{"id": "grid", "limit_a": 40, "fallback_limit_a": FALLBACK_A}],
        "chargers": [
            {"id": "CP1", "group": "grid", "connectors": [{"id": 1, "max_current_a": 32}]}
        ],
        "server": {"host": "127.0.0.1", "ocpp_port": 0, "http_port": 0, "meter_interval_s": 1},
        "controller": {"coalesce_s": 0.02, "pin_s": 5},
    }
    return parse_config(data, "site.toml", tmp_path / "site.toml", environ={})


@pytest.mark.parametrize(
    ("silent", "dynamic"),
    [(True, True), (True, False), (False, True)],
    ids=["dead-link-dynamic", "dead-link-absolute", "closed-dynamic"],
)
async def test_profile_sent_again_after_an_offline_fallback(
    tmp_path: Path, silent: bool, dynamic: bool
) -> None:
    cfg = _config(tmp_path)
    adapter = AdapterSettings(
        meter_interval_s=1,
        offline_profile_s=OFFLINE_S,
        dyn_update_interval_s=1,
        dynamic_profiles=dynamic,
        randomized_delay_s=0,
    )

    def gateway(config: GridshareConfig, port: int, host: str, sink: Any) -> CentralSystem:
        return CentralSystem(ocpp_server_settings(config, port, host), sink, settings=adapter)

    # what the car takes is not learned here: its limit stays the plan's
    settings = dataclasses.replace(controller_settings(cfg), learn_settle_s=3600.0)
    db = str(tmp_path / "site.db")
    svc = Service(cfg, db=db, scheduler=False, settings=settings, gateway_factory=gateway)
    await svc.start()
    specs = specs_from_site(cfg.site, version="2.1", meter_interval_s=1)
    fleet = StationFleet(f"ws://127.0.0.1:{svc.ocpp_port}/ocpp", specs)
    frames: list[str] = []
    fleet.frame_taps.append(lambda sid, way, raw: frames.append(f"{way} {raw!s}"))
    await fleet.start()
    try:
        assert await fleet.wait_booted(10) == 1
        await eventually(lambda: fleet.limit_in_force(CAR) <= FALLBACK_A + 1e-6, timeout_s=10)
        fleet.plug_in(CAR, EvSpec(battery_kwh=80, soc_start=0.1, lag_s=0.3))
        await eventually(lambda: fleet.limit_in_force(CAR) > FALLBACK_A + 1, timeout_s=15)
        planned = fleet.limit_in_force(CAR)
        kind = "Dynamic" if dynamic else "Absolute"
        assert any(f'"chargingProfileKind":"{kind}"' in f for f in frames if f.startswith("in"))

        station = fleet.station("CP1")
        station.cut_off(OFFLINE_S + 2.0, silent=silent)
        # offline longer than maxOfflineDuration: the station is on its TxDefault
        await eventually(lambda: fleet.limit_in_force(CAR) <= FALLBACK_A + 1e-6, OFFLINE_S + 2)
        assert not station.booted
        await eventually(lambda: station.booted, timeout_s=10)
        # back: the transaction's profile is sent again, without waiting for a re-plan
        # that would change it
        await eventually(lambda: fleet.limit_in_force(CAR) >= planned - 1e-6, timeout_s=10)
    finally:
        await fleet.stop()
        await svc.stop()
