"""Sessions in the store: keyed by (station, transaction), ids never issued twice,
nothing acknowledged overwritten, databases of the previous schema still open,
and the files readable by their owner only."""

from __future__ import annotations

import sqlite3
import stat
from datetime import timedelta
from pathlib import Path

import pytest

from gridshare.controller import Controller
from gridshare.site.charge_modes import ChargeModes
from gridshare.site.settings import ControllerSettings
from gridshare.store import SessionConflict, SqliteStore
from ocpp_adapter.events import EvChargingNeeds, MeterReading, SessionEnded, SessionStarted
from optimizer.modes import ChargeMode
from tests.service.fakes import FakeGateway
from tests.service.sites import NOW, small_depot


def test_database_and_its_wal_and_shm_are_owner_only(tmp_path: Path):
    path = tmp_path / "fresh.db"
    s = SqliteStore(path)
    try:
        s.record_event(SessionStarted("CP1/1", "1", "secret-tag", 0.0, NOW))
        for name in ("fresh.db", "fresh.db-wal", "fresh.db-shm"):
            mode = stat.S_IMODE((tmp_path / name).stat().st_mode)
            assert mode == 0o600, (name, oct(mode))
    finally:
        s.close()


def test_an_existing_world_readable_database_is_made_owner_only(tmp_path: Path):
    path = tmp_path / "old.db"
    SqliteStore(path).close()
    path.chmod(0o644)
    s = SqliteStore(path)
    try:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    finally:
        s.close()


def test_transaction_ids_are_never_issued_twice_across_reopening(tmp_path: Path):
    path = tmp_path / "s.db"
    s = SqliteStore(path)
    first = [s.next_transaction_id() for _ in range(50)]
    # not closed: what was handed out was committed when it was handed out
    again = SqliteStore(path)
    try:
        later = [again.next_transaction_id() for _ in range(5)]
    finally:
        again.close()
        s.close()
    assert len(set(first + later)) == 55
    assert min(later) > max(first)


def test_a_conflicting_start_is_refused_and_the_stored_session_kept(tmp_path: Path):
    s = SqliteStore(tmp_path / "s.db")
    try:
        s.record_event(SessionStarted("CP1/1", "7", "tag-a", 1000.0, NOW))
        s.record_event(SessionStarted("CP1/1", "7", "tag-a", 1000.0, NOW))  # a resend: fine
        later = NOW + timedelta(minutes=5)
        with pytest.raises(SessionConflict, match="CP1/7"):
            s.record_event(SessionStarted("CP1/2", "7", "tag-b", 50.0, later))
        [kept] = s.active_sessions()
        assert (kept.connector_id, kept.id_tag, kept.meter_start_wh) == ("CP1/1", "tag-a", 1000.0)
        # a stop of an ended session changes nothing stored
        s.record_event(SessionEnded("7", 1500.0, later, "Local", "CP1/1", "CP1"))
        s.record_event(SessionEnded("7", 20.0, later + timedelta(hours=1), "Local", None, "CP1"))
        ended = s.session("CP1", "7")
        assert ended is not None and ended.meter_stop_wh == 1500.0 and ended.ended_at == later
    finally:
        s.close()


def test_two_stations_with_one_transaction_id_are_two_sessions(tmp_path: Path):
    s = SqliteStore(tmp_path / "s.db")
    try:
        s.record_event(SessionStarted("CP1/1", "TX-SAME", "a", 100.0, NOW))
        s.record_event(SessionStarted("CP2/1", "TX-SAME", "b", 200.0, NOW))
        s.record_event(
            MeterReading("CP2/1", NOW + timedelta(minutes=1), "TX-SAME", energy_wh=900.0)
        )
        s.record_event(SessionEnded("TX-SAME", 300.0, NOW, "Local", None, "CP1"))
        one, two = s.session("CP1", "TX-SAME"), s.session("CP2", "TX-SAME")
        assert one is not None and two is not None
        assert (one.connector_id, one.ended_at, one.energy_wh) == ("CP1/1", NOW, 300.0)
        assert (two.connector_id, two.ended_at, two.energy_wh) == ("CP2/1", None, 900.0)
        # each has an id of its own: the first keeps the transaction id
        assert (one.session_id, two.session_id) == ("TX-SAME", "TX-SAME@CP2")
        assert s.session_by_id("TX-SAME@CP2") == two
    finally:
        s.close()


