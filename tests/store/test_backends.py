"""The store on both engines: what is committed is there after reopening, sessions
keyed by (station, transaction), ids never issued twice, limits in force."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest

from gridshare.controller import Controller
from gridshare.store import DatabaseError, SessionConflict, UnsupportedDatabase, open_store
from gridshare.store.meter_readings import StoredReading, StoredSample
from ocpp_adapter.events import (
    ConnectorStatusChanged,
    EvChargingNeeds,
    MeterReading,
    SessionEnded,
    SessionStarted,
    StationBooted,
    StationConnected,
    StationDisconnected,
)
from tests.service.fakes import FakeGateway
from tests.service.sites import NOW, small_depot
from tests.store.engines import Engine, fresh_schema


def test_events_survive_reopening(engine: Engine):
    s = engine.open()
    s.record_event(StationConnected("CP1", "ocpp2.0.1", NOW))
    s.record_event(StationBooted("CP1", "acme", "x1", NOW, firmware="1.2"))
    s.record_event(ConnectorStatusChanged("CP1/1", "Charging", NOW))
    s.record_event(SessionStarted("CP1/1", "tx-1", "tag-9", 100.0, NOW))
    s.record_event(
        EvChargingNeeds("CP1/1", NOW, departure=NOW + timedelta(hours=3), energy_wh=20_000)
    )
    s.record_event(StationDisconnected("CP1", NOW + timedelta(minutes=1)))
    s.close()

    reopened = engine.open()
    try:
        [st] = reopened.stations()
        assert (st["vendor"], st["connected"], st["firmware"]) == ("acme", 0, "1.2")
        [sess] = reopened.active_sessions()
        assert sess.transaction_id == "tx-1" and sess.id_tag == "tag-9"
        assert sess.departure == NOW + timedelta(hours=3) and sess.energy_need_wh == 20_000
    finally:
        reopened.close()


def test_meter_values_keep_the_last_and_one_minute_aggregates(engine: Engine):
    s = engine.open()
    try:
        s.record_event(SessionStarted("CP1/1", "tx-1", None, 1000.0, NOW))
        t0 = NOW.replace(second=0)
        for k, (amps, wh) in enumerate([(10.0, 1100.0), (20.0, 1200.0), (30.0, 1150.0)]):
            s.record_event(
                MeterReading(
                    "CP1/1",
                    t0 + timedelta(seconds=20 * k),
                    transaction_id="tx-1",
                    current_a={"L1": amps, "L2": amps},
                    total_power_w=amps * 460,
                    energy_wh=wh,
                )
            )
        s.record_event(
            MeterReading(
                "CP1/1", t0 + timedelta(minutes=1), current_a={"L1": 5.0}, energy_wh=1300.0
            )
        )
        s.record_event(MeterReading("CP1/1", t0, current_a={"L1": 99.0}))  # late
        last = s.meter_last("CP1/1")
        assert last is not None and last["current_a"] == {"L1": 5.0}
        first, second = s.meter_minutes("CP1/1")[:2]
        assert first["samples"] == 3 + 1 and first["current_a"]["L1"] == (60 + 99) / 4
        assert first["power_w"] == 20 * 460 and first["energy_wh"] == 1200.0
        assert second["samples"] == 1 and second["energy_wh"] == 1300.0
        [sess] = s.active_sessions()
        assert sess.energy_wh == 1300.0 and sess.delivered_wh == 300.0
        energy = s.meter_energy(t0, t0 + timedelta(minutes=2))
        assert energy == {"CP1/1": 100.0}  # from the first minute's highest register
        s.record_event(SessionEnded("tx-1", 1400.0, t0 + timedelta(hours=1), station_id="CP1"))
        assert s.active_sessions() == [] and s.past_sessions("nobody") == []
    finally:
        s.close()


def test_profiles_accepted_become_limits_in_force_the_last_of_a_batch_winning(engine: Engine):
    s = engine.open()
    try:
        s.record_event(SessionStarted("CP1/1", "tx-1", None, 0.0, NOW))
        a, b, c = s.profiles_sent(
            [
                ("CP1", "CP1/1", "tx", "tx-1", NOW, [(0, 16.0), (900, 10.0)]),
                ("CP1", None, "tx_default", None, NOW, [(0, 8.0)]),
                ("CP1", "CP1/1", "tx", "tx-1", NOW, [(0, 12.0)]),
            ],
            NOW,
        )
        assert a < b < c
        # two for one connector and purpose in one batch: the later is in force
        s.profiles_answered([(a, "accepted", ""), (b, "accepted", ""), (c, "accepted", "")], NOW)
        limits = {(lim.connector_id, lim.purpose): lim.periods for lim in s.limits_in_force()}
        assert limits == {("CP1/1", "tx"): ((0, 12.0),), ("CP1", "tx_default"): ((0, 8.0),)}
        d = s.profile_sent("CP1", "CP1/1", "tx", "tx-1", NOW, [(0, 32.0)], NOW)
        [maybe] = s.unanswered_profiles()
        assert maybe.periods == ((0, 32.0),)
        s.profile_answered(d, "rejected", "busy", NOW)
        assert s.unanswered_profiles() == []
        accepted = [e for e in s.audit_log() if e["kind"] == "limit_accepted"]
        assert [e["detail"] for e in accepted] == [
            {"purpose": "tx", "periods": [[0, 12.0]]},
            {"purpose": "tx_default", "periods": [[0, 8.0]]},
            {"purpose": "tx", "periods": [[0, 16.0], [900, 10.0]]},
        ]
        assert s.last_profiles()["CP1/1"]["outcome"] == "rejected"
        s.forget_limit("CP1", "tx_default")
        assert [lim.purpose for lim in s.limits_in_force()] == ["tx"]
        s.put_state("book", {"v": 1})
        s.put_state("book", {"v": 2})
        assert s.get_state("book") == {"v": 2} and s.get_state("other") is None
        assert [e["id"] for e in s.audit_page(2)] == sorted(
            (e["id"] for e in s.audit_page(10)), reverse=True
        )[:2]
    finally:
        s.close()


def test_transaction_ids_are_never_issued_twice_by_two_writers(engine: Engine):
    """Two stores on one database (two nodes on one PostgreSQL), each in a thread."""
    engine.open().close()
    issued: list[list[int]] = [[], []]
    failed: list[BaseException] = []

    def take(k: int) -> None:
        store = engine.open()
        try:
            for _ in range(40):
                issued[k].append(store.next_transaction_id())
        except BaseException as e:
            failed.append(e)
        finally:
            store.close()

    threads = [threading.Thread(target=take, args=(k,)) for k in (0, 1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not failed and not any(t.is_alive() for t in threads)
    every = issued[0] + issued[1]
    assert len(every) == 80 and len(set(every)) == 80
    again = engine.open()
    try:
        assert again.next_transaction_id() > max(every)
    finally:
        again.close()


def test_a_conflicting_start_is_refused_and_two_stations_may_share_an_id(engine: Engine):
    s = engine.open()
    try:
        s.record_event(SessionStarted("CP1/1", "7", "tag-a", 1000.0, NOW))
        s.record_event(SessionStarted("CP1/1", "7", "tag-a", 1000.0, NOW))  # a resend: fine
        later = NOW + timedelta(minutes=5)
        with pytest.raises(SessionConflict, match="CP1/7"):
            s.record_event(SessionStarted("CP1/2", "7", "tag-b", 50.0, later))
        s.record_event(SessionStarted("CP2/1", "7", "tag-c", 200.0, NOW))
        one, two = s.session("CP1", "7"), s.session("CP2", "7")
        assert one is not None and two is not None
        assert (one.session_id, two.session_id) == ("7", "7@CP2")
        assert s.session_by_id("7@CP2") == two
        s.record_event(SessionEnded("7", 1500.0, later, "Local", "CP1/1", "CP1"))
        s.record_event(SessionEnded("7", 20.0, later + timedelta(hours=1), "Local", None, "CP1"))
        ended = s.session("CP1", "7")
        assert ended is not None and ended.meter_stop_wh == 1500.0 and ended.ended_at == later
        assert [x.session_id for x in s.recent_sessions()] == ["7"]
    finally:
        s.close()


def test_open_sessions_come_by_start_then_as_stored(engine: Engine):
    s = engine.open()
    try:
        for tx in ("9", "3", "5"):  # one start: stored order
            s.record_event(SessionStarted(f"CP{tx}/1", tx, None, 0.0, NOW))
        s.record_event(SessionStarted("CP1/1", "1", None, 0.0, NOW - timedelta(seconds=1)))
        # with and without microseconds: ISO text in byte order is time order
        s.record_event(SessionStarted("CP2/1", "2", None, 0.0, NOW + timedelta(microseconds=5)))
        assert [x.transaction_id for x in s.active_sessions()] == ["1", "9", "3", "5", "2"]
    finally:
        s.close()


async def test_a_superseded_session_ends_in_the_store_and_stays_ended(engine: Engine):
    site = small_depot(2)
    store = engine.open()
    store.record_event(SessionStarted("CP1/1", "5", "tag", 100.0, NOW))
    later = NOW + timedelta(minutes=3)
    store.record_event(SessionStarted("CP1/1", "6", "tag", 100.0, later))
    try:
        Controller(site, store, FakeGateway(site), clock=lambda: NOW).recover()
    finally:
        store.close()
    store = engine.open()
    try:
        ctl = Controller(site, store, FakeGateway(site), clock=lambda: later)
        ctl.recover()
        assert ctl.status()["conflicts"] == []
        assert [s.transaction_id for s in store.active_sessions()] == ["6"]
        [entry] = [a for a in store.audit_log() if a["kind"] == "session_superseded"]
        assert entry["subject"] == "CP1/5" and entry["detail"]["by"] == "6"
        store.update_session("6", priority=3.0)
        assert store.session_by_id("6").priority == 3.0  # type: ignore[union-attr]
    finally:
        store.close()
    assert engine.value("SELECT stop_reason FROM sessions WHERE transaction_id = '5'") == (
        "Superseded"
    )


def test_site_meter_readings_and_their_groups_roll_ups(engine: Engine):
    s = engine.open()
    try:
        for k in range(4):
            at = NOW.replace(minute=0, second=0) + timedelta(minutes=5 * k)
            reading = StoredReading("M1", at, at, (10.0 + k, 5.0, 1.0))
            sample = StoredSample("grid", at, (10.0 + k, 5.0, 1.0))
            s.record_site_meter(reading, [sample])
            if k == 3:  # a repeat of one time replaces it
                s.record_site_meter(StoredReading("M1", at, at, (1.0, 1.0, 1.0)), [])
        assert [r.amps[0] for r in s.site_meter_readings("M1", 10)] == [10.0, 11.0, 12.0, 1.0]
        assert [x.amps[0] for x in s.group_non_ev_samples("grid", 2)] == [12.0, 13.0]
        rollups = s.group_non_ev_rollups("grid", NOW - timedelta(hours=1))
        assert [(r.samples, r.mean_a[0], r.max_a[0]) for r in rollups] == [
            (3, 11.0, 12.0),
            (1, 13.0, 13.0),
        ]
    finally:
        s.close()


def test_database_urls_name_their_backend(engine: Engine):
    store = open_store(engine.url)
    store.close()
    with pytest.raises(UnsupportedDatabase, match="sqlite, postgresql"):
        open_store("mysql://db/gridshare")


def test_an_unreachable_postgresql_is_a_clear_error_without_its_password():
    with pytest.raises(DatabaseError, match="cannot connect") as caught:
        open_store("postgresql://gs:s3cret@127.0.0.1:1/gridshare?connect_timeout=3")
    assert "s3cret" not in str(caught.value) and "gs:***@127.0.0.1:1" in str(caught.value)


def test_a_lost_postgresql_connection_is_opened_again(postgres_admin: str):
    """The server ends the store's connection (a restart, a failover): the next
    transaction runs on a new one."""
    import psycopg

    with fresh_schema(postgres_admin) as url:
        store = Engine("postgresql", url).open()
        try:
            store.audit(NOW, "note", "x", {"k": 1})
            pid = store._db.execute("SELECT pg_backend_pid()").fetchone()[0]
            with psycopg.connect(postgres_admin, autocommit=True) as admin:
                admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
            store.audit(NOW, "note", "x", {"k": 2})
            assert [e["detail"]["k"] for e in store.audit_log()] == [2, 1]
            assert store._db.execute("SELECT pg_backend_pid()").fetchone()[0] != pid
        finally:
            store.close()


def test_a_connection_lost_inside_a_transaction_fails_that_one_only(
    postgres_admin: str, caplog: pytest.LogCaptureFixture
):
    import psycopg

    with fresh_schema(postgres_admin) as url:
        store = Engine("postgresql", url).open()
        try:
            store.record_event(SessionStarted("CP1/1", "tx-1", None, 0.0, NOW))
            pid = store._db.execute("SELECT pg_backend_pid()").fetchone()[0]
            with pytest.raises(DatabaseError), store._tx() as db:
                db.execute("UPDATE sessions SET priority = 9")
                with psycopg.connect(postgres_admin, autocommit=True) as admin:
                    admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
                db.execute("UPDATE sessions SET energy_wh = 9")
            [s] = store.active_sessions()  # nothing of the broken transaction was kept
            assert (s.priority, s.energy_wh) == (None, 0.0)
            assert "connection lost" in caplog.text
        finally:
            store.close()
