"""Sessions through the running service over real OCPP 2.0.1 connections: a
transaction id two stations share, an impossible meter value, an impossible
session record. The service runs in this process with its real central system,
store (SQLite) and HTTP API; the stations are plain websockets clients."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from gridshare.api.schemas import ChangeKind
from gridshare.config import parse_config
from gridshare.service import Service
from ocpp_adapter.events import EvChargingNeeds
from ocpp_adapter.rpc import OcppVersion
from tests.ocpp.helpers import CallFailed, Station, station

V16, V201 = OcppVersion.V16, OcppVersion.V201
READ_TOKEN = "read-token-0123456789"
READ = {"Authorization": f"Bearer {READ_TOKEN}"}


@dataclass
class Live:
    svc: Service
    client: httpx.AsyncClient

    @property
    def cs(self) -> Any:
        return self.svc.gateway  # the central system itself

    async def get(self, path: str, **params: Any) -> Any:
        r = await self.client.get(path, params=params, headers=READ)
        assert r.status_code == 200, (path, r.text)
        return r.json()


@pytest.fixture
async def live(tmp_path: Path) -> AsyncIterator[Live]:
    data = {
        "site": {"name": "live sessions", "horizon_hours": 2},
        "groups": [{"id": "grid", "limit_a": 48}],
        "chargers": [
            {"id": f"CP{i}", "group": "grid", "connectors": [{"id": 1, "max_current_a": 32}]}
            for i in (1, 2)
        ],
        "server": {
            "host": "127.0.0.1",
            "ocpp_port": 0,
            "http_port": 0,
            "allow_unknown_stations": True,
        },
        "controller": {"coalesce_s": 0.01},
        "api": {"tokens": [{"name": "viewer", "token": READ_TOKEN, "role": "read"}]},
    }
    cfg = parse_config(data, "live.toml", tmp_path / "live.toml", environ={})
    svc = Service(cfg, scheduler=False)
    await svc.start()
    try:
        async with httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{svc.http_port}", timeout=10
        ) as client:
            yield Live(svc, client)
    finally:
        await svc.stop()


def now_ts() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def tx_event(kind: str, seq: int, tx: str, *samples: dict[str, Any]) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "eventType": kind,
        "timestamp": now_ts(),
        "triggerReason": "Authorized" if kind == "Started" else "MeterValuePeriodic",
        "seqNo": seq,
        "transactionInfo": {"transactionId": tx, "chargingState": "Charging"},
        "evse": {"id": 1, "connectorId": 1},
        "meterValue": [
            {
                "timestamp": now_ts(),
                "sampledValue": [{"value": 1000, "unitOfMeasure": {"unit": "Wh"}}, *samples],
            }
        ],
    }
    if kind == "Started":
        payload["idToken"] = {"idToken": "TAG", "type": "ISO14443"}
    return payload


async def until(cond: Callable[[], Any], what: str, timeout_s: float = 10.0) -> Any:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while not (value := cond()):
        if loop.time() > deadline:
            raise AssertionError(f"not reached in {timeout_s} s: {what}")
        await asyncio.sleep(0.02)
    return value


def tx_profiles(st: Station) -> list[str]:
    return [
        p["chargingProfile"].get("transactionId")
        for p in st.sent("SetChargingProfile")
        if p["chargingProfile"]["chargingProfilePurpose"] == "TxProfile"
    ]


async def test_two_stations_with_one_transaction_id_are_planned_as_two_sessions(live: Live):
    ctl = live.svc.controller
    assert ctl is not None
    operator = live.svc.operator
    assert operator is not None
    announced: list[str] = []

    async def listen() -> None:
        async for change in operator.changes():
            if change.kind is ChangeKind.SESSION:
                announced.append(change.subject)

    listener = asyncio.create_task(listen())
    await asyncio.sleep(0)
    async with (
        station(live.cs, "CPX", V201) as unknown,
        station(live.cs, "CP1", V201) as one,
        station(live.cs, "CP2", V201) as two,
    ):
        for st in (unknown, one, two):
            assert (await st.boot())["status"] == "Accepted"
        # an unknown station uses the id first; each start is answered, none refused
        for st in (unknown, one, two):
            await st.call("TransactionEvent", tx_event("Started", 0, "TX-SAME"))

        await until(lambda: tx_profiles(one) and tx_profiles(two), "both get a TxProfile")
        assert tx_profiles(one)[0] == tx_profiles(two)[0] == "TX-SAME"
        assert {c: (s.station_id, s.transaction_id) for c, s in ctl.sessions.items()} == {
            "CP1/1": ("CP1", "TX-SAME"),
            "CP2/1": ("CP2", "TX-SAME"),
        }
        assert ctl.plan is not None and len(ctl.plan.requested_kwh) == 2
        sessions = await live.get("/api/sessions", state="active")
        ids = {s["connector_id"]: s["session_id"] for s in sessions}
        assert set(ids) == {"CP1/1", "CP2/1"} and len(set(ids.values())) == 2
        for sid in ids.values():
            assert (await live.get(f"/api/sessions/{sid}"))["active"]
        status = await live.get("/api/status")
        assert status["conflicts"] == []
        # the live stream names each session by the id the API knows it by
        await until(lambda: set(ids.values()) <= set(announced), "both starts announced")
        listener.cancel()

        # one station's end ends its own session only
        await one.call("TransactionEvent", tx_event("Ended", 1, "TX-SAME"))
        await until(lambda: set(ctl.sessions) == {"CP2/1"}, "CP1's session ended")
        await two.call("TransactionEvent", tx_event("Ended", 1, "TX-SAME"))
        await until(lambda: not ctl.sessions, "CP2's session ended")
    store = live.svc.store
    assert store is not None
    assert [s.station_id for s in store.active_sessions()] == ["CPX"]


async def test_an_impossible_current_is_reported_and_not_believed(
    live: Live, caplog: pytest.LogCaptureFixture
):
    ctl = live.svc.controller
    assert ctl is not None
    async with station(live.cs, "CP1", V201) as st:
        await st.boot()
        await st.call("TransactionEvent", tx_event("Started", 0, "TX-1"))
        await until(lambda: tx_profiles(st), "a TxProfile")
        wild = [
            # finite, so the station's message is taken; no connector carries it
            {"value": 1e308, "measurand": "Current.Import", "phase": "L1"},
            {"value": 999, "measurand": "Current.Import", "phase": "L2"},
            {"value": 10, "measurand": "Current.Import", "phase": "L3"},
        ]
        with caplog.at_level(logging.WARNING, logger="gridshare.controller"):
            await st.call("TransactionEvent", tx_event("Updated", 1, "TX-1", *wild))
        await until(lambda: ctl.sessions["CP1/1"].drawn_a is not None, "the reading applied")
        groups = {g["id"]: g for g in (await live.get("/api/groups"))["groups"]}
        measured = groups["grid"]["measured_a"]
        assert measured.get("L1", 0.0) == 0.0 and measured.get("L2", 0.0) == 0.0
        assert measured["L3"] == 10.0
        assert ctl.sessions["CP1/1"].drawn_a == 10.0
    [warning] = [r for r in caplog.records if "impossible meter values" in r.getMessage()]
    assert "'CP1'" in warning.getMessage() and "'CP1/1'" in warning.getMessage()
    assert "1e+308" in warning.getMessage()


async def test_an_impossible_session_is_left_out_and_the_others_planned(live: Live):
    ctl = live.svc.controller
    assert ctl is not None
    async with station(live.cs, "CP1", V201) as one, station(live.cs, "CP2", V201) as two:
        for st in (one, two):
            await st.boot()
            await st.call("TransactionEvent", tx_event("Started", 0, f"TX-{st is two}"))
        await until(lambda: tx_profiles(one) and tx_profiles(two), "both planned")
        # a car that says it takes a negative current: no plan can be made of that
        await live.svc.on_event(EvChargingNeeds("CP1/1", datetime.now(UTC), ev_max_current_a=-5))
        await ctl.replan_now("test")
        assert ctl.plan is not None and list(ctl.plan.requested_kwh) == ["TX-True"]
        status = await live.get("/api/status")
        [conflict] = status["conflicts"]
        assert (conflict["kind"], conflict["connector_id"]) == ("isolated", "CP1/1")
        assert "ev_max_current_a" in conflict["reason"]
        r = await live.client.get("/metrics", headers=READ)
        assert "gridshare_session_conflicts 1.0" in r.text
        # the isolated connector still counts: at the most it may draw
        _, fixed = ctl.problem(datetime.now(UTC))
        assert fixed["CP1/1"] > 0


async def test_a_start_that_contradicts_the_stored_one_is_refused_without_a_traceback(
    live: Live, caplog: pytest.LogCaptureFixture
):
    ctl = live.svc.controller
    assert ctl is not None
    async with station(live.cs, "CP1", V201) as st:
        await st.boot()
        first = tx_event("Started", 0, "TX-1")
        first["timestamp"] = (datetime.now(UTC) - timedelta(minutes=10)).isoformat()
        await st.call("TransactionEvent", first)
        await until(lambda: tx_profiles(st), "the session planned")
        again = tx_event("Started", 1, "TX-1")  # its own id again, another start
        with caplog.at_level(logging.WARNING):
            for _ in range(2):  # and the station's retry
                with pytest.raises(CallFailed) as refused:
                    await st.call("TransactionEvent", again)
                assert refused.value.code == "PropertyConstraintViolation"
        assert not [r for r in caplog.records if r.exc_info], caplog.text
        assert "Traceback" not in caplog.text
        assert "TX-1" in refused.value.args[0]
        # the connection stays, the stored session stands
        assert "currentTime" in await st.call("Heartbeat", {})
        assert ctl.sessions["CP1/1"].transaction_id == "TX-1"


async def test_a_v16_stop_with_impossible_values_ends_the_session(live: Live):
    ctl = live.svc.controller
    assert ctl is not None
    async with station(live.cs, "CP1", V16) as st:
        await st.boot()
        start = {"connectorId": 1, "idTag": "TAG", "meterStart": 1000, "timestamp": now_ts()}
        tx = (await st.call("StartTransaction", start))["transactionId"]
        await until(lambda: "CP1/1" in ctl.sessions, "the session started")
        negative = {"value": "-4", "measurand": "Current.Import", "phase": "L1"}
        values = [{"timestamp": now_ts(), "sampledValue": [negative]}]
        # meter values on their own are refused with one impossible value ...
        with pytest.raises(CallFailed) as refused:
            mv = {"connectorId": 1, "transactionId": tx, "meterValue": values}
            await st.call("MeterValues", mv)
        assert refused.value.code == "PropertyConstraintViolation"
        # ... the end of the session is not lost for one
        stop = {
            "transactionId": tx,
            "meterStop": -1,
            "timestamp": now_ts(),
            "transactionData": values,
        }
        assert await st.call("StopTransaction", stop) == {}
        await until(lambda: not ctl.sessions, "the session ended")
    store = live.svc.store
    assert store is not None
    assert store.active_sessions() == []