V1_SESSIONS = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
INSERT INTO meta VALUES ('schema_version', '1');
CREATE TABLE sessions (
    transaction_id TEXT PRIMARY KEY, connector_id TEXT NOT NULL, id_tag TEXT,
    started_at TEXT NOT NULL, ended_at TEXT, meter_start_wh REAL, meter_stop_wh REAL,
    energy_wh REAL, departure TEXT, energy_need_wh REAL, ev_max_a REAL, ev_min_a REAL,
    stop_reason TEXT, offline INTEGER NOT NULL DEFAULT 0
, priority REAL);
CREATE INDEX sessions_open ON sessions (connector_id) WHERE ended_at IS NULL;
CREATE INDEX sessions_tag ON sessions (id_tag, ended_at);
"""


def test_a_database_of_the_previous_schema_opens_with_its_sessions(tmp_path: Path):
    path = tmp_path / "v1.db"
    db = sqlite3.connect(path)
    db.executescript(V1_SESSIONS)
    at = NOW.isoformat()
    db.executemany(
        "INSERT INTO sessions (transaction_id, connector_id, id_tag, started_at, "
        "meter_start_wh, energy_wh, priority) VALUES (?, ?, ?, ?, ?, ?, ?)",
        [
            ("1772470000", "CP1/1", "a", at, 10.0, 20.0, 2.0),
            ("uuid-x", "CP2/1", "b", at, 0.0, 5.0, None),
        ],
    )
    db.commit()
    db.close()

    s = SqliteStore(path)
    try:
        by_tx = {x.transaction_id: x for x in s.active_sessions()}
        assert by_tx["1772470000"].station_id == "CP1" and by_tx["1772470000"].priority == 2.0
        assert by_tx["uuid-x"].session_id == "uuid-x" and by_tx["uuid-x"].energy_wh == 5.0
        # ids the previous version issued are not issued again
        assert s.next_transaction_id() == 1772470001
        s.record_event(SessionStarted("CP2/1", "1772470000", "c", 0.0, NOW))
        assert s.session("CP2", "1772470000") is not None
    finally:
        s.close()
    reopened = SqliteStore(path)
    try:
        assert reopened.session_by_id("uuid-x") is not None
    finally:
        reopened.close()


async def test_a_start_resent_after_a_crash_supersedes_the_unanswered_one(tmp_path: Path):
    """Stored, then killed before the answer went: the station sends the same start
    again and gets a new id. After the next restart the later one is adopted and
    the other reported, not planned."""
    site = small_depot(2)
    store = SqliteStore(tmp_path / "s.db")
    for tx in ("5", "6"):
        store.record_event(SessionStarted("CP1/1", tx, "tag", 100.0, NOW))
    ctl = Controller(site, store, FakeGateway(site), clock=lambda: NOW)
    try:
        ctl.recover()
        assert ctl.sessions["CP1/1"].transaction_id == "6"
        [conflict] = ctl.status()["conflicts"]
        assert (conflict["kind"], conflict["transaction_id"]) == ("superseded", "5")
        assert ctl.conflicts_total == {"superseded": 1}
    finally:
        store.close()


async def test_a_superseded_session_ends_in_the_store_and_stays_ended(tmp_path: Path):
    """Recovery ends the earlier of two open sessions on a connector: it is not
    reported again after the next restart, and later needs reach the running one only."""
    site = small_depot(2)
    path = tmp_path / "s.db"
    store = SqliteStore(path)
    store.record_event(SessionStarted("CP1/1", "5", "tag", 100.0, NOW))
    later = NOW + timedelta(minutes=3)
    store.record_event(SessionStarted("CP1/1", "6", "tag", 100.0, later))
    try:
        Controller(site, store, FakeGateway(site), clock=lambda: NOW).recover()
    finally:
        store.close()

    store = SqliteStore(path)
    try:
        ctl = Controller(site, store, FakeGateway(site), clock=lambda: later)
        ctl.recover()
        assert ctl.status()["conflicts"] == []
        assert [s.transaction_id for s in store.active_sessions()] == ["6"]
        ended = store.session_by_id("5")
        assert ended is not None and ended.ended_at == later
        [entry] = [a for a in store.audit_log() if a["kind"] == "session_superseded"]
        assert entry["subject"] == "CP1/5" and entry["detail"]["by"] == "6"
        store.record_event(EvChargingNeeds("CP1/1", later, departure=None, energy_wh=5000.0))
        assert store.session_by_id("5").energy_need_wh is None  # type: ignore[union-attr]
    finally:
        store.close()
    db = sqlite3.connect(path)
    try:
        [(reason,)] = db.execute("SELECT stop_reason FROM sessions WHERE transaction_id = '5'")
        assert reason == "Superseded"
    finally:
        db.close()


async def test_an_end_naming_neither_station_nor_connector_ends_nothing(tmp_path: Path):
    """A transaction id is unique per station only: no session is guessed from it."""
    site = small_depot(2)
    store = SqliteStore(tmp_path / "s.db")
    ctl = Controller(site, store, FakeGateway(site), clock=lambda: NOW)
    try:
        start = SessionStarted("CP1/1", "9", "tag", 0.0, NOW)
        store.record_event(start)
        await ctl.on_event(start)
        end = SessionEnded("9", 10.0, NOW + timedelta(minutes=1))
        store.record_event(end)
        await ctl.on_event(end)
        assert [s.transaction_id for s in store.active_sessions()] == ["9"]
        assert "CP1/1" in ctl.sessions
    finally:
        store.close()


async def test_a_session_s_charging_mode_is_its_tag_s_until_set_and_kept_once_set(tmp_path: Path):
    """The idTag's default from ``[charge_modes]`` when it starts; the operator's
    choice once set, stored, and the same after a restart; an older database
    gains the column empty."""
    site = small_depot(2)
    path = tmp_path / "s.db"
    modes = ChargeModes(id_tags={"sunny": ChargeMode.SOLAR})
    settings = ControllerSettings(charge_modes=modes)
    store = SqliteStore(path)
    store.record_event(SessionStarted("CP1/1", "5", "sunny", 100.0, NOW))
    store.record_event(SessionStarted("CP2/1", "6", "other", 100.0, NOW))
    try:
        ctl = Controller(site, store, FakeGateway(site), clock=lambda: NOW, settings=settings)
        ctl.recover()
        assert ctl.sessions["CP1/1"].charge_mode is ChargeMode.SOLAR
        assert ctl.sessions["CP2/1"].charge_mode is ChargeMode.FAST
        assert store.session_by_id("5").charge_mode is None  # type: ignore[union-attr]
        ctl.update_session("CP1/1", charge_mode=ChargeMode.MIN_SOLAR, actor="alice")
        ctl.update_session("CP2/1", priority=3.0)  # the mode stays as it was
        assert store.session_by_id("5").charge_mode == "min+solar"  # type: ignore[union-attr]
        assert store.session_by_id("6").charge_mode is None  # type: ignore[union-attr]
        [entry] = [a for a in store.audit_log() if a["detail"].get("charge_mode")]
        assert entry["detail"]["actor"] == "alice"
    finally:
        store.close()
    store = SqliteStore(path)
    try:
        ctl = Controller(site, store, FakeGateway(site), clock=lambda: NOW, settings=settings)
        ctl.recover()
        assert ctl.sessions["CP1/1"].charge_mode is ChargeMode.MIN_SOLAR
        assert ctl.sessions["CP2/1"].charge_mode is ChargeMode.FAST
    finally:
        store.close()
    db = sqlite3.connect(path)
    try:
        db.execute("ALTER TABLE sessions DROP COLUMN charge_mode")  # as an older file had it
        db.execute("UPDATE meta SET value = '3' WHERE key = 'schema_version'")
        db.commit()
    finally:
        db.close()
    store = SqliteStore(path)
    try:
        assert store.session_by_id("5").charge_mode is None  # type: ignore[union-attr]
    finally:
        store.close()
