"""The controller: events in, state, re-plans, safe rollouts out.

    station event ──► store (committed) ──► state ──► request_replan
                                                          │ coalesced
    slot clock / periodic (APScheduler) ──────────────────┤
    operator limit / forecast change ─────────────────────┘
                                                          ▼
              PlanningProblem ──► optimizer.solve (worker thread, warm planner)
                                                          ▼
                                 rollout (lowerings first) ──► stations

State per running session: what the car said (departure, energy, current
bounds), estimates where it said nothing (the idTag's history, else the site's
defaults) and what its meter values taught us: the rate it really takes (a
cap, with hysteresis, so the capacity it leaves goes to the others) and the
lines it really loads. The rules live in `forecasts.demand`, which the
simulator uses too.

Re-plans are coalesced: a burst of events while a plan is being solved gives
one more plan, not one per event. Only one plan and rollout runs at a time.

Fallback: every station gets a TxDefault limit at boot; summed over any group
they fit its fallback capacity (so the site cannot overload if gridshare
stops), and they follow the capacity down when a DSO cuts it. A station that
refused its fallback limit or has not answered (yet) is assumed to draw what it
may (its last accepted fallback, else its maximum): the others share what is
left, and the planner reserves it as fixed load. By default the planner also
reserves each idle connector's fallback limit, because a car that plugs in
draws it before the next plan reaches its station (``reserve_for_arrivals``;
without it the sum of limits in force may exceed a group's capacity from an
arrival until its first profile is accepted). For the same reason a running
transaction counts at least at its connector's fallback limit, which is in
force the moment it ends: where the plan gives a session less, the connector
gets a TxDefault of its own at what the plan gives it (lowered with the
lowerings), raised back to the station's share once it is free again.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

import numpy as np

from forecasts.demand import (
    DemandDefaults,
    RateLearner,
    RateSettings,
    TagHistory,
    estimate_departure,
    estimate_energy,
    still_plugged_in,
    still_wanted_kwh,
)
from gridshare.rollout import (
    Hysteresis,
    LimitBook,
    LimitSchedule,
    LoadModel,
    PinReason,
    RolloutReport,
    fallback_limits,
    fallback_spec,
    raise_fits,
    run_rollout,
)
from gridshare.store import SessionConflict, Store, StoredSession, ended_key
from ocpp_adapter.events import (
    PROPERTY_CONSTRAINT,
    ChargingLimitSpec,
    CommandOutcome,
    CommandResult,
    ConnectorStatusChanged,
    DomainEvent,
    EvChargingNeeds,
    EventRefused,
    ExternalLimitNotified,
    LimitPurpose,
    MeterReading,
    SessionEnded,
    SessionStarted,
    StationBooted,
    StationConnected,
    StationDisconnected,
)
from optimizer import HighsPlanner, Plan, PlanningProblem, SessionDemand, solve
from optimizer.errors import ProblemError
from optimizer.problem import Capacity, TimeGrid
from optimizer.site import LINES, Line, Site, station_of

log = logging.getLogger(__name__)


class ControllerGateway(Protocol):
    """What the controller needs of the OCPP adapter."""

    async def set_limit(self, station_id: str, spec: ChargingLimitSpec) -> CommandResult: ...

    async def clear_limit(self, station_id: str, connector: int) -> CommandResult: ...


CapacityProvider = Callable[[Site, TimeGrid, datetime], Capacity]
"""Site, planning grid, now → the capacity the planner sees (forecasts, overrides)."""


@dataclass(frozen=True)
class ControllerSettings:
    coalesce_s: float = 0.02
    """Wait this long after the first event of a burst before planning."""
    replan_interval_s: float = 60.0
    """Periodic re-plan (besides every slot boundary)."""
    pin_s: float = 60.0
    """How long a station that refused or did not answer is left alone."""
    min_change_a: float = 1.0
    """Hysteresis: smaller changes of a limit are not sent."""
    rates: RateSettings = field(default_factory=RateSettings)
    """How meter values teach what each car takes (the simulator's rules too)."""
    learn_settle_s: float = 10.0
    """Readings this soon after a limit change or a session start are not used to
    learn: a car has 5 s to follow a new pilot (IEC 61851-1) and ramps over a
    few more, so an earlier reading shows the ramp, not what the car takes."""
    solve_time_limit_s: float = 5.0
    answer_timeout_s: float = 15.0
    """A station that has not answered a profile by then counts as not answering
    (the rollout goes on; what it may have taken stays reserved)."""
    fallback_on_boot: bool = True
    reserve_for_arrivals: bool = True
    """Reserve every idle connector's fallback (TxDefault) limit: a car that plugs
    in draws it before the next plan reaches it, so without the reserve the sum
    of limits in force can exceed a group's capacity for that moment. Off: more
    capacity for the cars already charging, at that risk."""
    max_periods: int | None = None


@dataclass
class SessionState:
    transaction_id: str
    """The station's id of it: unique only per station (OCPP 2.0.1 lets stations choose)."""
    connector_id: str
    id_tag: str | None
    started_at: datetime
    meter_start_wh: float | None
    session_id: str = ""
    """Unique in the store: the planner's and the operator's name for it."""
    station_id: str = ""
    energy_wh: float | None = None
    departure: datetime | None = None
    """Stated by the car (NotifyEVChargingNeeds)."""
    energy_need_wh: float | None = None
    ev_max_current_a: float | None = None
    ev_min_current_a: float | None = None
    est_departure: datetime | None = None
    est_energy_kwh: float | None = None
    rate: RateLearner = field(default_factory=RateLearner)
    """What its meter values taught: the current it takes, the lines it loads."""
    drawn_a: float | None = None
    power_w: float | None = None
    priority: float = 1.0
    """The operator's weight for this session (1: as any other)."""

    def __post_init__(self) -> None:
        self.session_id = self.session_id or self.transaction_id
        self.station_id = self.station_id or station_of(self.connector_id)

    @property
    def cap_a(self) -> float | None:
        """Learned: the planner counts on the car taking no more (None: no limit)."""
        return self.rate.max_current_a

    @property
    def lines(self) -> tuple[Line, ...] | None:
        """Learned: the lines the car really loads (None: every wired line)."""
        return self.rate.lines

    @property
    def delivered_kwh(self) -> float:
        if self.energy_wh is None or self.meter_start_wh is None:
            return 0.0
        return max(0.0, self.energy_wh - self.meter_start_wh) / 1000.0


@dataclass(frozen=True)
class ConflictReport:
    """A session left out of planning (``isolated``: its connector counts at the
    most it may draw), a session start refused (``refused``), or an open session
    another started after on its connector (``superseded``), and why."""

    kind: str
    station_id: str
    transaction_id: str
    connector_id: str | None
    reason: str
    since: datetime

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "station_id": self.station_id,
            "transaction_id": self.transaction_id,
            "connector_id": self.connector_id,
            "reason": self.reason,
            "since": self.since.isoformat(),
        }


REFUSED_KEPT = 20
"""Refused (and superseded) sessions listed in the status: the latest of each kind."""


