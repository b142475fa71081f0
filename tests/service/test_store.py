"""The store: what is committed is there after reopening; aggregates and limits are right."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from gridshare.store import SqliteStore, open_store
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
from tests.service.sites import NOW


def test_events_survive_reopening(tmp_path: Path):
    path = tmp_path / "s.db"
    s = SqliteStore(path)
    s.record_event(StationConnected("CP1", "ocpp2.0.1", NOW))
    s.record_event(StationBooted("CP1", "acme", "x1", NOW, firmware="1.2"))
    s.record_event(ConnectorStatusChanged("CP1/1", "Charging", NOW))
    s.record_event(SessionStarted("CP1/1", "tx-1", "tag-9", 100.0, NOW))
    s.record_event(
        EvChargingNeeds("CP1/1", NOW, departure=NOW + timedelta(hours=3), energy_wh=20_000)
    )
    s.record_event(StationDisconnected("CP1", NOW + timedelta(minutes=1)))
    s.close()

    reopened = open_store(f"sqlite:///{path}")
    try:
        [st] = reopened.stations()
        assert (st["vendor"], st["connected"], st["firmware"]) == ("acme", 0, "1.2")
        [sess] = reopened.active_sessions()
        assert sess.transaction_id == "tx-1" and sess.id_tag == "tag-9"
        assert sess.departure == NOW + timedelta(hours=3) and sess.energy_need_wh == 20_000
    finally:
        reopened.close()


def test_meter_values_keep_the_last_and_one_minute_aggregates(tmp_path: Path):
    s = SqliteStore(tmp_path / "s.db")
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
        # a late reading never replaces a newer last value
        s.record_event(MeterReading("CP1/1", t0, current_a={"L1": 99.0}))
        last = s.meter_last("CP1/1")
        assert last is not None and last["current_a"] == {"L1": 5.0}
        first, second = s.meter_minutes("CP1/1")[:2]
        assert first["samples"] == 3 + 1  # the late reading still counts in its minute
        assert second["samples"] == 1 and second["energy_wh"] == 1300.0
        # the register only grows: the session keeps its highest value
        [sess] = s.active_sessions()
        assert sess.energy_wh == 1300.0 and sess.delivered_wh == 300.0
        s.record_event(SessionEnded("tx-1", 1400.0, t0 + timedelta(hours=1), station_id="CP1"))
        assert s.active_sessions() == []
        assert s.past_sessions("nobody") == []
    finally:
        s.close()


def test_profiles_accepted_become_limits_in_force_and_unanswered_ones_are_kept(tmp_path: Path):
    s = SqliteStore(tmp_path / "s.db")
    try:
        s.record_event(SessionStarted("CP1/1", "tx-1", None, 0.0, NOW))
        [a, b] = s.profiles_sent(
            [
                ("CP1", "CP1/1", "tx", "tx-1", NOW, [(0, 16.0), (900, 10.0)]),
                ("CP1", None, "tx_default", None, NOW, [(0, 8.0)]),
            ],
            NOW,
        )
        s.profiles_answered([(a, "accepted", ""), (b, "accepted", "")], NOW)
        c = s.profile_sent("CP1", "CP1/1", "tx", "tx-1", NOW, [(0, 32.0)], NOW)
        limits = {(lim.connector_id, lim.purpose): lim.periods for lim in s.limits_in_force()}
        assert limits == {
            ("CP1/1", "tx"): ((0, 16.0), (900, 10.0)),
            ("CP1", "tx_default"): ((0, 8.0),),
        }
        # sent, never answered (the process died): it may be in force
        [maybe] = s.unanswered_profiles()
        assert maybe.periods == ((0, 32.0),)
        s.profile_answered(c, "rejected", "busy", NOW)
        assert s.unanswered_profiles() == []
        kinds = [e["kind"] for e in s.audit_log()]
        assert kinds.count("limit_accepted") == 2
        s.put_state("book", {"v": 1})
        assert s.get_state("book") == {"v": 1} and s.get_state("other") is None
    finally:
        s.close()


def test_database_urls(tmp_path: Path):
    for url in (f"sqlite:///{tmp_path}/a.db", str(tmp_path / "b.db"), "sqlite://:memory:"):
        s = open_store(url)
        s.close()
    assert (tmp_path / "a.db").exists() and (tmp_path / "b.db").exists()
    s = open_store(f"sqlite:///{tmp_path}/c.db?synchronous=FULL")
    s.close()
