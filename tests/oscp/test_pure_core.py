"""The protocol core without sockets: segments and `FlexibilityProvider.handle`."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from pydantic import SecretStr

from forecasts import Forecast
from oscp import FlexibilityProvider, MemoryTokenStore, OscpConfig, OscpProviderConfig
from oscp.errors import BadRequest
from oscp.segments import Reassembler, parse_segment_headers

NOW = datetime(2026, 11, 22, 17, 0, tzinfo=UTC)


def test_reassembler_one_and_zero_based() -> None:
    r: Reassembler[str] = Reassembler()
    assert r.add("k", 2, 2, "b", NOW) is None
    assert r.add("k", 1, 2, "a", NOW) == ["a", "b"]
    assert r.add("z", 0, 2, "a", NOW) is None
    assert r.add("z", 1, 2, "b", NOW) == ["a", "b"]
    assert r.pending == 0


def test_reassembler_drops_stale_parts() -> None:
    r: Reassembler[str] = Reassembler(ttl=timedelta(minutes=1))
    r.add("k", 1, 2, "a", NOW)
    r.add("other", 1, 3, "x", NOW + timedelta(minutes=2))
    assert r.add("k", 2, 2, "b", NOW + timedelta(minutes=2)) is None


def test_segment_headers() -> None:
    assert parse_segment_headers(None, None) is None
    assert parse_segment_headers("1", "3") == (1, 3)
    for i, n in (("1", None), ("4", "3"), ("-1", "3"), ("1", "0"), ("a", "1")):
        with pytest.raises(BadRequest):
            parse_segment_headers(i, n)


async def test_handle_without_http() -> None:
    got: list[Forecast] = []

    async def on_forecast(group: str, f: Forecast) -> None:
        got.append(f)

    cfg = OscpConfig(
        capacity_providers=[
            OscpProviderConfig(
                id="dso",
                base_url="http://127.0.0.1:9/cp",
                token_to_us=SecretStr("us"),
                token_to_them=SecretStr("them"),
            )
        ]
    )
    fp = FlexibilityProvider(
        cfg,
        our_base_url="http://127.0.0.1:9/fp",
        groups=["g"],
        token_store=MemoryTokenStore(),
        on_forecast=on_forecast,
    )
    await fp.start()
    try:
        body = (
            b'{"group_id": "g", "type": "OPTIMUM", "forecasted_blocks": [{"capacity": 3,'
            b' "phase": "ALL", "unit": "A", "start_time": "2026-11-22T17:00:00Z",'
            b' "end_time": "2026-11-22T18:00:00Z"}]}'
        )
        headers = {"Authorization": "Token us", "X-Request-ID": "r1"}
        reply = await fp.handle("update_group_capacity_forecast", "POST", headers, body)
        assert (reply.status, reply.headers["X-Correlation-ID"]) == (204, "r1")
        assert got[0].blocks[0].capacity == 3
        reply = await fp.handle("update_group_capacity_forecast", "PUT", headers, body)
        assert reply.status == 405
        reply = await fp.handle("handshake_acknowledge", "POST", headers, body)
        assert reply.status == 400
        reply = await fp.handle("nope", "POST", headers, body)
        assert reply.status == 400
        reply = await fp.handle("heartbeat", "POST", {"X-Request-ID": "r"}, b"{}")
        assert reply.status == 401 and "X-Correlation-ID" in reply.headers
    finally:
        await fp.stop()
