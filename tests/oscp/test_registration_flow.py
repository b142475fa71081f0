"""Register (both directions) with token rotation, Handshake → HandshakeAcknowledge,
heartbeats, measurements and our outgoing messages, over real HTTP."""

from __future__ import annotations

import asyncio
import json
import logging
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from forecasts import Block, Phase, Unit
from gridshare.peers.dso import Received
from oscp import JsonFileTokenStore, MemoryTokenStore, RegState
from oscp.errors import RegistrationError
from oscp.messages import MeasurementConfiguration, Message
from oscp.registration import TRANSITIONS, RegEvent, next_state
from oscp.tokens import TokenRecord

from .harness import running, wait_state

T0 = datetime(2026, 11, 22, 17, 0, tzinfo=UTC)
# Heartbeats promise to come again long after the test ends, whatever the date.
HB = {"offline_mode_at": (datetime.now(UTC) + timedelta(days=1)).isoformat()}


async def test_dso_registers_and_tokens_rotate() -> None:
    async with running(token_to_us="out-of-band-A") as h:
        await h.dso.register()
        link = h.fp.links["dso"]
        await wait_state(h, RegState.REGISTERED)
        rotated = h.dso.token_to_fp
        assert rotated and rotated != "out-of-band-A"
        assert link.record.token_to_us is not None
        assert link.record.token_to_us.get_secret_value() == rotated
        # our Register reached the DSO with the token it gave us
        reg = await h.dso.wait_for("register")
        assert reg.body["version_url"][0]["base_url"] == h.fp_url
        # the old token stops working, the new one works
        r = await h.dso.send(Message.HEARTBEAT, HB, token="out-of-band-A")
        assert r.status_code == 403
        r = await h.dso.send(Message.HEARTBEAT, HB)
        assert r.status_code == 204
        # rotated tokens are in the store
        saved = await h.tokens.load("dso")
        assert saved is not None and saved.token_to_us == link.record.token_to_us
        assert saved.base_url == h.dso.base_url


async def test_fp_registers_with_registration_token() -> None:
    async with running(token_to_us=None, registration_token="given-by-dso") as h:
        await asyncio.wait_for(h.dso.registered.wait(), 5)
        link = h.fp.links["dso"]
        await wait_state(h, RegState.REGISTERED)
        # the DSO now calls us with the token we sent it, and we call it with its new one
        assert link.record.token_to_us is not None
        assert h.dso.token_to_fp == link.record.token_to_us.get_secret_value()
        assert link.record.token_to_them is not None
        assert h.dso.accepted_tokens == {link.record.token_to_them.get_secret_value()}
        r = await h.dso.send(Message.HEARTBEAT, HB)
        assert r.status_code == 204
        # and our heartbeats reach it (the DSO refuses unknown tokens with 403)
        h.fp.links["dso"].client.set_heartbeat(0.1)
        hb = await h.dso.wait_for("heartbeat", timeout_s=3)
        assert datetime.fromisoformat(hb.body["offline_mode_at"]) > datetime.now(UTC)


async def test_registration_retries_until_the_dso_is_up() -> None:
    async with running(
        token_to_us=None,
        registration_token="given-by-dso",
        dso_base_url="http://127.0.0.1:9/oscp/cp/2.0",
    ) as h:
        link = h.fp.links["dso"]
        assert link.state is RegState.AWAITING_REPLY
        await asyncio.sleep(0.3)
        assert link.client.stats.last_error is not None
        assert link.state is RegState.AWAITING_REPLY


async def test_handshake_is_acknowledged_with_correlation_id_and_heartbeats_follow() -> None:
    async with running() as h:
        await h.dso.register()
        rid = await h.dso.handshake(heartbeat_interval=0.1)
        ack = await h.dso.wait_for("handshake_acknowledge", timeout_s=3)
        assert ack.correlation_id == rid
        assert ack.body["required_behaviour"]["heartbeat_interval"] == 60.0
        assert h.fp.links["dso"].state is RegState.HANDSHAKEN
        n = len(h.dso.received)
        await h.dso.wait_for("heartbeat", timeout_s=3, after=n)
        first = await h.dso.wait_for("heartbeat", timeout_s=3, after=n)
        second = await h.dso.wait_for(
            "heartbeat", timeout_s=3, after=h.dso.received.index(first) + 1
        )
        t1 = datetime.fromisoformat(first.body["offline_mode_at"])
        t2 = datetime.fromisoformat(second.body["offline_mode_at"])
        assert t2 > t1
        assert t1 - first.time <= timedelta(seconds=0.3)


