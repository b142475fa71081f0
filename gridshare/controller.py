"""The controller: events in, state, re-plans, safe rollouts out.

    station event ──► store (committed) ──► SiteState.apply ──► effects
                                                          │ Replan: coalesced
    slot clock / periodic (APScheduler) ──────────────────┤
    operator limit / forecast change ─────────────────────┘
                                                          ▼
              PlanningProblem ──► optimizer.solve (worker thread, warm planner)
                                                          ▼
                                 rollout (lowerings first) ──► stations

The site's decisions live in `gridshare.site`, plain code without a clock of
its own: the state of stations and sessions (`site.state`), the operator's
limits (`site.operator_limits`), the fallback policy (`site.fallback`), the
planning problem (`site.problem`) and the read views (`site.views`). This is
the asyncio layer around them: it stores, carries out effects, runs the
re-plan loop and the rollouts, and keeps the background commands.

Re-plans are coalesced: a burst of events while a plan is being solved gives
one more plan, not one per event. Only one plan and rollout runs at a time.

Two speeds: a meter value that changes what one car takes (``FAST_REASONS``)
first re-dispatches the slot in force within every limit (`fast_path`, no
solve: the car lowered to what it takes, the freed current raised on others),
then the full re-plan follows; both rollouts share one lock.

By default the planner reserves each idle connector's fallback limit, because
a car that plugs in draws it before the next plan reaches its station
(``reserve_for_arrivals``; without it the sum of limits in force may exceed a
group's capacity from an arrival until its first profile is accepted).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Protocol, Unpack

from forecasts.demand import DemandDefaults
from gridshare.fast_path import FAST_REASONS, FastPath
from gridshare.replan_loop import ReplanLoop, Rollouts
from gridshare.rollout import LimitBook, RolloutReport
from gridshare.site.fallback import FallbackPolicy
from gridshare.site.lookups import LoadModels, PlanRows
from gridshare.site.operator_limits import OVERRIDES_STATE, OperatorLimit, OperatorLimits
from gridshare.site.plan_log import log_plan
from gridshare.site.problem import ProblemBuilder
from gridshare.site.profiles import ProfileBuilder
from gridshare.site.settings import ControllerSettings
from gridshare.site.state import (
    ClearLimit,
    ConflictReport,
    Effect,
    EndSuperseded,
    InstallFallback,
    Replan,
    SessionEdits,
    SessionState,
    SiteState,
    priority_charging,
)
from gridshare.site.views import PlanRecord, SiteStatus, group_loads, site_status
from gridshare.store import SessionConflict, Store
from ocpp_adapter.events import (
    PROPERTY_CONSTRAINT,
    ChargingLimitSpec,
    CommandOutcome,
    CommandResult,
    DomainEvent,
    EventRefused,
    MeterReading,
    StationConnected,
)
from optimizer import HighsPlanner, Plan, PlanningProblem, solve
from optimizer.problem import Capacity, TimeGrid
from optimizer.site import Site

__all__ = [
    "CapacityProvider",
    "Controller",
    "ControllerGateway",
    "ControllerSettings",
    "SessionState",
    "static_capacity",
]

log = logging.getLogger(__name__)


class ControllerGateway(Protocol):
    """What the controller needs of the OCPP adapter."""

    async def set_limit(self, station_id: str, spec: ChargingLimitSpec) -> CommandResult: ...

    async def clear_limit(self, station_id: str, connector: int) -> CommandResult: ...


CapacityProvider = Callable[[Site, TimeGrid, datetime], Capacity]
"""Site, planning grid, now → the capacity the planner sees (forecasts, overrides)."""


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
        self.overrides = OperatorLimits()
        """The operator's limits on groups."""
        self.rows = PlanRows()
        self.load_model = LoadModels(site)
        """The site's limit families for the lines the cars load (kept per line set)."""
        self.state = SiteState(
            site,
            self.book,
            store,
            known_stations=(),
            defaults=self.defaults,
            settings=self.settings,
        )
        self.fallback = FallbackPolicy(self.state, self.capacity, self.rows, self.settings)
        self.state.known_stations = frozenset(self.fallback.shares)
        self.problems = ProblemBuilder(self.state, self.fallback, self.capacity, self.rows)
        self._incomplete = 0
        self.plan: Plan | None = None
        self.plan_at: datetime | None = None
        self.plans = 0
        self.last_report: RolloutReport | None = None
        self.replans = ReplanLoop(self.replan, self.settings.coalesce_s)
        self.profiles = ProfileBuilder(self.state, self.settings.max_periods)
        self.rollouts = Rollouts(
            gateway,
            self.book,
            store,
            self.state,
            self.profiles,
            self.settings,
            clock=clock,
            monotonic=monotonic,
        )
        self.fast = FastPath(self.state, self.book, self.load_model, self.capacity, self.rollouts)
        """The fast speed: the slot in force re-dispatched on a meter value."""
        self._background: set[asyncio.Task[Any]] = set()
        self.on_plan: list[Callable[[Plan, RolloutReport], None]] = []
        """Observers (demo view, benchmarks, metrics): called after each rollout."""
        self.plan_id: int | None = None
        """The store's id of the current plan."""
        self.plan_reason = ""
        self.live_capacity: Callable[..., Callable[[], Any]] | None = None  # gridshare.meters

    # --- the site's state, read through ---------------------------------------------------

    @property
    def sessions(self) -> dict[str, SessionState]:
        """Connector → its running session."""
        return self.state.sessions

    @property
    def connected(self) -> dict[str, str]:
        """Station id → protocol, for stations connected now."""
        return self.state.connected

    @property
    def status_by_connector(self) -> dict[str, str]:
        return self.state.status_by_connector

    @property
    def conflicts(self) -> dict[tuple[str, ...], ConflictReport]:
        """Sessions isolated from planning now, and the latest refused session starts."""
        return self.state.conflicts

    @property
    def conflicts_total(self) -> Counter[str]:
        """Sessions refused and superseded since the start, by kind."""
        return self.state.conflicts_total

    @property
    def background_tasks(self) -> frozenset[asyncio.Task[Any]]:
        """Commands running in the background (fallback limits, cleared profiles)."""
        return frozenset(self._background)

    # --- life cycle ---------------------------------------------------------------------

    async def start(self, *, scheduler: bool = True) -> None:
        self.recover()
        self.overrides.recover(self.store.get_state(OVERRIDES_STATE) or [], self.site.group_by_id)
        if scheduler:
            self.replans.start_clock(self.site.site.slot_minutes, self.settings.replan_interval_s)
        self.request_replan("start")

    def recover(self) -> None:
        """Rebuild sessions and the limits in force from the store (after a restart).

        Every station counts as not connected until it reconnects: the plan
        reserves what it may draw and re-adopts it when it comes back.
        """
        running, ends = self.state.superseded(self.store.active_sessions(), self.clock())
        for end in ends:
            self._carry_out(end)
        self.state.recover(running, self.store.limits_in_force(), self.store.unanswered_profiles())

    async def stop(self) -> None:
        tasks = self.replans.halt() + self.fast.halt()
        tasks += [t for t in self._background if not t.done()]
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def busy(self) -> bool:
        """A plan pending or running, a command in the background, or a re-plan timer set."""
        return self.replans.busy() or self.fast.busy() or bool(self._background)

    async def wait_idle(self, timeout: float = 10.0) -> None:
        """Until no plan is pending or running (tests, demo)."""
        await self.replans.wait_idle(timeout)

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
            self.state.refused(e, self.clock())
            raise EventRefused(PROPERTY_CONSTRAINT, str(e)) from e
        self.apply(event)
        return event

    def plausible(self, r: MeterReading) -> MeterReading:
        """The reading without what no meter can see (see `SiteState.plausible`)."""
        return self.state.plausible(r)

    def apply(self, event: DomainEvent) -> None:
        """Apply a stored event to the site's state and carry out what it calls for."""
        if isinstance(event, StationConnected):
            self.fallback.connected(event.station_id)
        effects = [*self.state.apply(event, self.clock()), *priority_charging(self.state, event)]
        for effect in effects:
            if isinstance(effect, Replan) and effect.reason in FAST_REASONS:
                self.fast.request()  # now, ahead of the full re-plan
            self._carry_out(effect)

    def _carry_out(self, effect: Effect) -> None:
        match effect:
            case Replan(reason):
                self.request_replan(reason)
            case InstallFallback(station_id):
                self._spawn(self.install_fallback(station_id))
            case ClearLimit(station_id, connector):
                self._spawn(self._clear(station_id, connector))
            case EndSuperseded():
                self.store.end_superseded(
                    effect.station_id,
                    effect.transaction_id,
                    effect.ended_at,
                    effect.by_transaction_id,
                )

    async def _clear(self, station_id: str, connector: int) -> None:
        result = await self.gateway.clear_limit(station_id, connector)
        if result.outcome is not CommandOutcome.ACCEPTED:
            log.info("clearing the profile of %s/%s: %s", station_id, connector, result.outcome)

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
    ) -> OperatorLimit | None:
        """Replace the group's override (both limits None: remove it); persist,
        audit and re-plan. ``start``/``end`` bound when it is in force."""
        if group_id not in self.site.group_by_id:
            raise KeyError(group_id)
        now = self.clock()
        change = self.overrides.set(
            group_id,
            limit_a=limit_a,
            limit_kw=limit_kw,
            start=start,
            end=end,
            set_by=actor or source,
            at=now,
        )
        self.store.put_state(OVERRIDES_STATE, self.overrides.export())
        detail = {**change.detail, "source": source, "actor": actor}
        self.store.audit(now, change.kind, group_id, detail)
        self.request_replan(f"{source} limit")
        return change.limit

    def update_session(
        self, connector_id: str, *, actor: str = "operator", **edits: Unpack[SessionEdits]
    ) -> SessionState:
        """Change what we assume of a running session (persisted, audited) and re-plan."""
        change = self.state.update_session(connector_id, **edits)
        s, mode = change.session, edits.get("charge_mode")
        self.store.update_session(
            s.session_id,
            priority=edits.get("priority"),
            departure=edits.get("departure"),
            energy_need_wh=change.need_wh,
            charge_mode=None if mode is None else mode.value,
        )
        detail = {**change.detail, "actor": actor}
        self.store.audit(self.clock(), "session_changed", s.session_id, detail)
        self.request_replan("session changed")
        return s

    def capacity(self, grid: TimeGrid, now: datetime) -> Capacity:
        """What the planner sees: the provider's capacity under the operator's limits."""
        return self.overrides.fold(self.capacity_provider(self.site, grid, now), grid, now)

    # --- fallback ------------------------------------------------------------------------

    async def follow_capacity_with_fallbacks(self, now: datetime) -> None:
        """Lower the stations' fallback limits when capacity falls below their
        sum (or a station in doubt takes more of it); raise them back (to at
        most the static share) once that fits next to everything that may be in
        force. A station that refused or did not answer is tried again after
        ``pin_s``."""
        moves = self.fallback.moves(now, self.monotonic())
        wanted = moves.wanted
        await asyncio.gather(*(self.install_fallback(sid, wanted[sid]) for sid in moves.lower))
        if not moves.higher:
            return
        grid = TimeGrid.covering(now, self.site.site.slot_minutes, self.site.site.horizon_hours)
        model = self.load_model(self.plan.lines if self.plan is not None else None)
        admitted = self.fallback.admit(moves.higher, wanted, model, self.capacity(grid, now), grid)
        await asyncio.gather(*(self.install_fallback(sid, wanted[sid]) for sid in admitted))

    async def install_fallback(self, station_id: str, limit: float | None = None) -> CommandResult:
        """TxDefault on connector 0 whose sum over every group fits its fallback."""
        if limit is None:
            limit = self.fallback.limit_for(station_id, self.clock())
        spec = self.fallback.spec(station_id, limit, self.clock())
        pid = self.store.profile_sent(
            station_id,
            None,
            spec.purpose.value,
            None,
            spec.start,
            [(p.start_offset_s, p.limit_a) for p in spec.periods],
            self.clock(),
        )
        self.fallback.sending(station_id, limit)
        try:
            result = await asyncio.wait_for(
                self.gateway.set_limit(station_id, spec), self.settings.answer_timeout_s
            )
        except TimeoutError:
            result = CommandResult(CommandOutcome.TIMEOUT, "no answer")
        finally:
            self.fallback.sent(station_id)
        self.store.profile_answered(pid, result.outcome.value, result.detail, self.clock())
        self.request_replan(self.fallback.answered(station_id, limit, result, self.monotonic()))
        return result

    # --- planning ----------------------------------------------------------------------------

    def request_replan(self, reason: str) -> None:
        self.replans.request(reason)

    async def replan_now(self, reason: str, timeout_s: float = 60.0) -> None:
        """Request a re-plan and return once a plan begun after this call is rolled out."""
        await self.replans.now(reason, timeout_s)

    @property
    def plan_requested_at(self) -> float | None:
        """``perf_counter`` time the request behind the current plan came in."""
        return self.replans.plan_requested_at

    def problem(
        self, now: datetime, *, steady: bool = True
    ) -> tuple[PlanningProblem, dict[str, float]]:
        """The planning problem at ``now`` and the connectors counted as fixed load
        (``steady``: keep the current plan's rates unless there is a reason to move)."""
        built = self.problems.build(now, self.monotonic(), previous=self.plan if steady else None)
        self.state.isolate(built.isolated, now)
        return built.problem, dict(built.fixed)

    async def replan(self, reason: str = "manual") -> tuple[Plan, RolloutReport]:
        await self.fast.finished()  # the fast speed first: it takes no solve
        now = self.clock()
        await self.follow_capacity_with_fallbacks(now)
        steady = set(reason.split(", ")) <= STEADY_REASONS
        problem, _ = self.problem(now, steady=steady)
        plan = await asyncio.to_thread(
            solve, problem, planner=self.planner, time_limit_s=self.settings.solve_time_limit_s
        )
        self.plan, self.plan_at = plan, now
        self.plans += 1
        self.plan_id = self.store.save_plan(plan, now, reason, self.site)
        log_plan(plan, reason, self.plan_id)
        self.plan_reason = reason
        self.fast.planned(plan, problem.fixed_load_a)
        async with self.rollouts.lock:
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
            self.replans.later(min(0.2 * 2 ** (self._incomplete - 1), 30.0), "rollout incomplete")
        else:
            self._incomplete = 0
        waits = [
            self.book.get(cid).pinned_until - self.monotonic()
            for cid, outcome in report.failed.items()
            if outcome is CommandOutcome.RATE_LIMITED
        ]
        if waits:  # try again once the station said we may
            self.replans.later(max(0.0, min(waits)) + 0.05, "retry after")
        return plan, report

    async def rollout(self, plan: Plan, problem: PlanningProblem) -> RolloutReport:
        targets = {
            cid: plan.schedule(cid) for cid in self.sessions if cid not in problem.fixed_load_a
        }
        defaults = self.fallback.default_targets(self.clock(), plan, problem.fixed_load_a)
        model = self.load_model(plan.lines)
        cap = model.capacity(self.site, problem.capacity, plan.grid)
        live = self.live_capacity(model, plan.grid) if self.live_capacity else None
        return await self.rollouts.run(
            plan.grid, targets, model, cap, defaults=defaults, live_cap=live
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
        """The limit in force for the connector's running transaction (None: none runs)."""
        return self.state.limit_now(cid, at or self.clock())

    def view(self) -> SiteStatus:
        """The site now, as typed views."""
        return site_status(
            self.state,
            now=self.clock(),
            pinned=self.book.pinned(self.monotonic()),
            latest=PlanRecord(self.plan, self.plan_at, self.plans, self.last_report),
            rows=self.rows,
            capacity=self.capacity,
            limits=self.overrides,
        )

    def status(self) -> dict[str, Any]:
        """`view` as JSON-ready data."""
        return self.view().to_dict()

    def group_loads(self, at: datetime | None = None) -> dict[str, dict[str, float]]:
        """Per group and line: the sum of limits in force now (for views and checks)."""
        return group_loads(self.state, at or self.clock())
