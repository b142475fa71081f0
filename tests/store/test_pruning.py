"""Pruning: each table to its horizon, in small steps, keeping what is still needed
(on both engines; giving pages back to the file system is SQLite's alone)."""

from __future__ import annotations

import asyncio
import os
import time
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

from gridshare.dso_reports import ENERGY_STATE
from gridshare.retention import Retention, RetentionConfig, run_retention
from gridshare.store import SqliteStore, pruning
from ocpp_adapter.events import SessionEnded, SessionStarted
from optimizer.site import Site
from tests.store.engines import Engine
from tests.store.helpers import T0, a_plan
from tests.store.test_rollups import run_pass

DAY = timedelta(days=1)


def _sixty_two_plans(engine: Engine, full_plan_every: timedelta) -> None:
    store = engine.open()
    store.full_plan_every = full_plan_every
    try:
        for m in range(62):
            store.save_plan(a_plan(4, 96, float(m)), T0 + timedelta(minutes=m), f"r{m}")
    finally:
        store.close()


def _whole(engine: Engine) -> tuple[list[str], list[dict[str, Any]], dict[str, Any]]:
    store = engine.open()
    try:
        after = store.plans_since(T0, arrays=True)
        latest = store.last_plan()
    finally:
        store.close()
    assert latest is not None
    return [p["reason"] for p in after if p["current_a"] is not None], after, latest


def test_plans_are_written_with_their_figures_and_one_whole_array_a_quarter_hour(
    engine: Engine,
):
    _sixty_two_plans(engine, timedelta(minutes=15))
    whole, after, latest = _whole(engine)
    assert whole == ["r0", "r15", "r30", "r45", "r60", "r61"]  # and the latest
    assert len(after) == 62
    assert np.array_equal(latest["current_a"], a_plan(4, 96, 61.0).current_a.astype(np.float32))
    assert after[15]["now_a"] == {f"CP{i}/1": 15.2 for i in range(4)}
    assert after[0]["now_a"] == {f"CP{i}/1": 0.2 for i in range(4)}
    assert after[16]["summary"]["status"] == "optimal" and after[16]["current_a"] is None
    # a restart: the latest counts as kept whole, the rate goes on from it
    store = engine.open()
    try:
        for m in (62, 70, 77):
            store.save_plan(a_plan(4, 96, float(m)), T0 + timedelta(minutes=m), f"r{m}")
    finally:
        store.close()
    whole, _, _ = _whole(engine)
    assert whole == ["r0", "r15", "r30", "r45", "r60", "r61", "r77"]


def test_group_totals_of_the_dispatched_slot_are_in_the_summary(engine: Engine):
    site = Site.model_validate(
        {
            "site": {"name": "s"},
            "groups": [
                {"id": "grid", "limit_a": 100},
                {"id": "p1", "parent": "grid", "limit_a": 50},
            ],
            "chargers": [
                {"id": "CP0", "group": "p1", "connectors": [{"id": 1, "max_current_a": 32}]},
                {"id": "CP1", "group": "grid", "connectors": [{"id": 1, "max_current_a": 32}]},
            ],
        }
    )
    store = engine.open()
    try:
        store.save_plan(a_plan(2, 8, 10.0), T0, "r", site)
        saved = store.last_plan()
    finally:
        store.close()
    assert saved is not None
    groups = saved["summary"]["groups_now"]
    assert groups["p1"] == {"L1": 10.25, "kW": round(10.25 * 0.69, 2)}
    assert groups["grid"] == {"L1": 20.5, "kW": round(2 * 10.25 * 0.69, 2)}


def test_plans_written_whole_before_are_thinned_to_the_same_rate(engine: Engine):
    _sixty_two_plans(engine, timedelta(0))  # as a database before plans were thinned
    assert len(_whole(engine)[0]) == 62
    store = engine.open()
    try:
        before = store.plans_since(T0)
        last = store.last_plan()
    finally:
        store.close()
    jobs = run_pass(engine, T0 + timedelta(minutes=62), batch_rows=250)
    assert jobs.count("thin plans") == 7  # ten plans a step
    whole, after, latest = _whole(engine)
    assert last is not None
    assert np.array_equal(latest.pop("current_a"), last.pop("current_a")) and latest == last
    assert [{**p, "current_a": None} for p in after] == before  # figures, every plan
    assert whole == ["r0", "r15", "r30", "r45", "r60", "r61"]
    # past the horizon every plan goes, the latest stays
    run_pass(engine, T0 + timedelta(days=31))
    store = engine.open()
    try:
        assert store.plan_count() == 1 and store.last_plan() is not None
    finally:
        store.close()