async def test_flat_handshake_variant_is_accepted() -> None:
    async with running() as h:
        await h.dso.register()
        r = await h.dso.send(
            Message.HANDSHAKE,
            {"heartbeat_interval": 30, "measurement_configuration": ["INTERMITTENT"]},
        )
        assert r.status_code == 204
        b = h.fp.links["dso"].behaviour
        assert b is not None and b.heartbeat_interval == 30
        r = await h.dso.send(Message.HANDSHAKE, {"required_behaviour": {"heartbeat_interval": -1}})
        assert r.status_code == 400


@pytest.mark.parametrize("mode", list(MeasurementConfiguration))
async def test_group_measurements_as_asked(mode: MeasurementConfiguration) -> None:
    meter = {"trafo-1": 100.0}

    async def source(group: str) -> float | None:
        meter[group] += 1.5
        return meter[group]

    async with running(measurements=source, measurement_interval_s=0.05) as h:
        await h.dso.register()
        await h.dso.handshake(heartbeat_interval=60, measurement_configuration=[mode])
        intermittent = mode is MeasurementConfiguration.INTERMITTENT
        got = await h.dso.wait_for(
            "update_group_measurements",
            timeout_s=3,
            where=lambda r: ("initial_measure_time" in r.body["measurements"][0]) == intermittent,
        )
        m = got.body["measurements"][0]
        assert got.body["group_id"] == "trafo-1"
        assert m["unit"] == "KWH" and m["direction"] == "IMPORT"
        if mode is MeasurementConfiguration.CONTINUOUS:
            assert m["value"] > 100.0 and "initial_measure_time" not in m
        else:
            assert m["value"] == pytest.approx(1.5)
            assert m["initial_measure_time"] <= m["measure_time"]


async def test_intermittent_measurements_cover_a_restart(tmp_path: Path) -> None:
    """What the DSO asked in its Handshake and its last INTERMITTENT report are
    kept with the tokens: after a restart, with no new Handshake, the first
    report starts where the last one it received ended, so it sees every kWh."""
    meter = {"trafo-1": 100.0}
    readings: list[float] = []

    async def source(group: str) -> float | None:
        meter[group] += 1.5
        readings.append(meter[group])
        return meter[group]

    intermittent = [MeasurementConfiguration.INTERMITTENT]
    store = JsonFileTokenStore(tmp_path / "tokens.json")
    async with running(tokens=store, measurements=source, measurement_interval_s=0.05) as h:
        await h.dso.register()
        await h.dso.handshake(heartbeat_interval=60, measurement_configuration=intermittent)
        await h.dso.wait_for("update_group_measurements", timeout_s=3)
        rotated = h.dso.token_to_fp
        for _ in range(150):  # the report's baseline is kept once its delivery is known
            saved = await store.load("dso")
            if saved is not None and saved.reported:
                break
            await asyncio.sleep(0.02)
    assert saved is not None and "trafo-1" in saved.reported
    last_time, last_kwh = saved.reported["trafo-1"]
    assert last_kwh <= meter["trafo-1"]
    meter["trafo-1"] += 40.0  # imported while the service was down
    readings.clear()
    async with running(
        token_to_us=rotated, tokens=store, measurements=source, measurement_interval_s=0.05
    ) as h:
        behaviour = h.fp.links["dso"].behaviour
        assert behaviour is not None and behaviour.measurement_configuration == intermittent
        # the simulated DSO came back on a new port: it registers (no Handshake)
        await h.dso.register()
        got = await h.dso.wait_for(
            "update_group_measurements",
            timeout_s=3,
            where=lambda r: "initial_measure_time" in r.body["measurements"][0],
        )
        (m,) = got.body["measurements"]
        assert datetime.fromisoformat(m["initial_measure_time"]) == last_time
        # everything since that report, the 40 kWh of the downtime included
        assert m["value"] >= 40.0
        assert any(m["value"] == pytest.approx(v - last_kwh) for v in readings)


