"""Handling a message must leave no cyclic garbage: the GC keeper freezes whatever
is alive, so garbage that only the cycle collector could free would pile up."""

from __future__ import annotations

import asyncio
import dataclasses
import gc
from collections.abc import Iterator
from typing import Any

import pytest

from ocpp_adapter.rpc import OcppVersion
from tests.ocpp.helpers import FAST, TS, running, station

V16, V201 = OcppVersion.V16, OcppVersion.V201
MESSAGES = 60


@pytest.fixture
def no_automatic_gc() -> Iterator[None]:
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
        gc.enable()


def _sampled(version: OcppVersion, i: int) -> list[dict[str, Any]]:
    if version is V16:
        return [
            {"measurand": "Current.Import", "phase": "L1", "value": "16.0", "unit": "A"},
            {"measurand": "Power.Active.Import", "value": "11.0", "unit": "kW"},
            {"value": str(1000 + i), "unit": "Wh"},
        ]
    return [
        {"measurand": "Current.Import", "phase": "L1", "value": 16.0},
        {"measurand": "Power.Active.Import", "value": 11.0, "unitOfMeasure": {"unit": "kW"}},
        {"value": 1000 + i, "unitOfMeasure": {"unit": "Wh"}},
    ]


@pytest.mark.parametrize("version", [V16, V201])
async def test_messages_leave_no_cyclic_garbage(
    version: OcppVersion, no_automatic_gc: None
) -> None:
    settings = dataclasses.replace(FAST, gc_freeze_interval_s=None)
    async with running(settings=settings) as (cs, rec), station(cs, "CP1", version) as st:
        await st.boot()
        if version is V16:
            start = {"connectorId": 1, "idTag": "T", "meterStart": 0, "timestamp": TS}
            tx = (await st.call("StartTransaction", start))["transactionId"]
        else:
            tx = "TX-1"
        for i in range(MESSAGES + 1):
            if i == 1:
                # Schema validators are compiled on first use (once, cyclic garbage).
                gc.collect()
                gc.set_debug(gc.DEBUG_SAVEALL)
            meter = [{"timestamp": TS, "sampledValue": _sampled(version, i)}]
            if version is V16:
                await st.call(
                    "MeterValues", {"connectorId": 1, "transactionId": tx, "meterValue": meter}
                )
                status = {"connectorId": 1, "errorCode": "NoError", "status": "Charging"}
            else:
                event = {
                    "eventType": "Started" if i == 0 else "Updated",
                    "timestamp": TS,
                    "triggerReason": "MeterValuePeriodic",
                    "seqNo": i,
                    "transactionInfo": {"transactionId": tx, "chargingState": "Charging"},
                    "evse": {"id": 1, "connectorId": 1},
                    "meterValue": meter,
                }
                await st.call("TransactionEvent", event)
                status = {
                    "timestamp": TS,
                    "connectorStatus": "Occupied",
                    "evseId": 1,
                    "connectorId": 1,
                }
            await st.call("StatusNotification", status)
            await st.call("Heartbeat", {})
        gc.collect()
        garbage = [type(o).__qualname__ for o in gc.garbage]
    # Both ends run in this process: neither may leave cycles per message.
    assert garbage == []
    assert len(rec.events) > MESSAGES


async def test_keeper_thresholds_freezing_and_full_collections() -> None:
    before = gc.get_threshold()
    full: list[int] = []

    def on_gc(phase: str, info: dict[str, int]) -> None:
        if phase == "stop" and info["generation"] == 2:
            full.append(gc.get_freeze_count())

    settings = dataclasses.replace(
        FAST,
        gc_freeze_interval_s=0.02,
        gc_threshold0=12_345,
        gc_full_collect_closed=1,
        gc_freeze_settle_s=0.05,
    )
    gc.callbacks.append(on_gc)
    try:
        async with running(settings=settings) as (cs, _):
            assert gc.get_threshold()[0] == 12_345
            async with station(cs, "CP1") as st:
                await st.boot()
                for _ in range(100):
                    if gc.get_freeze_count():
                        break
                    await asyncio.sleep(0.02)
                assert gc.get_freeze_count() > 0
            # a connection closed: once things settle, everything is collected once
            for _ in range(100):
                if full:
                    break
                await asyncio.sleep(0.02)
            assert full and full[0] == 0  # unfrozen while collecting
    finally:
        gc.callbacks.remove(on_gc)
    assert gc.get_threshold() == before
    assert gc.get_freeze_count() == 0
