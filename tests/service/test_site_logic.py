"""The site's decisions as plain code: no event loop, no store, no gateway."""

from __future__ import annotations

import math
from datetime import datetime, timedelta

import numpy as np
import pytest

from forecasts.demand import DemandDefaults, PastSession, RateLearner
from gridshare.rollout import LimitBook
from gridshare.site.fallback import FallbackPolicy
from gridshare.site.lookups import PlanRows
from gridshare.site.operator_limits import OperatorLimits
from gridshare.site.problem import ProblemBuilder, session_demand
from gridshare.site.settings import ControllerSettings
from gridshare.site.state import (
    ClearLimit,
    EndSuperseded,
    InstallFallback,
    Replan,
    SiteState,
)
from gridshare.site.views import group_loads
from gridshare.store import StoredSession
from ocpp_adapter.events import (
    CommandOutcome,
    CommandResult,
    EvChargingNeeds,
    MeterReading,
    SessionEnded,
    SessionStarted,
    StationBooted,
    StationConnected,
)
from optimizer.problem import Capacity, LimitWindow, TimeGrid
from optimizer.site import Site
from tests.service.sites import NOW, small_depot

SETTINGS = ControllerSettings(learn_settle_s=0.0, pin_s=60.0)
DEFAULTS = DemandDefaults(dwell_hours=4, energy_kwh=40)


class Records:
    """The store as the site state reads it: sessions stored as started."""

    def __init__(self) -> None:
        self.sessions: dict[tuple[str, str], StoredSession] = {}

    def start(self, cid: str, tx: str, *, tag: str | None = None, at: datetime = NOW) -> None:
        station = cid.split("/")[0]
        self.sessions[(station, tx)] = StoredSession(
            tx, station, tx, cid, tag, at, 0.0, None, None, None, None, None
        )

    def session(self, station_id: str, transaction_id: str) -> StoredSession | None:
        return self.sessions.get((station_id, transaction_id))

    def past_sessions(self, id_tag: str, limit: int = 20) -> list[PastSession]:
        return []


class SiteParts:
    """A site's plain parts wired as the controller wires them."""

    def __init__(self, site: Site, settings: ControllerSettings = SETTINGS) -> None:
        self.site = site
        self.records = Records()
        self.limits = OperatorLimits()
        book = LimitBook(site, count_idle=settings.reserve_for_arrivals)
        self.state = SiteState(
            site, book, self.records, known_stations=(), defaults=DEFAULTS, settings=settings
        )
        rows = PlanRows()
        self.fallback = FallbackPolicy(self.state, self.capacity, rows, settings)
        self.state.known_stations = frozenset(self.fallback.shares)
        self.problems = ProblemBuilder(self.state, self.fallback, self.capacity, rows)

    def capacity(self, grid: TimeGrid, now: datetime) -> Capacity:
        return self.limits.fold(Capacity.static(self.site, grid), grid, now)

    def start(self, cid: str, tx: str) -> list[object]:
        self.records.start(cid, tx)
        return list(self.state.apply(SessionStarted(cid, tx, None, 0.0, NOW), NOW))

    def install_all(self, limit: float) -> None:
        for sid in self.fallback.shares:
            self.fallback.sending(sid, limit)
            self.fallback.sent(sid)
            self.fallback.answered(sid, limit, CommandResult(CommandOutcome.ACCEPTED), 0.0)


# --- the state and its events -------------------------------------------------------------


def test_a_boot_asks_for_the_fallback_of_a_known_station_only() -> None:
    s = SiteParts(small_depot(2))
    assert s.state.apply(StationBooted("CP1", "acme", "x", NOW), NOW) == [
        InstallFallback("CP1"),
        Replan("station booted"),
    ]
    assert s.state.apply(StationBooted("CP9", "acme", "x", NOW), NOW) == [Replan("station booted")]
    assert set(s.state.connected) == {"CP1", "CP9"}


def test_a_session_counts_once_stored_and_its_end_clears_its_profile() -> None:
    s = SiteParts(small_depot(2))
    # not stored as started: ignored
    assert s.state.apply(SessionStarted("CP1/1", "t0", None, 0.0, NOW), NOW) == []
    assert s.state.sessions == {}
    s.state.apply(StationConnected("CP1", "ocpp1.6", NOW), NOW)
    assert s.start("CP1/1", "t1") == [Replan("session started")]
    assert s.start("CP1/1", "t1") == []  # resent by the station
    assert s.state.sessions["CP1/1"].est_energy_kwh == 40
    assert s.state.limit_now("CP1/1", NOW) == 32  # no limit known: its maximum
    ended = SessionEnded("t1", 1000.0, NOW, connector_id="CP1/1", station_id="CP1")
    assert s.state.apply(ended, NOW) == [ClearLimit("CP1", 1), Replan("session ended")]
    assert s.state.sessions == {} and s.state.limit_now("CP1/1", NOW) is None