@dataclass(frozen=True)
class GroupOverride:
    """An operator's limit on a group over ``[start, end)`` (None: open on that side)."""

    group_id: str
    limit_a: float | None
    limit_kw: float | None
    start: datetime | None
    end: datetime | None
    set_by: str
    set_at: datetime

    def covers(self, t0: datetime, t1: datetime) -> bool:
        """Whether it is in force at any moment of ``[t0, t1)`` (``t0 == t1``: at t0)."""
        return (self.start is None or self.start <= t0 or self.start < t1) and (
            self.end is None or self.end > t0
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "group_id": self.group_id,
            "limit_a": self.limit_a,
            "limit_kw": self.limit_kw,
            "start": None if self.start is None else self.start.isoformat(),
            "end": None if self.end is None else self.end.isoformat(),
            "set_by": self.set_by,
            "set_at": self.set_at.isoformat(),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> GroupOverride:
        def t(v: Any) -> datetime | None:
            return None if v is None else datetime.fromisoformat(v)

        return cls(
            group_id=str(d["group_id"]),
            limit_a=d.get("limit_a"),
            limit_kw=d.get("limit_kw"),
            start=t(d.get("start")),
            end=t(d.get("end")),
            set_by=str(d.get("set_by", "operator")),
            set_at=datetime.fromisoformat(d["set_at"]),
        )


@dataclass
class Overrides:
    """Operator limits per group (one each; a new one replaces the old)."""

    by_group: dict[str, GroupOverride] = field(default_factory=dict)

    @property
    def limit_a(self) -> dict[str, float]:
        return {g: o.limit_a for g, o in self.by_group.items() if o.limit_a is not None}

    @property
    def limit_kw(self) -> dict[str, float]:
        return {g: o.limit_kw for g, o in self.by_group.items() if o.limit_kw is not None}


OVERRIDES_STATE = "group_overrides"
"""The store's state key under which the operator limits survive a restart."""


STEADY_REASONS = frozenset(
    {
        "periodic",
        "slot boundary",
        "meter values",
        "retry after",
        "rollout incomplete",
        "fallback installed",
        "fallback refused",
    }
)
"""Re-plans that keep the previous plan's current rates unless there is a reason
to move (anti-flapping). After an arrival, a departure or a limit change the
planner starts afresh: holding on to the old rates would leave a newcomer at
0 A while the others keep theirs."""


def static_capacity(site: Site, grid: TimeGrid, now: datetime) -> Capacity:
    return Capacity.static(site, grid)


class Controller:
    def __init__(
        self,
        site: Site,
        store: Store,
        gateway: ControllerGateway,
        *,
        defaults: DemandDefaults | None = None,
        capacity: CapacityProvider = static_capacity,
        settings: ControllerSettings | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.site = site
        self.store = store
        self.gateway = gateway
        self.defaults = defaults or DemandDefaults()
        self.capacity_provider = capacity
        self.settings = settings or ControllerSettings()
        self.clock = clock
        self.monotonic = monotonic
        self.book = LimitBook(site, count_idle=self.settings.reserve_for_arrivals)
        self.planner = HighsPlanner(time_limit_s=self.settings.solve_time_limit_s)
        self.sessions: dict[str, SessionState] = {}
        """Connector → its running session."""
        self.connected: dict[str, str] = {}
        """Station id → protocol, for stations connected now."""
        self.status_by_connector: dict[str, str] = {}
        self.overrides = Overrides()
        self.fallback_a = fallback_limits(site)
        """Per station: its fallback share of the groups' static fallback limits."""
        self.fallback_in_force: dict[str, float] = {}
        self._by_station: dict[str, list[str]] = {}
        self._fallback_retry_at: dict[str, float] = {}
        self._fallback_pending: dict[str, float] = {}
        """Station → the fallback limit on its way to it."""
        self._fallback_failed: set[str] = set()
        """Stations whose last fallback limit was refused or not answered."""
        self._incomplete = 0
        for cid, info in site.connectors.items():
            self._by_station.setdefault(info.station_id, []).append(cid)
        self._fallback_cache: tuple[Any, dict[str, float]] | None = None
        self._models: dict[tuple[tuple[str, tuple[Line, ...]], ...], LoadModel] = {}
        self._rows_cache: tuple[Plan, dict[str, int]] | None = None
        self.plan: Plan | None = None
        self.plan_at: datetime | None = None
        self.plans = 0
        self.last_report: RolloutReport | None = None
        self.limit_changed_at: dict[str, datetime] = {}
        self._reasons: set[str] = set()
        self._task: asyncio.Task[None] | None = None
        self._background: set[asyncio.Task[Any]] = set()
        self._timers: list[asyncio.TimerHandle] = []
        self._scheduler: Any = None
        self._idle = asyncio.Event()
        self._idle.set()
        self._stopping = False
        self.on_plan: list[Callable[[Plan, RolloutReport], None]] = []
        """Observers (demo view, benchmarks, metrics): called after each rollout."""
        self.replan_requested_at: float | None = None
        self.plan_id: int | None = None
        """The store's id of the current plan."""
        self.plan_reason = ""
        self.plan_requested_at: float | None = None
        """``perf_counter`` time the request behind the current plan came in."""
        self._waiters: list[asyncio.Future[None]] = []
        """`replan_now` callers waiting for the next plan to be rolled out."""
        self.conflicts: dict[tuple[str, ...], ConflictReport] = {}
        self.conflicts_total: Counter[str] = Counter()
        """Sessions refused and superseded since the start, by kind (the list above keeps
        the latest few)."""
        """Sessions isolated from planning now, and the latest refused session starts."""

    # --- life cycle ---------------------------------------------------------------------

    async def start(self, *, scheduler: bool = True) -> None:
        self.recover()
        self._recover_overrides()
        if scheduler:
            self._start_scheduler()
        self.request_replan("start")

    def recover(self) -> None:
        """Rebuild sessions and the limits in force from the store (after a restart).

        Every station counts as not connected until it reconnects: the plan
        reserves what it may draw and re-adopts it when it comes back.
        """
        for s in self.store.active_sessions():
            if s.connector_id not in self.site.connectors:
                continue
            old = self.sessions.get(s.connector_id)
            if old is not None:
                # a connector runs one transaction: the later start is the one running
                # (e.g. a start resent after a crash before its answer got a new id)
                self._conflict(
                    ("superseded", old.station_id, old.transaction_id),
                    ConflictReport(
                        "superseded",
                        old.station_id,
                        old.transaction_id,
                        old.connector_id,
                        f"still open, but {s.transaction_id!r} started later on the connector",
                        self.clock(),
                    ),
                )
                # ended where it is stored, or it stays open for every reader after a restart
                self.store.end_superseded(
                    old.station_id, old.transaction_id, s.started_at, s.transaction_id
                )
            self.sessions[s.connector_id] = self._from_stored(s)
            self.book.start_transaction(s.connector_id)
        for lim in self.store.limits_in_force():
            sched = LimitSchedule(lim.start, lim.periods)
            if lim.purpose == LimitPurpose.TX and lim.connector_id in self.sessions:
                self.book.get(lim.connector_id).accepted = sched
            elif lim.purpose == LimitPurpose.TX_DEFAULT:
                if lim.connector_id in self.site.connectors:  # the connector's own
                    self.book.get(lim.connector_id).own_default_a = sched.periods[0][1]
                for cid, info in self.site.connectors.items():
                    if info.station_id == lim.connector_id:
                        self.book.get(cid).default_a = sched.periods[0][1]
        for lim in self.store.unanswered_profiles():
            # sent just before the crash, never answered: it may be in force
            if lim.connector_id in self.sessions:
                self.book.sending(lim.connector_id, LimitSchedule(lim.start, lim.periods))
        for cid in self.sessions:
            c = self.book.get(cid)
            c.pinned_until, c.pin_reason = math.inf, PinReason.NOT_CONNECTED

    def _from_stored(self, s: StoredSession) -> SessionState:
        st = SessionState(
            transaction_id=s.transaction_id,
            session_id=s.session_id,
            station_id=s.station_id,
            connector_id=s.connector_id,
            id_tag=s.id_tag,
            started_at=s.started_at,
            meter_start_wh=s.meter_start_wh,
            energy_wh=s.energy_wh,
            departure=s.departure,
            energy_need_wh=s.energy_need_wh,
            ev_max_current_a=s.ev_max_current_a,
            ev_min_current_a=s.ev_min_current_a,
            priority=s.priority if s.priority is not None else 1.0,
            rate=self._rate_learner(s.connector_id),
        )
        self._estimate(st)
        return st

    def _start_scheduler(self) -> None:
        from apscheduler.schedulers.asyncio import AsyncIOScheduler

        sched = AsyncIOScheduler(timezone=UTC)
        slot = self.site.site.slot_minutes
        sched.add_job(
            self._scheduled,
            "cron",
            minute=f"*/{slot}",
            second=1,
            args=["slot boundary"],
            id="slot",
            coalesce=True,
            max_instances=1,
            misfire_grace_time=30,
        )
        sched.add_job(
            self._scheduled,
            "interval",
            seconds=self.settings.replan_interval_s,
            args=["periodic"],
            id="periodic",
            coalesce=True,
            max_instances=1,
        )
        sched.start()
        self._scheduler = sched

    async def _scheduled(self, reason: str) -> None:
        """A clock job (a coroutine, so the scheduler runs it on the event loop)."""
        self.request_replan(reason)

    async def stop(self) -> None:
        self._stopping = True
        for w in self._waiters:
            w.cancel()
        self._waiters.clear()
        if self._scheduler is not None:
            self._scheduler.shutdown(wait=False)
            self._scheduler = None
        for h in self._timers:
            h.cancel()
        tasks = [t for t in (self._task, *self._background) if t is not None and not t.done()]
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def busy(self) -> bool:
        """A plan pending or running, a command in the background, or a re-plan timer set."""
        loop = asyncio.get_running_loop()
        timers = any(not h.cancelled() and h.when() > loop.time() for h in self._timers)
        return not self._idle.is_set() or bool(self._background) or timers

    async def wait_idle(self, timeout: float = 10.0) -> None:
        """Until no plan is pending or running (tests, demo)."""
        await asyncio.wait_for(self._idle.wait(), timeout)

    # --- events -----------------------------------------------------------------------------

    async def on_event(self, event: DomainEvent) -> DomainEvent:
        """The adapter's event sink: store (committed), then act. Returns the event
        as stored and applied (a meter reading without its impossible values)."""
        if isinstance(event, MeterReading):
            event = self.plausible(event)
        try:
            self.store.record_event(event)
        except SessionConflict as e:
            # refused (the station gets an error answer); the stored session stands
            self._conflict(
                ("refused", e.station_id, e.transaction_id),
                ConflictReport(
                    "refused", e.station_id, e.transaction_id, None, e.detail, self.clock()
                ),
            )
            raise EventRefused(PROPERTY_CONSTRAINT, str(e)) from e
        self.apply(event)
        return event

    def plausible(self, r: MeterReading) -> MeterReading:
        """The reading without what no meter can see: NaN, infinities, negative
        values, and currents (or powers) beyond twice what the connector can carry.
        Those are logged and neither stored as measured nor used to learn or plan
        (a measurement may only lower a limit, so a wild one must not count).

        The OCPP adapter already drops NaN and negative values; they are checked
        here again for readings from any other source. A reading with nothing to
        drop is returned as it is (this runs on every reading)."""
        info = self.site.connectors.get(r.connector_id)
        top_a = 2 * info.connector.max_current_a if info is not None else math.inf
        line_w = top_a * info.voltage_v if info is not None else math.inf
        all_w = line_w * len(info.lines) if info is not None else math.inf

        def ok(value: float | None, top: float) -> bool:
            return value is None or (math.isfinite(value) and 0 <= value <= top)

        checks: list[tuple[str, float | None, float]] = [
            *((f"current {k}", v, top_a) for k, v in r.current_a.items()),
            *((f"power {k}", v, line_w) for k, v in r.power_w.items()),
            ("offered", r.current_offered_a, top_a),
            ("power", r.total_power_w, all_w),
            ("energy", r.energy_wh, math.inf),
            ("soc", r.soc_pct, 100.0),
        ]
        dropped = [f"{what}={value!r}" for what, value, top in checks if not ok(value, top)]
        if not dropped:
            return r

        def keep(value: float | None, top: float) -> float | None:
            return value if ok(value, top) else None

        log.warning(
            "impossible meter values from station %r, connector %r ignored: %s",
            station_of(r.connector_id),
            r.connector_id,
            ", ".join(dropped),
        )
        return replace(
            r,
            current_a={k: v for k, v in r.current_a.items() if ok(v, top_a)},
            power_w={k: v for k, v in r.power_w.items() if ok(v, line_w)},
            current_offered_a=keep(r.current_offered_a, top_a),
            total_power_w=keep(r.total_power_w, all_w),
            energy_wh=keep(r.energy_wh, math.inf),
            soc_pct=keep(r.soc_pct, 100.0),
        )

    def apply(self, event: DomainEvent) -> None:
        match event:
            case StationConnected():
                self.connected[event.station_id] = event.protocol
                self._fallback_retry_at.pop(event.station_id, None)
                self.book.unpin_station(
                    event.station_id,
                    frozenset({PinReason.NOT_CONNECTED, PinReason.NO_ANSWER}),
                )
                self.request_replan("station connected")
            case StationBooted():
                self.connected.setdefault(event.station_id, "")
                self.book.unpin_station(event.station_id, frozenset(PinReason))
                if self.settings.fallback_on_boot and self._knows_station(event.station_id):
                    self._spawn(self.install_fallback(event.station_id))
                self.request_replan("station booted")
            case StationDisconnected():
                self.connected.pop(event.station_id, None)
                for cid in self._station_connectors(event.station_id):
                    c = self.book.get(cid)
                    if c.active:
                        c.pinned_until, c.pin_reason = math.inf, PinReason.NOT_CONNECTED
                self.request_replan("station disconnected")
            case ConnectorStatusChanged():
                self.status_by_connector[event.connector_id] = event.status
            case SessionStarted():
                self._session_started(event)
            case SessionEnded():
                self._session_ended(event)
            case MeterReading():
                self._meter(event)
            case EvChargingNeeds():
                s = self.sessions.get(event.connector_id)
                if s is not None:
                    s.departure = event.departure or s.departure
                    if event.energy_wh is not None:
                        # what it still wants: the session's need counts from its start
                        s.energy_need_wh = s.delivered_kwh * 1000.0 + event.energy_wh
                    if event.ev_max_current_a is not None:
                        s.ev_max_current_a = event.ev_max_current_a
                    if event.ev_min_current_a is not None:
                        s.ev_min_current_a = event.ev_min_current_a
                    self.book.get(event.connector_id).force_send = True
                    self.request_replan("ev charging needs")
            case ExternalLimitNotified():
                self.request_replan("external limit")

    def _knows_station(self, station_id: str) -> bool:
        return station_id in self.fallback_a

    def _station_connectors(self, station_id: str) -> list[str]:
        return self._by_station.get(station_id, [])

    def _session_started(self, e: SessionStarted) -> None:
        if e.connector_id not in self.site.connectors:
            log.warning("session %r on unknown connector %r", e.transaction_id, e.connector_id)
            return
        station = self.site.connectors[e.connector_id].station_id
        old = self.sessions.get(e.connector_id)
        if old is not None and (old.station_id, old.transaction_id) == (station, e.transaction_id):
            return  # a repeat (station resent it)
        stored = self.store.session(station, e.transaction_id)
        if stored is None or stored.connector_id != e.connector_id:
            # on_event stores a start before applying it (or refuses it): its
            # session id is the store's, never made up here
            log.error(
                "session %r of %r is not stored as started on %r: ignored",
                e.transaction_id,
                station,
                e.connector_id,
            )
            return
        self.sessions[e.connector_id] = self._from_stored(stored)  # estimated there
        self.book.start_transaction(e.connector_id)
        self.limit_changed_at[e.connector_id] = self.clock()
        self.request_replan("session started")

    def _session_ended(self, e: SessionEnded) -> None:
        key = ended_key(e)

        def ends(s: SessionState) -> bool:
            return (s.station_id, s.transaction_id) == key

        cid = e.connector_id
        if cid is None or cid not in self.sessions:
            cid = next((k for k, s in self.sessions.items() if ends(s)), None)
        if cid is None or not ends(self.sessions[cid]):
            return
        del self.sessions[cid]
        self.book.end_transaction(cid)
        info = self.site.connectors[cid]
        if info.station_id in self.connected:
            self._spawn(self._clear(info.station_id, info.connector.id))
        self.request_replan("session ended")

    async def _clear(self, station_id: str, connector: int) -> None:
        result = await self.gateway.clear_limit(station_id, connector)
        if result.outcome is not CommandOutcome.ACCEPTED:
            log.info("clearing the profile of %s/%s: %s", station_id, connector, result.outcome)

    def _offered_now(self, cid: str, at: datetime) -> float:
        c = self.book.get(cid)
        if c.accepted is not None:
            return c.accepted.at(at)
        default = self.book.default_in_force(cid)
        if default is not None:
            return default
        return self.site.connectors[cid].max_current_a

    def _meter(self, r: MeterReading) -> None:
        s = self.sessions.get(r.connector_id)
        if s is None or (r.transaction_id is not None and r.transaction_id != s.transaction_id):
            return
        if r.energy_wh is not None:
            s.energy_wh = max(s.energy_wh or 0.0, r.energy_wh)
        info = self.site.connectors[r.connector_id]
        by_line = self._site_lines(r, info.lines)
        if by_line:
            drawn = max(by_line.values())
        elif r.total_power_w is not None:
            drawn = r.total_power_w / (info.voltage_v * len(info.lines))
        else:
            return
        s.drawn_a = drawn
        s.power_w = (
            r.total_power_w
            if r.total_power_w is not None
            else (sum(r.power_w.values()) if r.power_w else None)
        )
        # our clock, not the station's (station clocks drift)
        now = self.clock()
        changed_at = self.limit_changed_at.get(s.connector_id)
        if changed_at is not None and (now - changed_at).total_seconds() < (
            self.settings.learn_settle_s
        ):
            return
        offered = self._offered_now(s.connector_id, now)
        if r.current_offered_a is not None:
            offered = min(offered, r.current_offered_a)
        held = s.rate.rate_a is not None
        if s.rate.observe(by_line, offered, drawn, at=now):
            # a car that takes more again must not be held at its old rate
            released = held and s.rate.rate_a is None
            self.request_replan("car takes more" if released else "meter values")

    def _site_lines(self, r: MeterReading, wired: tuple[Line, ...]) -> dict[Line, float]:
        """Per-phase readings (station phases L1..L3) mapped to the site's lines."""
        out: dict[Line, float] = {}
        for phase, amps in r.current_a.items():
            name = phase.upper()[:2]
            if name not in ("L1", "L2", "L3"):
                continue
            idx = int(name[1]) - 1
            if idx < len(wired) and math.isfinite(amps):
                out[wired[idx]] = max(out.get(wired[idx], 0.0), abs(amps))
        return out

    def _rate_learner(self, connector_id: str) -> RateLearner:
        return RateLearner(self.site.connectors[connector_id].lines, self.settings.rates)

    def _estimate(self, s: SessionState) -> None:
        """Departure and energy from the idTag's past sessions, else the site's defaults."""
        history = TagHistory()
        for past in self.store.past_sessions(s.id_tag) if s.id_tag else ():
            history.record(past)
        s.est_departure = estimate_departure(
            s.started_at, s.started_at, id_tag=s.id_tag, history=history, defaults=self.defaults
        ).departure
        s.est_energy_kwh = estimate_energy(
            id_tag=s.id_tag, history=history, defaults=self.defaults
        ).total_kwh

    # --- operator and forecast inputs -----------------------------------------------------

    def set_group_limit(
        self,
        group_id: str,
        *,
        limit_a: float | None = None,
        limit_kw: float | None = None,
        start: datetime | None = None,
        end: datetime | None = None,
        source: str = "operator",
        actor: str | None = None,
    ) -> GroupOverride | None:
        """Replace the group's override (both limits None: remove it); persist,
        audit and re-plan. ``start``/``end`` bound when it is in force."""
        if group_id not in self.site.group_by_id:
            raise KeyError(group_id)
        now = self.clock()
        override: GroupOverride | None = None
        detail: dict[str, Any]
        if limit_a is None and limit_kw is None:
            had = self.overrides.by_group.pop(group_id, None)
            kind, detail = "group_limit_cleared", {"had_override": had is not None}
        else:
            override = GroupOverride(
                group_id,
                None if limit_a is None else float(limit_a),
                None if limit_kw is None else float(limit_kw),
                start,
                end,
                actor or source,
                now,
            )
            self.overrides.by_group[group_id] = override
            kind = "group_limit"
            detail = {
                "limit_a": limit_a,
                "limit_kw": limit_kw,
                "start": None if start is None else start.isoformat(),
                "end": None if end is None else end.isoformat(),
            }
        self._save_overrides()
        self.store.audit(now, kind, group_id, {**detail, "source": source, "actor": actor})
        self.request_replan(f"{source} limit")
        return override

    def _save_overrides(self) -> None:
        self.store.put_state(
            OVERRIDES_STATE, [o.to_dict() for o in self.overrides.by_group.values()]
        )

    def _recover_overrides(self) -> None:
        for d in self.store.get_state(OVERRIDES_STATE) or []:
            o = GroupOverride.from_dict(d)
            if o.group_id in self.site.group_by_id:
                self.overrides.by_group[o.group_id] = o

    def update_session(
        self,
        connector_id: str,
        *,
        priority: float | None = None,
        departure: datetime | None = None,
        energy_need_kwh: float | None = None,
        actor: str = "operator",
    ) -> SessionState:
        """Change what we assume of a running session (persisted, audited) and re-plan.

        ``energy_need_kwh`` is what is still to deliver from now on.
        """
        s = self.sessions[connector_id]
        if priority is not None:
            s.priority = float(priority)
        if departure is not None:
            s.departure = departure
        if energy_need_kwh is not None:
            s.energy_need_wh = (s.delivered_kwh + float(energy_need_kwh)) * 1000.0
        self.store.update_session(
            s.session_id,
            priority=priority,
            departure=departure,
            energy_need_wh=s.energy_need_wh if energy_need_kwh is not None else None,
        )
        self.store.audit(
            self.clock(),
            "session_changed",
            s.session_id,
            {
                "priority": priority,
                "departure": None if departure is None else departure.isoformat(),
                "energy_need_kwh": energy_need_kwh,
                "actor": actor,
            },
        )
        self.book.get(connector_id).force_send = True
        self.request_replan("session changed")
        return s

    async def replan_now(self, reason: str, timeout_s: float = 60.0) -> None:
        """Request a re-plan and return once a plan begun after this call is rolled out."""
        if self._stopping:
            raise RuntimeError("the controller is stopping")
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        self.request_replan(reason)
        await asyncio.wait_for(waiter, timeout_s)

    def capacity(self, grid: TimeGrid, now: datetime) -> Capacity:
        base = self.capacity_provider(self.site, grid, now)
        if not self.overrides.by_group:
            return base
        la = {k: np.asarray(v, dtype=float).copy() for k, v in base.limit_a.items()}
        lk = {k: np.asarray(v, dtype=float).copy() for k, v in base.limit_kw.items()}
        starts = grid.starts()
        for gid, o in self.overrides.by_group.items():
            # a slot the window touches is limited for its whole length (most restrictive)
            mask = np.array([o.covers(max(t, now), t + grid.step) for t in starts], dtype=bool)
            for table, value in ((la, o.limit_a), (lk, o.limit_kw)):
                if value is None:
                    continue
                cur = table.get(gid, np.full(grid.slots, np.inf))
                table[gid] = np.where(mask, np.minimum(cur, value), cur)
        return Capacity(la, lk)

    # --- fallback ------------------------------------------------------------------------

    def fallback_now(self, now: datetime, *, exclude: str | None = None) -> dict[str, float]:
        """Per station: the fallback share, never above what the groups have now
        or in the next slot (a DSO's cut lowers the shares too, so the fallbacks
        still fit). A fallback is constant and only a re-plan changes it, the
        first after a boundary at the earliest: a cut starting there must bound
        it already.

        Stations in doubt about their fallback limit (refused, not answered,
        on its way, never accepted) count at what they may draw; the others
        share the rest.
        A station in doubt gets what it would to try again: its share as if
        all cooperated, never above what it is assumed to draw. ``exclude``: a
        station about to get its first limit counts as cooperating."""
        minutes = self.site.site.slot_minutes
        grid = TimeGrid.covering(now, minutes, 2 * minutes / 60)
        cap = self.capacity(grid, now)
        limits: dict[str, float] = {}
        for g in self.site.groups:
            fb = g.fallback_limit_a if g.fallback_limit_a is not None else g.limit_a
            arr = cap.limit_a.get(g.id)
            now_a = float(np.min(arr)) if arr is not None else math.inf
            fb = min(fb if fb is not None else math.inf, now_a)
            if math.isfinite(fb):
                limits[g.id] = fb
        fixed = {
            cid: self._assumed_a(cid, grid)
            for sid in sorted(self._fallback_doubtful(exclude))
            for cid in self._station_connectors(sid)
        }
        key = (tuple(sorted(limits.items())), tuple(sorted(fixed.items())))
        if self._fallback_cache is None or self._fallback_cache[0] != key:
            static = fallback_limits(self.site, limits)
            out = fallback_limits(self.site, limits, fixed) if fixed else dict(static)
            for cid, a in fixed.items():
                sid = self.site.connectors[cid].station_id
                if sid in static:
                    out[sid] = min(out.get(sid, static[sid]), a)
            self._fallback_cache = (key, out)
        return self._fallback_cache[1]

    def _fallback_doubtful(self, exclude: str | None = None) -> set[str]:
        """Stations whose fallback limit is not known to be in force: refused,
        not answered, on its way, or never accepted (a station not heard from
        yet may draw its maximum, as the planner assumes of its connectors)."""
        out = set(self._fallback_pending) | self._fallback_failed
        if self.settings.fallback_on_boot:
            for sid, cids in self._by_station.items():
                if self.book.get(cids[0]).default_a is None:
                    out.add(sid)
        if exclude is not None:
            out.discard(exclude)
        return out

    def _assumed_a(self, cid: str, grid: TimeGrid) -> float:
        """What a connector may draw whatever we send it now (its fallback, and
        a running transaction's profiles)."""
        a = self.book.default_worst(cid)
        if self.book.get(cid).active:
            a = max(a, float(np.max(self.book.worst(cid, grid, fallback=False))))
        return a

    def default_targets(
        self,
        now: datetime,
        plan: Plan | None = None,
        fixed: Mapping[str, float] | None = None,
    ) -> dict[str, float]:
        """Connector → the TxDefault limit it should have of its own.

        A running session planned below its station's fallback share: the
        lowest the plan gives it (so the limit in force when it ends is within
        what the plan reserved for it at every moment). An idle connector with
        a limit of its own: back to the share. Connectors the station's limit
        serves are left out. Only with idle connectors counted
        (``reserve_for_arrivals``): without, an ended transaction counts at 0.
        """
        if not self.book.count_idle:
            return {}
        wanted = self.fallback_now(now)
        doubtful = self._fallback_doubtful()
        rows = self._plan_rows(plan)
        lows = plan.current_a.min(axis=1) if plan is not None and rows else None
        fixed = fixed or {}
        out: dict[str, float] = {}
        for cid, info in self.site.connectors.items():
            sid = info.station_id
            if sid not in self.connected or sid in doubtful or sid not in wanted:
                continue
            c = self.book.get(cid)
            target = wanted[sid]
            if c.active:
                row = rows.get(cid)
                if lows is None or row is None or cid in fixed:
                    continue
                lowest = math.floor(float(lows[row]) * 10 + 1e-9) / 10
                target = min(target, lowest)
                if target < info.connector.min_current_a - 1e-6:
                    target = 0.0
            if c.own_default_a is None and c.default_a is not None and target >= c.default_a:
                continue  # the station's own limit serves it
            out[cid] = target
        return out

    def _plan_rows(self, plan: Plan | None) -> Mapping[str, int]:
        """Connector → its row in ``plan`` (kept for the plan's life: plans are many
        connectors long, and a tuple is slow to search)."""
        if plan is None:
            return {}
        cached = self._rows_cache
        if cached is None or cached[0] is not plan:
            cached = self._rows_cache = (plan, {cid: i for i, cid in enumerate(plan.connector_ids)})
        return cached[1]

    def load_model(self, lines: Mapping[str, tuple[Line, ...]] | None) -> LoadModel:
        """The site's limit families for the lines the cars load (kept per line set)."""
        conns = self.site.connectors
        key = tuple(
            sorted((cid, ls) for cid, ls in (lines or {}).items() if ls != conns[cid].lines)
        )
        model = self._models.get(key)
        if model is None:
            if len(self._models) > 32:
                self._models.clear()
            model = self._models[key] = LoadModel.build(self.site, lines)
        return model

    async def follow_capacity_with_fallbacks(self, now: datetime) -> None:
        """Lower the stations' fallback limits when capacity falls below their
        sum (or a station in doubt takes more of it); raise them back (to at
        most the static share) once that fits next to everything that may be in
        force. A station that refused or did not answer is tried again after
        ``pin_s``."""
        wanted = self.fallback_now(now)
        grid = TimeGrid.covering(now, self.site.site.slot_minutes, self.site.site.horizon_hours)
        lower: list[str] = []
        higher: list[str] = []
        mono = self.monotonic()
        for sid in self.connected:
            cids = self._station_connectors(sid)
            if not cids or sid not in wanted or sid in self._fallback_pending:
                continue
            if self._fallback_retry_at.get(sid, -math.inf) > mono:
                continue  # it refused or did not answer lately: leave it be
            cur = self.book.get(cids[0]).default_a
            if sid in self._fallback_failed or (cur is None and self.settings.fallback_on_boot):
                lower.append(sid)  # never above what it is assumed to draw
                continue
            if cur is None:
                continue
            if wanted[sid] < cur - 1e-6:
                lower.append(sid)
            elif wanted[sid] >= cur + self.settings.min_change_a - 1e-6:
                higher.append(sid)
        await asyncio.gather(*(self.install_fallback(sid, wanted[sid]) for sid in lower))
        if not higher:
            return
        model = self.load_model(self.plan.lines if self.plan is not None else None)
        cap = model.capacity(self.site, self.capacity(grid, now), grid)
        worst = self.book.worst_all(grid)
        load = model.load(worst, grid.slots)
        admitted = []
        for sid in higher:
            rises = {}
            for cid in self._station_connectors(sid):
                c = self.book.get(cid)
                if c.own_default_a is not None:
                    continue  # its own limit applies, not the station's
                if not self.book.count_idle and (not c.active or c.accepted is not None):
                    continue  # not counted, or its profile applies
                rises[cid] = np.maximum(worst.get(cid, np.zeros(grid.slots)), wanted[sid])
            if all(raise_fits(cid, new, worst, model, cap, load) for cid, new in rises.items()):
                for cid, new in rises.items():
                    delta = new - worst.get(cid, np.zeros(grid.slots))
                    for f, coef in model.members.get(cid, ()):
                        load[f] += coef * delta
                    worst[cid] = new
                admitted.append(sid)
        await asyncio.gather(*(self.install_fallback(sid, wanted[sid]) for sid in admitted))

    async def install_fallback(self, station_id: str, limit: float | None = None) -> CommandResult:
        """TxDefault on connector 0 whose sum over every group fits its fallback."""
        if limit is None:
            # its share of what the others, in doubt or not, leave
            wanted = self.fallback_now(self.clock(), exclude=station_id)
            limit = wanted.get(station_id, self.fallback_a[station_id])
        spec = fallback_spec(station_id, limit, self.clock(), self.site)
        pid = self.store.profile_sent(
            station_id,
            None,
            spec.purpose.value,
            None,
            spec.start,
            [(p.start_offset_s, p.limit_a) for p in spec.periods],
            self.clock(),
        )
        cids = self._station_connectors(station_id)
        self._fallback_pending[station_id] = limit
        for cid in cids:
            self.book.default_sending(cid, limit)
        try:
            result = await asyncio.wait_for(
                self.gateway.set_limit(station_id, spec), self.settings.answer_timeout_s
            )
        except TimeoutError:
            result = CommandResult(CommandOutcome.TIMEOUT, "no answer")
        finally:
            self._fallback_pending.pop(station_id, None)
        self.store.profile_answered(pid, result.outcome.value, result.detail, self.clock())
        for cid in cids:
            self.book.default_answered(cid, limit, result)
        if result.outcome is CommandOutcome.ACCEPTED:
            self.fallback_in_force[station_id] = limit
            self._fallback_retry_at.pop(station_id, None)
            self._fallback_failed.discard(station_id)
            self.request_replan("fallback installed")
        else:
            # assumed to draw what it may: the others' fallbacks and the plan make room
            log.warning(
                "fallback limit for %s: %s %s", station_id, result.outcome.value, result.detail
            )
            mono = self.monotonic()
            self._fallback_retry_at[station_id] = mono + self.settings.pin_s
            self._fallback_failed.add(station_id)
            for cid in cids:
                self.book.pin(cid, result, mono, pin_s=self.settings.pin_s)
            self.request_replan("fallback refused")
        return result

    # --- planning ----------------------------------------------------------------------------

    def request_replan(self, reason: str) -> None:
        if self._stopping:
            return
        if self.replan_requested_at is None:
            self.replan_requested_at = time.perf_counter()
        self._reasons.add(reason)
        self._idle.clear()
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._replan_loop())

    async def _replan_loop(self) -> None:
        try:
            await asyncio.sleep(self.settings.coalesce_s)
            while self._reasons and not self._stopping:
                reasons = sorted(self._reasons)
                self._reasons.clear()
                self.plan_requested_at = self.replan_requested_at
                self.replan_requested_at = None
                waiters, self._waiters = self._waiters, []
                try:
                    await self.replan(", ".join(reasons))
                except asyncio.CancelledError:
                    for w in waiters:
                        w.cancel()
                    raise
                # the service keeps running whatever one plan does; the next
                # event or the periodic clock plans again
                except Exception as e:
                    log.exception("re-plan failed")
                    for w in waiters:
                        if not w.done():
                            w.set_exception(e)
                else:
                    for w in waiters:
                        if not w.done():
                            w.set_result(None)
        finally:
            if not self._reasons:
                self._idle.set()

    def problem(
        self, now: datetime, *, steady: bool = True
    ) -> tuple[PlanningProblem, dict[str, float]]:
        site = self.site
        grid = TimeGrid.covering(now, site.site.slot_minutes, site.site.horizon_hours)
        capacity = self.capacity(grid, now)
        pinned = self.book.pinned(self.monotonic())
        # with idle connectors counted, a station in doubt about its fallback
        # limit draws up to its maximum whatever we send: fixed load
        doubtful = self._fallback_doubtful() if self.book.count_idle else set()
        fixed: dict[str, float] = {}
        for cid, c in self.book.connectors.items():
            # not ours to plan: refused, unreachable, waiting, or a session we never saw
            if c.active and (
                cid in pinned
                or cid not in self.sessions
                or site.connectors[cid].station_id in doubtful
            ):
                fixed[cid] = self.book.worst_max(cid, now, grid)
        idle = (
            [cid for cid in site.connectors if not self.book.get(cid).active]
            if self.book.count_idle
            else []
        )
        if idle:
            restore = self.default_targets(now)
            for cid in idle:
                # an idle connector's own fallback goes back up to its share
                fixed[cid] = max(self.book.worst_max(cid, now, grid), restore.get(cid, 0.0))
        demands, isolated = self._admissible(now, fixed)
        for cid in isolated:
            # still running at its station: counted at the most it may draw
            fixed[cid] = self.book.worst_max(cid, now, grid)
        self._isolated(isolated, now)
        previous: dict[str, float] = {}
        rows = self._plan_rows(self.plan)
        if steady and self.plan is not None:
            for d in demands:
                if d.connector_id in rows:
                    previous[d.session_id] = self.plan.now_a(d.connector_id)
        problem = PlanningProblem(
            site, grid, now, tuple(demands), capacity, fixed_load_a=fixed, previous=previous
        )
        return problem, fixed

    def _admissible(
        self, now: datetime, fixed: Mapping[str, float]
    ) -> tuple[list[SessionDemand], dict[str, str]]:
        """The demands of the sessions to plan, and the connectors whose session
        must be left out (with why): one inconsistent session (a record the
        planner would refuse, two sessions claiming one id or one connector)
        never stops the others from being planned."""
        conns = self.site.connectors
        isolated: dict[str, str] = {}
        candidates: list[SessionDemand] = []
        for cid, s in self.sessions.items():
            if cid in fixed:
                continue  # not ours to plan now
            if s.connector_id != cid:
                isolated[cid] = f"recorded on {s.connector_id!r}, running on {cid!r}"
                continue
            if s.lines is not None and not set(s.lines) <= set(conns[cid].lines):
                isolated[cid] = f"lines {[x.value for x in s.lines]} not wired at {cid!r}"
                continue
            try:
                candidates.append(self._demand(s, now))
            except ProblemError as e:
                isolated[cid] = str(e)
        ids = Counter(d.session_id for d in candidates)
        demands = []
        for d in candidates:
            if ids[d.session_id] > 1:
                isolated[d.connector_id] = f"session id {d.session_id!r} repeats"
            else:
                demands.append(d)
        return demands, isolated

    def _isolated(self, isolated: Mapping[str, str], now: datetime) -> None:
        """Keep the conflicts current: warn once when a session is isolated."""
        keep: dict[tuple[str, ...], ConflictReport] = {}
        for cid, reason in isolated.items():
            s = self.sessions[cid]
            key: tuple[str, ...] = ("isolated", cid, s.station_id, s.transaction_id)
            old = self.conflicts.get(key)
            if old is None or old.reason != reason:
                log.warning(
                    "session %r of %r on %r left out of planning: %s",
                    s.transaction_id,
                    s.station_id,
                    cid,
                    reason,
                )
                old = ConflictReport("isolated", s.station_id, s.transaction_id, cid, reason, now)
            keep[key] = old
        for gone in [k for k in self.conflicts if k[0] == "isolated" and k not in keep]:
            del self.conflicts[gone]
        self.conflicts.update(keep)

    def _conflict(self, key: tuple[str, ...], conflict: ConflictReport) -> None:
        """Report a session refused (or superseded); the latest few are kept."""
        log.warning(
            "session %r of %r %s: %s",
            conflict.transaction_id,
            conflict.station_id,
            conflict.kind,
            conflict.reason,
        )
        self.conflicts_total[conflict.kind] += 1
        self.conflicts.pop(key, None)
        self.conflicts[key] = conflict
        kept = [k for k in self.conflicts if k[0] == key[0]]
        for k in kept[: max(0, len(kept) - REFUSED_KEPT)]:
            del self.conflicts[k]

    def _demand(self, s: SessionState, now: datetime) -> SessionDemand:
        departure = (
            s.departure or s.est_departure or (now + timedelta(hours=self.defaults.dwell_hours))
        )
        departure = still_plugged_in(departure, now, self.defaults)
        if s.energy_need_wh is not None:
            need = max(0.0, s.energy_need_wh / 1000.0 - s.delivered_kwh)
        else:
            est = s.est_energy_kwh if s.est_energy_kwh is not None else self.defaults.energy_kwh
            need = still_wanted_kwh(est, s.delivered_kwh, self.defaults)
        caps = [c for c in (s.ev_max_current_a, s.rate.max_current_a) if c is not None]
        arrival = min(s.started_at, now)
        return SessionDemand(
            session_id=s.session_id,
            connector_id=s.connector_id,
            arrival=arrival,
            departure=max(departure, arrival + timedelta(minutes=1)),
            energy_kwh=need,
            ev_max_current_a=min(caps) if caps else None,
            ev_min_current_a=s.ev_min_current_a,
            priority=s.priority,
            lines=s.lines,
            taper_kwh=self.defaults.taper_for(energy_stated=s.energy_need_wh is not None),
        )

    async def replan(self, reason: str = "manual") -> tuple[Plan, RolloutReport]:
        now = self.clock()
        await self.follow_capacity_with_fallbacks(now)
        steady = set(reason.split(", ")) <= STEADY_REASONS
        problem, _ = self.problem(now, steady=steady)
        plan = await asyncio.to_thread(
            solve, problem, planner=self.planner, time_limit_s=self.settings.solve_time_limit_s
        )
        self.plan, self.plan_at = plan, now
        self.plans += 1
        self.plan_id = self.store.save_plan(plan, now, reason)
        self.plan_reason = reason
        report = await self.rollout(plan, problem)
        self.last_report = report
        for observer in self.on_plan:
            observer(plan, report)
        if report.failed or report.withheld:
            log.info(
                "rollout: %d failed, %d withheld; planning again around them",
                len(report.failed),
                len(report.withheld),
            )
            # again soon, but back off if the same trouble keeps coming back
            self._incomplete += 1
            self._later(min(0.2 * 2 ** (self._incomplete - 1), 30.0), "rollout incomplete")
        else:
            self._incomplete = 0
        waits = [
            self.book.get(cid).pinned_until - self.monotonic()
            for cid, outcome in report.failed.items()
            if outcome is CommandOutcome.RATE_LIMITED
        ]
        if waits:  # try again once the station said we may
            self._later(max(0.0, min(waits)) + 0.05, "retry after")
        return plan, report

    def _later(self, delay_s: float, reason: str) -> None:
        if self._stopping:
            return
        loop = asyncio.get_running_loop()
        self._timers = [h for h in self._timers if not h.cancelled() and h.when() > loop.time()]
        self._timers.append(loop.call_later(delay_s, self.request_replan, reason))

    async def rollout(self, plan: Plan, problem: PlanningProblem) -> RolloutReport:
        grid = plan.grid
        targets = {
            cid: plan.schedule(cid) for cid in self.sessions if cid not in problem.fixed_load_a
        }
        defaults = self.default_targets(self.clock(), plan, problem.fixed_load_a)
        model = self.load_model(plan.lines)
        cap = model.capacity(self.site, problem.capacity, grid)
        profile_ids: dict[int, int] = {}
        now = self.clock()

        def build(cid: str, schedule: LimitSchedule) -> tuple[str, ChargingLimitSpec] | None:
            s = self.sessions.get(cid)
            if s is None:
                return None
            info = self.site.connectors[cid]
            spec = schedule.to_spec(
                LimitPurpose.TX,
                info.connector.id,
                transaction_id=s.transaction_id,
                number_phases=len(info.lines),
                voltage_v=info.voltage_v,
                max_periods=self.settings.max_periods,
            )
            return info.station_id, spec

        def build_default(cid: str, limit: float) -> tuple[str, ChargingLimitSpec]:
            info = self.site.connectors[cid]
            spec = LimitSchedule.constant(now - timedelta(minutes=1), limit).to_spec(
                LimitPurpose.TX_DEFAULT,
                info.connector.id,
                transaction_id=None,
                number_phases=len(info.lines),
                voltage_v=info.voltage_v,
            )
            return info.station_id, spec

        def sending(batch: list[tuple[str, str, ChargingLimitSpec]]) -> None:
            rows = [
                (
                    sid,
                    cid,
                    spec.purpose.value,
                    spec.transaction_id,
                    spec.start,
                    [(p.start_offset_s, p.limit_a) for p in spec.periods],
                )
                for cid, sid, spec in batch
            ]
            ids = self.store.profiles_sent(rows, now)
            for (_, _, spec), pid in zip(batch, ids, strict=True):
                profile_ids[id(spec)] = pid

        def answered(
            batch: list[tuple[str, LimitSchedule, ChargingLimitSpec, CommandResult]],
        ) -> None:
            at = self.clock()
            rows = []
            for cid, _, spec, result in batch:
                pid = profile_ids.pop(id(spec), None)
                if pid is not None:
                    rows.append((pid, result.outcome.value, result.detail))
                if result.outcome is CommandOutcome.ACCEPTED and spec.purpose is LimitPurpose.TX:
                    self.limit_changed_at[cid] = at
                    s = self.sessions.get(cid)
                    if s is not None:
                        s.rate.offer_changed()
            self.store.profiles_answered(rows, at)

        return await run_rollout(
            self.gateway,
            self.book,
            grid,
            targets,
            model,
            cap,
            build,
            hysteresis=Hysteresis(self.settings.min_change_a),
            pin_s=self.settings.pin_s,
            clock=self.monotonic,
            on_sending=sending,
            on_answers=answered,
            answer_timeout_s=self.settings.answer_timeout_s,
            defaults=defaults,
            build_default=build_default,
        )

    # --- helpers -------------------------------------------------------------------------------

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background_done)

    def _background_done(self, task: asyncio.Task[Any]) -> None:
        self._background.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("background command failed", exc_info=task.exception())

    def limit_now(self, cid: str, at: datetime | None = None) -> float | None:
        c = self.book.connectors.get(cid)
        if c is None or not c.active:
            return None
        return self._offered_now(cid, at or self.clock())

    def status(self) -> dict[str, Any]:
        now = self.clock()
        plan = self.plan
        pinned = self.book.pinned(self.monotonic())
        sessions = []
        for cid, s in sorted(self.sessions.items()):
            sessions.append(
                {
                    "connector_id": cid,
                    "session_id": s.session_id,
                    "station_id": s.station_id,
                    "transaction_id": s.transaction_id,
                    "id_tag": s.id_tag,
                    "started_at": s.started_at.isoformat(),
                    "energy_kwh": round(s.delivered_kwh, 3),
                    "departure": (s.departure or s.est_departure or now).isoformat(),
                    "departure_estimated": s.departure is None,
                    "limit_a": self.limit_now(cid, now),
                    "planned_a": round(plan.now_a(cid), 1)
                    if plan is not None and cid in self._plan_rows(plan)
                    else None,
                    "drawn_a": None if s.drawn_a is None else round(s.drawn_a, 2),
                    "learned_cap_a": s.cap_a,
                    "learned_lines": None if s.lines is None else [x.value for x in s.lines],
                    "pinned": pinned.get(cid),
                }
            )
        report = self.last_report
        return {
            "site": self.site.site.name,
            "now": now.isoformat(),
            "stations": {
                "connected": sorted(self.connected),
                "known": len(self.fallback_a),
            },
            "sessions": sessions,
            "plan": None
            if plan is None
            else {
                "at": self.plan_at.isoformat() if self.plan_at else None,
                "grid_start": plan.grid.start.isoformat(),
                "status": plan.status.value,
                "solve_ms": round(plan.solve_ms, 2),
                "count": self.plans,
                "summary": plan.summary(),
            },
            "rollout": None
            if report is None
            else {
                "sent": report.sent,
                "accepted": report.accepted,
                "failed": {k: v.value for k, v in report.failed.items()},
                "withheld": report.withheld,
                "unchanged": report.unchanged,
            },
            "groups": self._group_status(now),
            "overrides": {"limit_a": self.overrides.limit_a, "limit_kw": self.overrides.limit_kw},
            "conflicts": [c.to_dict() for c in self.conflicts.values()],
        }

    def _group_status(self, now: datetime) -> dict[str, dict[str, Any]]:
        grid = TimeGrid.covering(now, self.site.site.slot_minutes, self.site.site.slot_minutes / 60)
        cap = self.capacity(grid, now)
        loads = self.group_loads(now)
        out: dict[str, dict[str, Any]] = {}
        for g in self.site.groups:
            a = cap.limit_a.get(g.id)
            kw = cap.limit_kw.get(g.id)
            out[g.id] = {
                "capacity_a": None if a is None or not np.isfinite(a[0]) else float(a[0]),
                "capacity_kw": None if kw is None or not np.isfinite(kw[0]) else float(kw[0]),
                "limits_in_force_a": {k: round(v, 1) for k, v in loads[g.id].items()},
            }
        return out

    def group_loads(self, at: datetime | None = None) -> dict[str, dict[str, float]]:
        """Per group and line: the sum of limits in force now (for views and checks)."""
        at = at or self.clock()
        out: dict[str, dict[str, float]] = {
            g.id: dict.fromkeys((x.value for x in LINES), 0.0) for g in self.site.groups
        }
        for cid, c in self.book.connectors.items():
            if not c.active and not self.book.count_idle:
                continue
            info = self.site.connectors[cid]
            a = (
                self._offered_now(cid, at)
                if c.active
                else float(self.book.worst(cid, TimeGrid(at, self.site.site.slot_minutes, 1))[0])
            )
            s = self.sessions.get(cid)
            lines = (s.lines if s is not None and s.lines else None) or info.lines
            for gid in info.ancestors:
                for line in lines:
                    out[gid][line.value] += a
        return out