async def test_an_undelivered_intermittent_report_is_covered_by_the_next() -> None:
    meter = {"trafo-1": 100.0}

    async def source(group: str) -> float | None:
        meter[group] += 1.5
        return meter[group]

    intermittent = [MeasurementConfiguration.INTERMITTENT]
    async with running(measurements=source, measurement_interval_s=0.05) as h:
        await h.dso.register()
        await h.dso.handshake(heartbeat_interval=60, measurement_configuration=intermittent)

        def intermittent_report(r: Received) -> bool:
            return "initial_measure_time" in r.body["measurements"][0]

        await h.dso.wait_for("update_group_measurements", timeout_s=3, where=intermittent_report)
        tokens = set(h.dso.accepted_tokens)
        h.dso.accepted_tokens.clear()  # the DSO refuses everything for a while
        await asyncio.sleep(0.3)
        assert h.fp.links["dso"].client.stats.dropped > 0
        last = [
            r
            for r in h.dso.received
            if r.message == "update_group_measurements" and intermittent_report(r)
        ][-1]
        seen = len(h.dso.received)
        h.dso.accepted_tokens.update(tokens)
        got = await h.dso.wait_for("update_group_measurements", timeout_s=3, after=seen)
        (m,) = got.body["measurements"]
        assert m["initial_measure_time"] == last.body["measurements"][0]["measure_time"]
        assert m["value"] > 1.5 * 3  # several rounds' worth


async def test_compliance_error_and_adjust_reach_the_dso() -> None:
    async with running() as h:
        await h.dso.register()
        await wait_state(h, RegState.REGISTERED)
        block = Block(50.0, Unit.KW, Phase.ALL, T0, T0 + timedelta(hours=1))
        assert (
            h.fp.report_compliance_error("trafo-1", "station st-3 ignores its limit", [block]) == 1
        )
        assert h.fp.request_adjustment("trafo-1", [block]) == 1
        err = await h.dso.wait_for("group_capacity_compliance_error", timeout_s=3)
        assert "st-3" in err.body["message"]
        assert err.body["forecasted_blocks"][0]["capacity"] == 50.0
        adj = await h.dso.wait_for("adjust_group_capacity_forecast", timeout_s=3)
        assert adj.body["group_id"] == "trafo-1" and adj.body["type"] == "CONSUMPTION"


async def test_nothing_is_queued_for_a_dso_that_unregistered() -> None:
    """The group's own DSO unregistered: our messages for its group have nobody
    to go to (the operator API answers 409), and no other DSO gets them."""
    async with running() as h:
        await h.dso.register()
        await wait_state(h, RegState.REGISTERED)
        body = {
            "group_id": "trafo-1",
            "type": "CONSUMPTION",
            "forecasted_blocks": [
                {
                    "capacity": 120.0,
                    "phase": "ALL",
                    "unit": "KW",
                    "start_time": T0.isoformat(),
                    "end_time": (T0 + timedelta(hours=1)).isoformat(),
                }
            ],
        }
        r = await h.dso.send(Message.UPDATE_GROUP_CAPACITY_FORECAST, body)
        assert r.status_code == 204
        r = await h.dso.send(Message.REGISTER, None, method="DELETE")
        assert r.status_code == 204
        await wait_state(h, RegState.UNREGISTERED)
        block = Block(50.0, Unit.KW, Phase.ALL, T0, T0 + timedelta(hours=1))
        assert h.fp.request_adjustment("trafo-1", [block]) == 0
        assert h.fp.report_compliance_error("trafo-1", "over", [block]) == 0