def test_meter_values_and_stated_needs_change_the_session() -> None:
    s = SiteParts(small_depot(2))
    s.start("CP1/1", "t1")
    reading = MeterReading("CP1/1", NOW, "t1", current_a={"L1": 10.0}, energy_wh=3000.0)
    s.state.apply(reading, NOW + timedelta(seconds=30))
    session = s.state.sessions["CP1/1"]
    assert session.delivered_kwh == 3.0 and session.drawn_a == 10.0
    needs = EvChargingNeeds("CP1/1", NOW, energy_wh=5000.0)
    assert s.state.apply(needs, NOW) == [Replan("ev charging needs")]
    assert session.energy_need_wh == 8000.0  # counted from the session's start


def test_impossible_meter_values_are_dropped() -> None:
    s = SiteParts(small_depot(1))
    fine = MeterReading("CP1/1", NOW, current_a={"L1": 16.0})
    assert s.state.plausible(fine) is fine
    wild = MeterReading("CP1/1", NOW, current_a={"L1": 500.0, "L2": 16.0}, soc_pct=140.0)
    kept = s.state.plausible(wild)
    assert kept.current_a == {"L2": 16.0} and kept.soc_pct is None


def test_a_later_start_supersedes_an_open_session_on_its_connector() -> None:
    s = SiteParts(small_depot(2))
    s.records.start("CP1/1", "old", at=NOW)
    s.records.start("CP1/1", "new", at=NOW + timedelta(minutes=5))
    s.records.start("CP2/1", "other", at=NOW)
    stored = list(s.records.sessions.values())
    running, ends = s.state.superseded(stored, NOW)
    assert [r.transaction_id for r in running] == ["new", "other"]
    assert ends == [EndSuperseded("CP1", "old", NOW + timedelta(minutes=5), "new")]
    assert s.state.conflicts_total["superseded"] == 1
    s.state.recover(running, [], [])
    assert set(s.state.sessions) == {"CP1/1", "CP2/1"}


# --- operator limits -----------------------------------------------------------------------


def test_operator_limits_replace_clear_and_survive_as_data() -> None:
    book = OperatorLimits()
    first = book.set("grid", limit_a=40, limit_kw=None, start=None, end=None, set_by="ops", at=NOW)
    assert first.kind == "group_limit" and book.limit_a == {"grid": 40.0}
    end = NOW + timedelta(hours=1)
    book.set("grid", limit_a=30, limit_kw=20, start=NOW, end=end, set_by="ops", at=NOW)
    assert book.limit_a == {"grid": 30.0} and book.limit_kw == {"grid": 20.0}
    assert book.active(NOW) == 1 and book.active(end) == 0
    again = OperatorLimits()
    again.recover(book.export(), {"grid"})
    assert again.by_group == book.by_group
    gone = OperatorLimits()
    gone.recover(book.export(), {"other"})  # a group the site no longer has
    assert not gone.by_group
    cleared = book.set(
        "grid", limit_a=None, limit_kw=None, start=None, end=None, set_by="ops", at=NOW
    )
    assert cleared.kind == "group_limit_cleared" and cleared.detail == {"had_override": True}
    assert not book.by_group


def test_operator_limits_fold_into_the_slots_they_touch() -> None:
    site = small_depot(2)
    grid = TimeGrid.covering(NOW, 15, 2)
    book = OperatorLimits()
    start = grid.start + timedelta(minutes=20)
    book.set("grid", limit_a=30, limit_kw=None, start=start, end=start + timedelta(minutes=20),
             set_by="ops", at=NOW)  # fmt: skip
    cap = book.fold(Capacity.static(site, grid), grid, NOW)
    assert cap.limit_a["grid"].tolist() == [64, 30, 30, 64, 64, 64, 64, 64]
    # a window that ended before now no longer counts, even within its slot
    book.set("grid", limit_a=30, limit_kw=None, start=None, end=grid.start + timedelta(minutes=1),
             set_by="ops", at=NOW)  # fmt: skip
    cap = book.fold(Capacity.static(site, grid), grid, grid.start + timedelta(minutes=5))
    assert cap.limit_a["grid"].tolist() == [64] * 8


def test_one_fold_for_every_limit_window() -> None:
    site = small_depot(2)
    grid = TimeGrid.covering(NOW, 15, 1)
    base = Capacity.static(site, grid)
    assert base.limited(grid, []) is base
    w = LimitWindow("grid", grid.slot_start(1), grid.slot_start(2), limit_a=10, limit_kw=5)
    cap = base.limited(grid, [w, LimitWindow("grid", grid.slot_start(1), None, limit_a=20)])
    assert cap.limit_a["grid"].tolist() == [64, 10, 20, 20]
    assert cap.limit_kw["grid"].tolist() == [math.inf, 5, math.inf, math.inf]


