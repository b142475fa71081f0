"""The whole service fed by a 2.1 station's periodic event streams instead of
MeterValues: its EVSE's current per phase, streamed over a real socket, is
stored and reaches the controller's readings and the rate it learns a car takes."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from pathlib import Path

import pytest

from gridshare.config import parse_config
from gridshare.service import Service, controller_settings
from tests.ocpp.helpers import station
from tests.ocpp.test_v21 import V21
from tests.ocpp.test_v21_streams import BASETIME, data, monitor_report, opened

pytestmark = pytest.mark.slow


async def test_streamed_currents_are_what_the_controller_reads(tmp_path: Path) -> None:
    cfg = parse_config(
        {
            "site": {"name": "streams", "slot_minutes": 15, "horizon_hours": 2},
            "groups": [{"id": "grid", "limit_a": 64, "fallback_limit_a": 64}],
            "chargers": [
                {"id": "CP1", "group": "grid", "connectors": [{"id": 1, "max_current_a": 32}]}
            ],
            "server": {"host": "127.0.0.1", "ocpp_port": 0, "http_port": 0},
            "controller": {"coalesce_s": 0.02, "pin_s": 5},
        },
        "site.toml",
        tmp_path / "site.toml",
        environ={},
    )
    settings = dataclasses.replace(controller_settings(cfg), learn_settle_s=0.0)
    svc = Service(cfg, db=str(tmp_path / "site.db"), scheduler=False, settings=settings)
    await svc.start()
    ctl, store, gateway = svc.controller, svc.store, svc.gateway
    assert ctl is not None and store is not None and gateway is not None
    try:
        async with station(gateway, "CP1", V21) as st:  # type: ignore[arg-type]
            st.handlers["GetMonitoringReport"] = lambda p: {"status": "Accepted"}
            await st.boot()
            started = {
                "eventType": "Started",
                "timestamp": BASETIME,
                "triggerReason": "Authorized",
                "seqNo": 0,
                "transactionInfo": {"transactionId": "T-1"},
                "evse": {"id": 1, "connectorId": 1},
                "idToken": {"idToken": "TAG", "type": "ISO14443"},
            }
            await st.call("TransactionEvent", started)
            for stream, monitor in ((1, 11), (2, 12), (3, 13)):
                assert await st.call("OpenPeriodicEventStream", opened(stream, monitor)) == {
                    "status": "Accepted"
                }
            async with asyncio.timeout(5):
                while not st.sent("GetMonitoringReport"):
                    await asyncio.sleep(0.02)
            await st.call("NotifyMonitoringReport", monitor_report({11: "L1", 12: "L2", 13: "L3"}))
            await ctl.wait_idle()
            assert ctl.limit_now("CP1/1", ctl.clock()) == 32  # what the car is offered
            # the car takes 10 A on each line, six samples a stream
            for stream in (1, 2, 3):
                frame = data(stream, *((t, "10.0") for t in range(6)))
                send = [6, f"s-{stream}", "NotifyPeriodicEventStream", frame]
                await st.send_raw(json.dumps(send))
            session = ctl.sessions["CP1/1"]
            async with asyncio.timeout(5):
                while session.rate.rate_a is None:
                    await asyncio.sleep(0.02)
            assert session.drawn_a == 10.0
            assert session.rate.rate_a == 10.0  # the rate learner took the streamed current
            last = store.meter_last("CP1/1")  # stored as MeterValues are
            assert last is not None and last["current_a"] == {"L1": 10.0, "L2": 10.0, "L3": 10.0}
    finally:
        await svc.stop()