def test_pruning_keeps_running_sessions_and_those_a_dso_report_has_not_counted(engine: Engine):
    store = engine.open()
    try:
        for n in range(30):
            store.record_event(SessionStarted(f"CP{n}/1", f"tx-{n}", "tag", 0.0, T0))
            if n != 7:  # tx-7 still runs
                store.record_event(SessionEnded(f"tx-{n}", 10.0, T0 + DAY, station_id=f"CP{n}"))
        # the energy counter saved tx-3 as open: its end is not yet counted for the DSO
        store.put_state(ENERGY_STATE, {"wh": {}, "open": [["CP3", "tx-3", "CP3/1", 5.0]]})
    finally:
        store.close()
    jobs = run_pass(engine, T0 + 400 * DAY, batch_rows=8)
    assert jobs.count("sessions") == 4
    store = engine.open()
    try:
        left = {s.transaction_id for s in store.recent_sessions()}
        assert left == {"tx-3"}
        assert [s.transaction_id for s in store.active_sessions()] == ["tx-7"]
    finally:
        store.close()


def test_profiles_audit_and_forecasts_go_past_their_horizons_unless_still_needed(
    engine: Engine,
):
    old, recent = T0, T0 + 40 * DAY
    store = engine.open()
    try:
        store.record_event(SessionStarted("CP1/1", "tx-1", None, 0.0, old))
        store.record_event(SessionStarted("CP2/1", "tx-2", None, 0.0, old))
        store.record_event(SessionEnded("tx-2", 0.0, old, station_id="CP2"))
        sent = store.profiles_sent(
            [("CP2", "CP2/1", "tx", "tx-2", old, [(0, 6.0)])] * 5
            + [("CP1", "CP1/1", "tx", "tx-1", old, [(0, 8.0)])] * 3
            + [("CP3", None, "tx_default", None, old, [(0, 10.0)])] * 2,
            old,
        )
        store.profiles_answered([(sent[-1], "accepted", "")], old)  # in force
        for k in range(25):
            store.audit(old + timedelta(minutes=k), "note", "x", {"k": k})
            store.save_forecast("g", "capacity", "dso", old, [])
        store.audit(recent, "note", "x", {"k": "recent"})
        store.save_forecast("g", "capacity", "dso", recent, [])
    finally:
        store.close()
    jobs = run_pass(engine, recent + DAY, batch_rows=10, events="30d", oscp_messages="30d")
    assert jobs.count("audit") == 3 and jobs.count("forecasts") == 3
    store = engine.open()
    try:
        profiles = store._db.execute("SELECT id FROM profiles ORDER BY id").fetchall()
        kept = [r[0] for r in profiles]
        # the last of CP2/1 (the operator's view), every one of the running tx-1, the one in force
        assert kept == [sent[4], *sent[5:8], sent[9]]
        assert [e["detail"] for e in store.audit_log()] == [{"k": "recent"}]
        assert store._db.execute("SELECT COUNT(*) FROM forecasts").fetchone()[0] == 1
        assert len(store.unanswered_profiles()) == 3
        assert [lim.periods for lim in store.limits_in_force()] == [((0, 10.0),)]
    finally:
        store.close()


def test_accepted_limits_leave_the_audit_with_their_profiles_other_events_stay(
    engine: Engine,
):
    store = engine.open()
    try:
        sent = store.profiles_sent(
            [("CP1", "CP1/1", "tx", "tx-1", T0, [(0, 8.0)])] * 12
            + [("CP1", "CP1/1", "tx", "tx-1", T0 + 40 * DAY, [(0, 9.0)])],
            T0,
        )
        store.profiles_answered([(p, "accepted", "") for p in sent[:12]], T0)
        store.profiles_answered([(sent[12], "accepted", "")], T0 + 40 * DAY)
        store.audit(T0, "override_set", "grid", {"k": 1})
    finally:
        store.close()
    jobs = run_pass(engine, T0 + 41 * DAY, batch_rows=5, profiles="30d", events="365d")
    assert jobs.count("accepted limits") == 3
    store = engine.open()
    try:
        kinds = [(e["kind"], e["at"][:10]) for e in store.audit_log()]
    finally:
        store.close()
    assert sorted(kinds) == [("limit_accepted", "2026-02-10"), ("override_set", "2026-01-01")]