# --- the fallback policy ---------------------------------------------------------------------


def test_fallback_shares_and_a_station_that_refused() -> None:
    s = SiteParts(small_depot(4, 64))
    for sid in ("CP1", "CP2", "CP3", "CP4"):
        s.state.apply(StationConnected(sid, "ocpp1.6", NOW), NOW)
    assert s.fallback.doubtful() == {"CP1", "CP2", "CP3", "CP4"}  # nothing accepted yet
    s.install_all(16.0)
    assert s.fallback.doubtful() == set()
    assert s.fallback.now(NOW) == dict.fromkeys(["CP1", "CP2", "CP3", "CP4"], 16.0)
    refused = CommandResult(CommandOutcome.REJECTED)
    assert s.fallback.answered("CP3", 16.0, refused, 0.0) == "fallback refused"
    assert s.fallback.doubtful() == {"CP3"}
    assert "CP3" not in s.fallback.moves(NOW, 1.0).lower  # left alone for pin_s
    assert "CP3" in s.fallback.moves(NOW, 61.0).lower
    s.fallback.connected("CP3")  # reconnected: tried again at once
    assert "CP3" in s.fallback.moves(NOW, 1.0).lower


def test_fallbacks_follow_an_operator_cut() -> None:
    s = SiteParts(small_depot(4, 64))
    s.install_all(16.0)
    s.limits.set("grid", limit_a=32, limit_kw=None, start=None, end=None, set_by="ops", at=NOW)
    assert s.fallback.now(NOW) == dict.fromkeys(["CP1", "CP2", "CP3", "CP4"], 8.0)


# --- the planning problem ---------------------------------------------------------------------


def test_session_demand_rules() -> None:
    later = NOW + timedelta(hours=3)
    estimated = session_demand(
        "s", "CP1/1", now=NOW, started_at=NOW, departure=later, delivered_kwh=39.5,
        defaults=DEFAULTS, estimate_kwh=40,
    )  # fmt: skip
    assert estimated.energy_kwh == DEFAULTS.topup_kwh  # an estimate leaves a top-up
    assert estimated.taper_kwh is None
    stated = session_demand(
        "s", "CP1/1", now=NOW, started_at=NOW, departure=later, delivered_kwh=39.5,
        defaults=DEFAULTS, need_kwh=40,
    )  # fmt: skip
    assert stated.energy_kwh == pytest.approx(0.5) and stated.taper_kwh == DEFAULTS.taper_kwh
    rate = RateLearner(small_depot(1).connectors["CP1/1"].lines)
    passed = session_demand(
        "s", "CP1/1", now=NOW, started_at=NOW - timedelta(hours=5), departure=NOW,
        delivered_kwh=0, defaults=DEFAULTS, ev_max_current_a=20, rate=rate,
    )  # fmt: skip
    assert passed.departure == NOW + timedelta(hours=DEFAULTS.overstay_hours)
    assert passed.ev_max_current_a == 20 and passed.lines is None


def test_the_problem_plans_running_sessions_and_reserves_the_rest() -> None:
    s = SiteParts(
        small_depot(2), ControllerSettings(learn_settle_s=0.0, reserve_for_arrivals=False)
    )
    s.start("CP1/1", "t1")
    built = s.problems.build(NOW, 0.0)
    assert [d.session_id for d in built.problem.sessions] == ["t1"]
    assert built.fixed == {} and built.isolated == {}
    # its station has not answered: counted at the most it may draw, not planned
    s.state.book.pin("CP1/1", CommandResult(CommandOutcome.TIMEOUT), 0.0, pin_s=60.0)
    built = s.problems.build(NOW, 1.0)
    assert built.problem.sessions == () and built.fixed == {"CP1/1": 32.0}


def test_an_inconsistent_session_is_isolated_not_fatal() -> None:
    s = SiteParts(
        small_depot(2), ControllerSettings(learn_settle_s=0.0, reserve_for_arrivals=False)
    )
    s.start("CP1/1", "t1")
    s.start("CP2/1", "t2")
    s.state.sessions["CP2/1"].session_id = "t1"  # two sessions claim one id
    built = s.problems.build(NOW, 0.0)
    assert built.problem.sessions == ()
    assert set(built.isolated) == {"CP1/1", "CP2/1"}
    s.state.isolate(built.isolated, NOW)
    assert {c.kind for c in s.state.conflicts.values()} == {"isolated"}


def test_group_loads_sum_the_limits_in_force() -> None:
    s = SiteParts(
        small_depot(2), ControllerSettings(learn_settle_s=0.0, reserve_for_arrivals=False)
    )
    s.start("CP1/1", "t1")
    loads = group_loads(s.state, NOW)
    assert loads["grid"] == {"L1": 32.0, "L2": 32.0, "L3": 32.0}
    assert np.isclose(sum(loads["grid"].values()), 96.0)
