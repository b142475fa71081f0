"""The service's watch on profiles really in force: bounded read-backs, flags
reported once per change, the planner's reservation."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

from gridshare.api.metrics import MetricsRecorder
from gridshare.in_force import InForceWatch
from gridshare.rollout import RolloutReport
from gridshare.site.compliance import ComplianceSettings
from gridshare.site.state import SiteState
from gridshare.store import SqliteStore
from ocpp_adapter.events import CommandOutcome, CommandResult, MeterReading, SessionEnded
from optimizer import Plan
from tests.service.sites import small_depot

SITE = small_depot(2, 64)


class FakeState:
    """What the watch reads of the site's state."""

    def __init__(self) -> None:
        self.site = SITE
        self.sessions: dict[str, object] = {"CP1/1": object(), "CP2/1": object()}
        self.connected = {"CP1": "ocpp2.0.1", "CP2": "ocpp2.0.1"}
        self.limits = {"CP1/1": 16.0, "CP2/1": 16.0}

    def limit_now(self, cid: str, at: datetime) -> float | None:
        return self.limits.get(cid) if cid in self.sessions else None


class Reader:
    """A station side of GetCompositeSchedule: CP2 allows 32 A whatever it was sent."""

    def __init__(self, errors: frozenset[str] = frozenset()) -> None:
        self.calls: list[tuple[str, int]] = []
        self.errors = errors

    async def get_composite_schedule(
        self, station_id: str, connector: int, duration_s: int, unit: str | None = None
    ) -> tuple[CommandResult, dict[str, object] | None]:
        self.calls.append((station_id, connector))
        if station_id in self.errors:
            return CommandResult(CommandOutcome.ERROR, "NotImplemented"), None
        limit = 32.0 if station_id == "CP2" else 16.0
        period = {"startPeriod": 0, "limit": limit}
        schedule = {"chargingRateUnit": unit, "chargingSchedulePeriod": [period]}
        return CommandResult(CommandOutcome.ACCEPTED), {"status": "Accepted", "schedule": schedule}


def watch(
    tmp_path: Path, reader: Reader, gap_s: float = 0.3
) -> tuple[InForceWatch, FakeState, list[str]]:
    state = FakeState()
    replans: list[str] = []
    w = InForceWatch(
        cast(SiteState, state),
        SqliteStore(tmp_path / "w.db"),
        reader,
        replans.append,
        MetricsRecorder(),
        lambda: datetime.now(UTC),
        time.monotonic,
        ComplianceSettings(response_s=0.2, meter_margin_s=0.1, readback_gap_s=gap_s),
    )
    return w, state, replans


PLAN = cast(Plan, None)
SENT = RolloutReport(sent=2, accepted=2)


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_read_backs_are_bounded_and_flag_a_station_allowing_more(tmp_path: Path) -> None:
    reader = Reader()
    w, state, replans = watch(tmp_path, reader)
    for _ in range(5):
        w.after_plan(PLAN, SENT)
        await settle()
    # one read-back per connector: its limit did not change
    assert sorted(reader.calls) == [("CP1", 1), ("CP2", 1)]
    assert set(w.flagged()) == {"CP2/1"} and "(composite)" in w.flagged()["CP2/1"]
    assert w.reserved() == {"CP2/1": 32.0}
    assert replans == ["profile ignored"]
    # nothing sent: nothing read back
    state.limits["CP1/1"] = 10.0
    w.after_plan(PLAN, RolloutReport())
    await settle()
    assert len(reader.calls) == 2
    # CP1's limit changes within the gap: read back once the gap is over
    w.after_plan(PLAN, SENT)
    w.after_plan(PLAN, SENT)
    await settle()
    assert len(reader.calls) == 2
    await asyncio.sleep(0.5)
    assert reader.calls[2:] == [("CP1", 1)]
    await w.stop()


async def test_a_station_without_read_back_is_not_asked_again(tmp_path: Path) -> None:
    reader = Reader(errors=frozenset({"CP1"}))
    w, state, _ = watch(tmp_path, reader, gap_s=0.0)
    w.after_plan(PLAN, SENT)
    await settle()
    state.limits["CP1/1"] = 8.0
    w.after_plan(PLAN, SENT)
    await settle()
    assert [c for c in reader.calls if c[0] == "CP1"] == [("CP1", 1)]
    assert w.unsupported == {"CP1"}
    await w.stop()


async def test_a_meter_over_its_limit_is_flagged_once_and_unflagged_when_its_session_ends(
    tmp_path: Path,
) -> None:
    w, state, replans = watch(tmp_path, Reader())

    def reading(cid: str, amps: float) -> MeterReading:
        now = datetime.now(UTC)
        return MeterReading(cid, now, "tx", current_a={"L1": amps, "L2": amps, "L3": amps})

    for _ in range(5):
        w.observe(reading("CP1/1", 30.0))
        w.observe(reading("CP2/1", 16.0))
        await asyncio.sleep(0.1)
    assert set(w.flagged()) == {"CP1/1"} and w.reserved() == {"CP1/1": 30.0}
    assert replans == ["profile ignored"]
    w.observe(reading("CP1/1", 31.0))  # within the tolerance of what is reserved: no re-plan
    w.observe(reading("CP1/1", 40.0))
    assert replans == ["profile ignored", "flagged connector draws more"]
    del state.sessions["CP1/1"]
    w.observe(SessionEnded("tx", None, datetime.now(UTC), connector_id="CP1/1"))
    assert w.flagged() == {} and replans[-1] == "profile followed"
    text = w.metrics.render().decode()
    assert 'gridshare_profiles_ignored_total{evidence="meter"} 1.0' in text
    assert "gridshare_connector_not_following{" not in text
    kinds = [e["kind"] for e in w.store.audit_log(10)]
    assert kinds == ["profile_followed", "profile_ignored"]


async def test_the_planner_counts_a_flagged_connector_at_its_draw(tmp_path: Path) -> None:
    from gridshare.controller import Controller, ControllerSettings
    from ocpp_adapter.events import SessionStarted, StationBooted, StationConnected
    from tests.service.fakes import FakeGateway

    settings = ControllerSettings(reserve_for_arrivals=False)
    ctl = Controller(SITE, SqliteStore(tmp_path / "c.db"), FakeGateway(SITE), settings=settings)
    reserved: dict[str, Any] = {"CP1/1": 30.0, "CP2/1": 30.0, "NOPE/1": 5.0}
    ctl.problems.reserved = lambda: reserved
    now = datetime.now(UTC)
    for sid in ("CP1", "CP2"):
        await ctl.on_event(StationConnected(sid, "ocpp1.6", now))
        await ctl.on_event(StationBooted(sid, "acme", "x", now))
    await ctl.on_event(SessionStarted("CP2/1", "tx-2", None, 0.0, now))
    await ctl.wait_idle(10)
    problem, fixed = ctl.problem(now)
    # CP1 runs no session: nothing to reserve there; CP2 counts at its draw
    assert fixed.get("CP2/1") == 30.0 and "CP1/1" not in fixed and "NOPE/1" not in fixed
    assert [d.connector_id for d in problem.sessions] == []
    reserved.clear()
    problem, fixed = ctl.problem(now)
    assert "CP2/1" not in fixed and [d.connector_id for d in problem.sessions] == ["CP2/1"]
    await ctl.stop()
