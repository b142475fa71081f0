"""Every Flexibility Provider message and every error status, over real HTTP."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from forecasts import ForecastType
from oscp.messages import Message
from oscp.registration import RegState

from .harness import running

T0 = datetime(2026, 11, 22, 17, 0, tzinfo=UTC)


def forecast_body(group: str = "trafo-1", capacity: object = 120.0, n: int = 1) -> dict:
    return {
        "group_id": group,
        "type": "CONSUMPTION",
        "forecasted_blocks": [
            {
                "capacity": capacity,
                "phase": "ALL",
                "unit": "KW",
                "start_time": (T0 + timedelta(minutes=15 * i)).isoformat(),
                "end_time": (T0 + timedelta(minutes=15 * (i + 1))).isoformat(),
            }
            for i in range(n)
        ],
    }


async def test_forecast_is_stored_before_204_and_correlated() -> None:
    async with running() as h:
        await h.dso.register()
        r = await h.dso.send(
            Message.UPDATE_GROUP_CAPACITY_FORECAST, forecast_body(), request_id="req-1"
        )
        assert r.status_code == 204
        assert r.content == b""
        assert r.headers["X-Correlation-ID"] == "req-1"
        assert len(h.stored) == 1
        f = h.stored[0]
        assert (f.group_id, f.type, f.source) == ("trafo-1", ForecastType.CONSUMPTION, "dso")
        assert f.blocks[0].capacity == 120.0 and f.blocks[0].start == T0


async def test_capacity_sent_as_string_is_accepted() -> None:
    async with running() as h:
        await h.dso.register()
        r = await h.dso.send(Message.UPDATE_GROUP_CAPACITY_FORECAST, forecast_body(capacity="75.5"))
        assert r.status_code == 204
        assert h.stored[0].blocks[0].capacity == 75.5


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({"Authorization": ""}, 401),
        ({"Authorization": "Bearer abc"}, 401),
        ({"Authorization": "Token wrong"}, 403),
        ({"X-Request-ID": ""}, 400),
    ],
)
async def test_header_errors(headers: dict[str, str], status: int) -> None:
    async with running() as h:
        await h.dso.register()
        r = await h.dso.send(
            Message.UPDATE_GROUP_CAPACITY_FORECAST, forecast_body(), headers=headers
        )
        assert r.status_code == status
        assert isinstance(r.json()["message"], str)
        assert h.stored == []


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        {"group_id": "trafo-1", "type": "NOPE", "forecasted_blocks": []},
        {
            **forecast_body(),
            "forecasted_blocks": [{**forecast_body()["forecasted_blocks"][0], "unit": "MW"}],
        },
        {
            **forecast_body(),
            "forecasted_blocks": [{**forecast_body()["forecasted_blocks"][0], "capacity": -1}],
        },
        {
            **forecast_body(),
            "forecasted_blocks": [
                {**forecast_body()["forecasted_blocks"][0], "end_time": T0.isoformat()}
            ],
        },
        {
            **forecast_body(),
            "forecasted_blocks": [
                {**forecast_body()["forecasted_blocks"][0], "start_time": "2026-11-22T17:00:00"}
            ],
        },
    ],
    ids=["json", "type", "unit", "negative", "empty-block", "naive-time"],
)
async def test_invalid_body_is_400_and_changes_nothing(body: object) -> None:
    async with running() as h:
        await h.dso.register()
        r = await h.dso.send(Message.UPDATE_GROUP_CAPACITY_FORECAST, body, request_id="bad-1")
        assert r.status_code == 400
        assert r.headers["X-Correlation-ID"] == "bad-1"
        assert "message" in r.json()
        assert h.stored == []


async def test_unknown_group_is_400() -> None:
    async with running() as h:
        await h.dso.register()
        r = await h.dso.send(Message.UPDATE_GROUP_CAPACITY_FORECAST, forecast_body("nowhere"))
        assert r.status_code == 400
        assert "nowhere" in r.json()["message"]
        assert h.stored == []


async def test_a_forecast_over_the_block_cap_is_400_and_changes_nothing() -> None:
    from forecasts.capacity_book import MAX_BLOCKS

    async with running() as h:
        await h.dso.register()
        r = await h.dso.send(Message.UPDATE_GROUP_CAPACITY_FORECAST, forecast_body(n=MAX_BLOCKS))
        assert r.status_code == 204
        r = await h.dso.send(
            Message.UPDATE_GROUP_CAPACITY_FORECAST,
            forecast_body(capacity=5, n=MAX_BLOCKS + 1),
            request_id="big-1",
        )
        assert r.status_code == 400
        assert r.headers["X-Correlation-ID"] == "big-1"
        assert str(MAX_BLOCKS) in r.json()["message"]
        assert len(h.stored) == 1
        assert {b.capacity for b in h.book.forecasts()[0].blocks} == {120.0}


async def test_segments_over_the_block_cap_together_are_400() -> None:
    from forecasts.capacity_book import MAX_BLOCKS

    async with running() as h:
        await h.dso.register()
        blocks = forecast_body(n=MAX_BLOCKS + 1)["forecasted_blocks"]
        half = len(blocks) // 2
        statuses = []
        for i, part in enumerate((blocks[:half], blocks[half:])):
            r = await h.dso.send(
                Message.UPDATE_GROUP_CAPACITY_FORECAST,
                {**forecast_body(), "forecasted_blocks": part},
                headers={
                    "X-Segment-Index": str(i),
                    "X-Segment-Count": "2",
                    "X-Correlation-ID": "big-2",
                },
            )
            statuses.append(r.status_code)
        assert statuses == [204, 400]
        assert h.stored == []


async def test_no_common_version_is_501() -> None:
    async with running() as h:
        body = {"token": "t", "version_url": [{"version": "1.0", "base_url": h.dso.base_url}]}
        r = await h.dso.send(Message.REGISTER, body)
        assert r.status_code == 501
        assert "version" in r.json()["message"]
        assert h.fp.links["dso"].state is RegState.UNREGISTERED


async def test_storage_failure_is_not_accepted() -> None:
    async with running() as h:
        await h.dso.register()
        h.fail_storage = True
        r = await h.dso.send(Message.UPDATE_GROUP_CAPACITY_FORECAST, forecast_body())
        assert r.status_code == 500
        assert h.book.forecasts() == []


async def test_messages_before_registration_are_403() -> None:
    async with running() as h:
        r = await h.dso.send(Message.UPDATE_GROUP_CAPACITY_FORECAST, forecast_body())
        assert r.status_code == 403
        r = await h.dso.send(Message.HEARTBEAT, {"offline_mode_at": T0.isoformat()})
        assert r.status_code == 403


async def test_segmented_forecast_is_reassembled() -> None:
    async with running() as h:
        await h.dso.register()
        blocks = forecast_body(n=9)["forecasted_blocks"]
        for i in range(3):
            part = {**forecast_body(), "forecasted_blocks": blocks[3 * i : 3 * i + 3]}
            r = await h.dso.send(
                Message.UPDATE_GROUP_CAPACITY_FORECAST,
                part,
                headers={
                    "X-Segment-Index": str(i + 1),
                    "X-Segment-Count": "3",
                    "X-Correlation-ID": "msg-1",
                },
            )
            assert r.status_code == 204
            assert len(h.stored) == (1 if i == 2 else 0)
        assert len(h.stored[0].blocks) == 9
        assert [b.start for b in h.stored[0].blocks] == [
            T0 + timedelta(minutes=15 * i) for i in range(9)
        ]


async def test_segments_out_of_order_zero_based_via_simulator() -> None:
    async with running() as h:
        await h.dso.register()
        blocks = forecast_body(n=4)["forecasted_blocks"]
        for i in (1, 0):
            part = {**forecast_body(), "forecasted_blocks": blocks[2 * i : 2 * i + 2]}
            r = await h.dso.send(
                Message.UPDATE_GROUP_CAPACITY_FORECAST,
                part,
                headers={"X-Segment-Index": str(i), "X-Segment-Count": "2"},
            )
            assert r.status_code == 204
        assert [b.start for b in h.stored[0].blocks] == [
            T0 + timedelta(minutes=15 * i) for i in range(4)
        ]


async def test_bad_segment_headers_are_400() -> None:
    async with running() as h:
        await h.dso.register()
        for headers in (
            {"X-Segment-Index": "1"},
            {"X-Segment-Index": "5", "X-Segment-Count": "2"},
            {"X-Segment-Index": "x", "X-Segment-Count": "2"},
        ):
            r = await h.dso.send(
                Message.UPDATE_GROUP_CAPACITY_FORECAST, forecast_body(), headers=headers
            )
            assert r.status_code == 400


async def test_simulator_sends_segments() -> None:
    async with running() as h:
        await h.dso.register()
        from forecasts.model import Block, Phase, Unit

        blocks = [
            Block(
                10.0 + i,
                Unit.A,
                Phase.ALL,
                T0 + timedelta(minutes=15 * i),
                T0 + timedelta(minutes=15 * (i + 1)),
            )
            for i in range(10)
        ]
        await h.dso.send_forecast("trafo-1", ForecastType.CONSUMPTION, blocks, segments=4)
        assert len(h.stored) == 1
        assert h.stored[0].blocks == tuple(blocks)


async def test_heartbeat_from_dso_is_recorded() -> None:
    async with running() as h:
        await h.dso.register()
        r = await h.dso.send(Message.HEARTBEAT, {"offline_mode_at": T0.isoformat()})
        assert r.status_code == 204
        assert h.heartbeats == [("dso", T0)]
        assert h.fp.links["dso"].offline_mode_at == T0
        r = await h.dso.send(Message.HEARTBEAT, {"offline_mode_at": "yesterday"})
        assert r.status_code == 400


async def test_adjust_and_compliance_error_from_an_optimizer() -> None:
    async with running() as h:
        await h.dso.register()
        r = await h.dso.send(Message.ADJUST_GROUP_CAPACITY_FORECAST, forecast_body())
        assert r.status_code == 204
        assert h.adjusts[0].group_id == "trafo-1"
        r = await h.dso.send(Message.ADJUST_GROUP_CAPACITY_FORECAST, forecast_body("x"))
        assert r.status_code == 400
        body = {"message": "cannot", "forecasted_blocks": forecast_body()["forecasted_blocks"]}
        r = await h.dso.send(Message.GROUP_CAPACITY_COMPLIANCE_ERROR, body)
        assert r.status_code == 204
        assert h.compliance[0].message == "cannot"
        r = await h.dso.send(Message.GROUP_CAPACITY_COMPLIANCE_ERROR, {"forecasted_blocks": []})
        assert r.status_code == 400


async def test_unregister_then_messages_are_refused() -> None:
    async with running() as h:
        await h.dso.register()
        await h.dso.unregister()
        assert h.fp.links["dso"].state is RegState.UNREGISTERED
        r = await h.dso.send(Message.UPDATE_GROUP_CAPACITY_FORECAST, forecast_body())
        assert r.status_code == 403


async def test_unknown_path_and_method() -> None:
    async with running() as h:
        await h.dso.register()
        r = await h.dso.send("handshake_acknowledge", {})
        assert r.status_code in (404, 405)
        r = await h.dso.send(Message.HEARTBEAT, {}, method="GET")
        assert r.status_code == 405
        assert "GET" in r.json()["message"]


async def test_many_concurrent_forecasts_all_stored() -> None:
    async with running() as h:
        await h.dso.register()
        rs = await asyncio.gather(
            *(
                h.dso.send(Message.UPDATE_GROUP_CAPACITY_FORECAST, forecast_body(capacity=float(i)))
                for i in range(20)
            )
        )
        assert {r.status_code for r in rs} == {204}
        assert len(h.stored) == 20