async def test_unreachable_dso_never_blocks() -> None:
    loop = asyncio.get_running_loop()
    async with running(
        token_to_them="them",
        dso_base_url="http://127.0.0.1:9/oscp/cp/2.0",
        heartbeat_interval_s=0.05,
    ) as h:
        link = h.fp.links["dso"]
        assert link.state is RegState.REGISTERED
        t = loop.time()
        for _ in range(50):
            h.fp.report_compliance_error("trafo-1", "over")
        assert loop.time() - t < 0.5  # no network wait (a timeout would be seconds)
        await asyncio.sleep(0.4)
        assert link.client.stats.heartbeats_sent == 0
        assert link.client.stats.last_error is not None
        # forecasts still come in meanwhile
        r = await h.dso.send(Message.HEARTBEAT, HB)
        assert r.status_code == 204
        (st,) = h.fp.status()
        assert st["state"] == "REGISTERED" and st["offline"] is False
        assert st["heartbeats_sent"] == 0 and st["last_error"]
        assert "them" not in repr(st)
    assert loop.time() - t < 5


async def test_rotated_tokens_survive_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "oscp-tokens.json"
    async with running(token_to_us="A", tokens=JsonFileTokenStore(path)) as h:
        await h.dso.register()
        rotated = h.dso.token_to_fp
        await wait_state(h, RegState.REGISTERED)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert rotated is not None and rotated in path.read_text()
    async with running(token_to_us="A", tokens=JsonFileTokenStore(path)) as h:
        assert h.fp.links["dso"].state is RegState.REGISTERED
        r = await h.dso.send(Message.HEARTBEAT, HB, token=rotated)
        assert r.status_code == 204
        r = await h.dso.send(Message.HEARTBEAT, HB, token="A")
        assert r.status_code == 403


async def test_tokens_never_in_logs_or_reprs(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    async with running(token_to_us="secret-A") as h:
        await h.dso.register()
        await h.dso.handshake()
        await h.dso.wait_for("handshake_acknowledge")
        link = h.fp.links["dso"]
        assert link.record.token_to_us is not None and link.record.token_to_them is not None
        secrets_ = [
            "secret-A",
            link.record.token_to_us.get_secret_value(),
            link.record.token_to_them.get_secret_value(),
        ]
        shown = caplog.text + repr(link) + repr(link.record) + repr(h.fp) + repr(h.fp.config)
        shown += repr(link.client) + str(link.record)
        for s in secrets_:
            assert s not in shown


async def test_memory_and_json_stores_round_trip(tmp_path: Path) -> None:
    from pydantic import SecretStr

    rec = TokenRecord(
        token_to_us=SecretStr("u"),
        token_to_them=SecretStr("t"),
        base_url="http://x",
        state=RegState.HANDSHAKEN,
    )
    for store in (MemoryTokenStore(), JsonFileTokenStore(tmp_path / "t.json")):
        assert await store.load("p") is None
        await store.save("p", rec)
        await store.save("q", rec.model_copy(update={"state": RegState.UNREGISTERED}))
        assert await store.load("p") == rec
    data = json.loads((tmp_path / "t.json").read_text())
    assert data["p"]["token_to_us"] == "u"


def test_transition_table() -> None:
    assert next_state(RegState.UNREGISTERED, RegEvent.SEND_REGISTER) is RegState.AWAITING_REPLY
    assert next_state(RegState.AWAITING_REPLY, RegEvent.REGISTER_RECEIVED) is RegState.REGISTERED
    assert next_state(RegState.HANDSHAKEN, RegEvent.REGISTER_RECEIVED) is RegState.REPLYING
    for s in RegState:
        assert next_state(s, RegEvent.UNREGISTER_RECEIVED) is RegState.UNREGISTERED
    with pytest.raises(RegistrationError):
        next_state(RegState.UNREGISTERED, RegEvent.HANDSHAKE_RECEIVED)
    assert all(isinstance(v, RegState) for v in TRANSITIONS.values())


async def test_put_register_rotates_again() -> None:
    async with running(token_to_us="A") as h:
        await h.dso.register()
        await wait_state(h, RegState.REGISTERED)
        first = h.dso.token_to_fp
        await h.dso.register(method="PUT")
        await wait_state(h, RegState.REGISTERED)
        assert h.dso.token_to_fp != first
        assert (await h.dso.send(Message.HEARTBEAT, HB, token=first)).status_code == 403
        assert (await h.dso.send(Message.HEARTBEAT, HB)).status_code == 204