def test_the_file_gives_its_pages_back(tmp_path: Path):
    path = tmp_path / "g.db"
    engine = Engine("sqlite", str(path))
    store = SqliteStore(path)
    store.full_plan_every = timedelta(0)  # as written before plans were thinned
    rng = np.random.default_rng(1)
    try:
        for m in range(120):
            plan = replace(a_plan(60, 96, 0.0), current_a=rng.uniform(6, 32, (60, 96)))
            store.save_plan(plan, T0 + timedelta(minutes=m), "tick")
    finally:
        store.close()
    big = os.path.getsize(path)
    jobs = run_pass(engine, T0 + timedelta(minutes=120))
    assert "vacuum" in jobs
    SqliteStore(path).close()  # checkpoints the log into the file
    assert os.path.getsize(path) < big / 3  # 9 whole arrays of 120 left


def test_the_loop_prunes_in_a_worker_thread_until_stopped(engine: Engine):
    store = engine.open()
    for k in range(40):
        store.audit(T0, "note", "x", {"k": k})
    config = RetentionConfig(events="1d", batch_rows=7, pause_s=0.0, check_every="1s")

    async def main() -> None:
        stop = asyncio.Event()
        task = asyncio.create_task(run_retention(store, config, lambda: T0 + 2 * DAY, stop))
        for _ in range(200):
            await asyncio.sleep(0.02)
            if not store.audit_log():
                break
        stop.set()
        await asyncio.wait_for(task, 5)

    try:
        asyncio.run(main())
        assert store.audit_log() == []
    finally:
        store.close()


def test_each_step_stays_within_its_batch(engine: Engine):
    store = engine.open()
    try:
        for k in range(23):
            store.audit(T0, "note", "x", {"k": k})
    finally:
        store.close()
    retention = Retention(engine.url, RetentionConfig(events="1d", batch_rows=5))
    try:
        reports = []
        while not (report := retention.prune_step(T0 + 2 * DAY)).done:
            reports.append(report)
    finally:
        retention.close()
    assert [r.rows for r in reports if r.job == "audit"] == [5, 5, 5, 5, 3]
    assert max(r.seconds for r in reports) == reports[-1].longest_s == retention.longest_step_s


def test_passes_and_horizons_follow_the_services_accelerated_clock(engine: Engine):
    """An hour a wall second: passes every 10 simulated minutes find the plans
    past their 1 h horizon about a wall second after they were made (the wall
    clock, years before them, would never)."""
    future = T0.replace(year=2031)
    store = engine.open()
    for m in range(10):
        store.save_plan(a_plan(2, 8, 1.0), future + timedelta(minutes=m), f"r{m}")
    config = RetentionConfig(plans="1h", check_every="10m", pause_s=0.0)
    wall0 = time.monotonic()

    def clock() -> datetime:
        return future + timedelta(hours=time.monotonic() - wall0)

    async def main() -> tuple[int, float | None]:
        stop = asyncio.Event()
        task = asyncio.create_task(run_retention(store, config, clock, stop))
        await asyncio.sleep(0.3)  # 18 simulated minutes: nothing is past 1 h yet
        early = store.plan_count()
        gone_at = None
        while time.monotonic() - wall0 < 10 and gone_at is None:
            await asyncio.sleep(0.02)
            if store.plan_count() == 1:
                gone_at = time.monotonic() - wall0
        stop.set()
        await asyncio.wait_for(task, 5)
        return early, gone_at

    try:
        early, gone_at = asyncio.run(main())
    finally:
        store.close()
    assert early == 10
    # due at 1h09 simulated; a pass at most 10 simulated minutes later (and a step)
    assert gone_at is not None and 1.1 < gone_at < 1.6, gone_at


def test_one_node_at_a_time_prunes_a_shared_database(engine: Engine):
    store = engine.open()
    try:
        for k in range(6):
            store.audit(T0, "note", "x", {"k": k})
    finally:
        store.close()
    config = RetentionConfig(events="1d", batch_rows=5)
    first, second = Retention(engine.url, config), Retention(engine.url, config)
    try:
        if engine.name == "postgresql":  # the first node is in the middle of a step
            first._db.execute(first._db.dialect.begin)
            assert pruning.claim(first._db)
            assert second.prune_step(T0 + 2 * DAY).done  # nothing done: another node is on it
            first._db.execute("ROLLBACK")
        reports = [second.prune_step(T0 + 2 * DAY) for _ in range(3)]
    finally:
        first.close()
        second.close()
    assert [(r.job, r.rows) for r in reports] == [("audit", 5), ("audit", 1), ("", 0)]
