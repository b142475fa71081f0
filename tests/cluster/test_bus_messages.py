"""The bus's plain parts without a server: ids made subject tokens, settings
checked, the fencing book, events and commands parsed strictly."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gridshare.cluster.commands import Command
from gridshare.cluster.errors import BadBusMessage, BusConfigError, StaleFencingToken
from gridshare.cluster.events import StationEvent
from gridshare.cluster.fencing import FencingBook
from gridshare.cluster.lease import encode_record, parse_record
from gridshare.cluster.names import Subjects, decode_id, encode_id
from gridshare.cluster.settings import BusSettings


@given(st.text(min_size=1, max_size=40))
def test_any_id_is_one_safe_token_and_comes_back(value: str) -> None:
    token = encode_id(value)
    assert re.fullmatch(r"[A-Za-z0-9_=-]+", token)
    assert decode_id(token) == value


@given(st.text(min_size=1, max_size=20), st.text(min_size=1, max_size=20))
def test_distinct_ids_never_share_a_token(a: str, b: str) -> None:
    assert (encode_id(a) == encode_id(b)) == (a == b)


def test_subjects_keep_dots_of_ids_out_of_the_hierarchy() -> None:
    subjects = Subjects("gs")
    assert subjects.event("depot", "CP.01") == "gs.ev.depot.CP=2E01"
    assert subjects.command("a b>") == "gs.cmd.a=20b=3E"
    with pytest.raises(BadBusMessage):
        subjects.command("")


@pytest.mark.parametrize("token", ["CP.1", "=2", "=ZZ", "=FF"])
def test_a_token_not_made_by_encode_is_refused(token: str) -> None:
    with pytest.raises(BadBusMessage):
        decode_id(token)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"url": "127.0.0.1:4222"}, "expected nats://"),
        ({"prefix": "gs.*"}, "bus prefix"),
        ({"stream": "a.b"}, "bus stream"),
        ({"bucket": "leases!"}, "bus bucket"),
        ({"lease_ttl_s": 0}, "lease_ttl_s must be positive"),
        ({"lease_ttl_s": 3, "lease_renew_s": 2}, "at most half"),
        ({"redeliver_delay_s": -1}, "cannot be negative"),
    ],
)
def test_settings_that_cannot_work_are_one_clear_line(change: dict, message: str) -> None:
    with pytest.raises(BusConfigError, match=message) as err:
        BusSettings(**change)
    assert "\n" not in str(err.value)


def test_the_fencing_book_admits_the_newest_token_only() -> None:
    book = FencingBook()
    book.admit("depot", 4)
    book.admit("depot", 4)  # the same planner again
    book.admit("yard", 2)  # sites are fenced apart
    book.observe("depot", 9)  # a successor, seen in the lease bucket
    book.observe("depot", 6)  # an older record read late changes nothing
    with pytest.raises(StaleFencingToken, match="token 4 for site 'depot' is older than 9"):
        book.admit("depot", 4)
    book.admit("depot", 11)
    assert (book.newest("depot"), book.newest("yard"), book.newest("x")) == (11, 2, None)


def test_a_lease_record_names_its_holder() -> None:
    assert parse_record(encode_record("n1", None), 17).token == 17  # the acquiring write
    assert parse_record(encode_record("n1", 17), 40).token == 17  # a renewal keeps it
    for bad in (b"", b"[]", b'{"node": 1, "token": 2}', b'{"node": "n", "token": "2"}'):
        with pytest.raises(BadBusMessage):
            parse_record(bad, 3)


def test_an_event_round_trips_and_a_wrong_one_is_refused() -> None:
    event = StationEvent("depot", "CP1", "19", "StatusNotification", {"status": "Charging"})
    assert StationEvent.from_bytes(event.to_bytes()) == event
    for bad in (b"x", b"[]", b'{"site": "depot"}', event.to_bytes().replace(b'"19"', b"19")):
        with pytest.raises(BadBusMessage):
            StationEvent.from_bytes(bad)


def test_an_events_dedup_id_is_station_message_and_content() -> None:
    a = StationEvent("depot", "CP1", "19", "MeterValues", {"wh": 1})
    assert (
        a.dedup_id
        == StationEvent("depot", "CP1", "19", "MeterValues", {"wh": 1}, "t", "n2").dedup_id
    )
    assert a.dedup_id != StationEvent("depot", "CP1", "19", "MeterValues", {"wh": 2}).dedup_id
    assert a.dedup_id != StationEvent("depot", "CP2", "19", "MeterValues", {"wh": 1}).dedup_id
    assert a.dedup_id != StationEvent("depot", "CP1", "20", "MeterValues", {"wh": 1}).dedup_id


def test_a_command_round_trips_and_a_wrong_one_is_refused() -> None:
    cmd = Command("depot", 12, "SetChargingProfile", {"connectorId": 1})
    assert Command.from_bytes(cmd.to_bytes()) == cmd
    for bad in (
        b'{"site": "depot", "token": true, "action": "X", "payload": {}}',
        b'{"site": "", "token": 1, "action": "X", "payload": {}}',
        b'{"site": "depot", "token": 1, "action": "X", "payload": [], "more": 1}',
    ):
        with pytest.raises(BadBusMessage):
            Command.from_bytes(bad)
