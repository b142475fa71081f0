"""OCPP 2.1 periodic event streams as a meter feed: a station's streams of its
EVSE's current per phase become the same readings MeterValues give, at the
stream's basetime + offsets, over a real socket and schema-checked both ways."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from ocpp_adapter.events import MeterReading
from ocpp_adapter.streams import MAX_STREAMS, BadStream, StreamBook
from tests.ocpp.helpers import running, station
from tests.ocpp.test_v21 import V21, official

BASE = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
BASETIME = "2026-03-02T12:00:00Z"
ACCEPTED = {"status": "Accepted"}


def monitor_report(monitors: dict[int, str | None], evse: int = 1) -> dict[str, Any]:
    """A NotifyMonitoringReport of Periodic monitors on the EVSE's Current.Import
    (monitor id → phase, None: no phase)."""
    return {
        "requestId": 1,
        "seqNo": 0,
        "generatedAt": BASETIME,
        "monitor": [
            {
                "component": {"name": "EVSE", "evse": {"id": evse}},
                "variable": {"name": "Current.Import", **({"instance": p} if p else {})},
                "variableMonitoring": [
                    {
                        "id": mid,
                        "transaction": True,
                        "value": 1,
                        "type": "Periodic",
                        "severity": 8,
                        "eventNotificationType": "CustomMonitor",
                    }
                ],
            }
            for mid, p in monitors.items()
        ],
    }


def opened(stream: int, monitor: int) -> dict[str, Any]:
    params = {"interval": 1, "values": 2}
    return {"constantStreamData": {"id": stream, "variableMonitoringId": monitor, "params": params}}


def data(stream: int, *values: tuple[float, str]) -> dict[str, Any]:
    elements = [{"t": t, "v": v} for t, v in values]
    return {"id": stream, "pending": 0, "basetime": BASETIME, "data": elements}


def no_tx(evse: int) -> str | None:
    return None


def book_of_three_phases() -> StreamBook:
    book = StreamBook()
    book.monitors_reported(monitor_report({11: "L1", 12: "L2", 13: "L3"}))
    for stream, monitor in ((1, 11), (2, 12), (3, 13)):
        assert book.opened(opened(stream, monitor)["constantStreamData"], BASE) == (ACCEPTED, None)
    return book


# --- the stream book, without I/O --------------------------------------------------------


def test_phase_streams_join_into_one_reading_per_time() -> None:
    book = book_of_three_phases()
    got: list[MeterReading] = []
    for stream, values in (
        (1, [(0, "16.0"), (1.0, "15.0")]),
        (2, [(0.2, "8.5"), (1.1, "7.0")]),  # sampled a little later: same readings
        (3, [(0, "0.0"), (1.0, "0.1")]),
    ):
        readings, ask = book.data("CP1", data(stream, *values), BASE, lambda evse: "T-1")
        assert ask is None
        got += readings
    assert [r.at for r in got] == [BASE, BASE + timedelta(seconds=1)]
    assert [r.current_a for r in got] == [
        {"L1": 16.0, "L2": 8.5, "L3": 0.0},
        {"L1": 15.0, "L2": 7.0, "L3": 0.1},
    ]
    assert {(r.connector_id, r.transaction_id) for r in got} == {("CP1/1", "T-1")}


def test_a_time_one_phase_never_gave_is_dropped_not_read_as_zero() -> None:
    book = book_of_three_phases()
    out = []
    out += book.data("CP1", data(1, (0, "16"), (1, "16")), BASE, no_tx)[0]
    out += book.data("CP1", data(2, (0, "16"), (1, "16")), BASE, no_tx)[0]
    out += book.data("CP1", data(3, (1, "16")), BASE, no_tx)[0]  # L3 lost t=0
    assert [(r.at, r.current_a) for r in out] == [
        (BASE + timedelta(seconds=1), {"L1": 16.0, "L2": 16.0, "L3": 16.0})
    ]
    assert book.pending[(1, "Current.Import")] == {}


def test_a_stream_without_phase_is_the_stations_single_figure() -> None:
    book = StreamBook()
    book.monitors_reported(monitor_report({21: None}, evse=2))
    book.opened(opened(5, 21)["constantStreamData"], BASE)
    [r] = book.data("CP1", data(5, (3, "12.5")), BASE, no_tx)[0]
    at = BASE + timedelta(seconds=3)
    assert (r.connector_id, r.at, r.current_a) == ("CP1/2", at, {"total": 12.5})


@pytest.mark.parametrize("bad", ["sixteen", "nan", "-1.0", ""])
def test_an_impossible_value_drops_the_whole_message(bad: str) -> None:
    book = book_of_three_phases()
    with pytest.raises(BadStream):
        book.data("CP1", data(1, (0, "16.0"), (1, bad)), BASE, no_tx)
    assert book.pending == {}  # nothing of it counts


def test_unknown_streams_and_monitors_are_asked_for_once_in_a_while() -> None:
    book = StreamBook()
    readings, ask = book.data("CP1", data(7, (0, "16")), BASE, no_tx)
    assert readings == [] and ask is not None and ask.action == "GetPeriodicEventStream"
    official(V21, ask.action, ask.payload)
    # not again at once
    assert book.data("CP1", data(7, (1, "16")), BASE, no_tx)[1] is None
    assert ask.on_answer is not None
    ask.on_answer({"constantStreamData": [opened(7, 31)["constantStreamData"]]})
    assert book.streams == {7: 31}
    readings, ask = book.data("CP1", data(7, (2, "16")), BASE, no_tx)
    assert readings == [] and ask is not None and ask.action == "GetMonitoringReport"
    official(V21, ask.action, ask.payload)
    later = BASE + timedelta(hours=1)
    assert book.data("CP1", data(7, (2, "16")), later, no_tx)[1] is not None


def test_streams_of_variables_we_do_not_read_are_taken_and_dropped() -> None:
    book = StreamBook()
    report = monitor_report({41: None})
    report["monitor"][0]["variable"] = {"name": "Temperature"}
    book.monitors_reported(report)
    assert book.opened(opened(9, 41)["constantStreamData"], BASE) == (ACCEPTED, None)
    assert book.data("CP1", data(9, (0, "35.5")), BASE, no_tx) == ([], None)


def test_a_station_opens_only_so_many_streams() -> None:
    book = StreamBook()
    for sid in range(MAX_STREAMS):
        assert book.opened(opened(sid, 1)["constantStreamData"], BASE)[0] == ACCEPTED
    reply, ask = book.opened(opened(MAX_STREAMS, 1)["constantStreamData"], BASE)
    official(V21, "OpenPeriodicEventStream", reply, response=True)
    assert reply["status"] == "Rejected" and ask is None
    assert book.opened(opened(0, 2)["constantStreamData"], BASE)[0] == ACCEPTED  # moved
    assert len(book.streams) == MAX_STREAMS and book.streams[0] == 2


# --- over a real socket ------------------------------------------------------------------


async def test_a_stations_current_streams_feed_meter_readings_over_a_socket() -> None:
    async with running() as (cs, rec), station(cs, "CP1", V21) as st:
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
            request = opened(stream, monitor)
            official(V21, "OpenPeriodicEventStream", request)
            reply = await st.call("OpenPeriodicEventStream", request)
            official(V21, "OpenPeriodicEventStream", reply, response=True)
            assert reply == {"status": "Accepted"}
        # the monitors were unknown: the central system asks for them (once)
        async with asyncio.timeout(3):
            while not st.sent("GetMonitoringReport"):
                await asyncio.sleep(0.02)
        [asked] = st.sent("GetMonitoringReport")
        official(V21, "GetMonitoringReport", asked)
        report = monitor_report({11: "L1", 12: "L2", 13: "L3"})
        official(V21, "NotifyMonitoringReport", report)
        assert await st.call("NotifyMonitoringReport", report) == {}

        for stream, value in ((1, "16.0"), (2, "15.5"), (3, "0.2")):
            frame = data(stream, (0, value), (10, value))
            official(V21, "NotifyPeriodicEventStream", frame)
            await st.send_raw(json.dumps([6, f"s-{stream}", "NotifyPeriodicEventStream", frame]))
        readings = await rec.wait_for(MeterReading, 2)
        # a bad one changes nothing and is not answered
        bad = data(1, (20, "16.0"), (21, "-3"))
        await st.send_raw(json.dumps([6, "s-9", "NotifyPeriodicEventStream", bad]))
        assert "currentTime" in await st.call("Heartbeat", {})
        assert st.raw.empty()

    assert [(r.connector_id, r.transaction_id, r.at, r.current_a) for r in readings] == [
        ("CP1/1", "T-1", BASE + timedelta(seconds=s), {"L1": 16.0, "L2": 15.5, "L3": 0.2})
        for s in (0, 10)
    ]
    assert len(rec.of(MeterReading)) == 2
