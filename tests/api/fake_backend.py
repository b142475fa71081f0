"""An in-memory `OperatorBackend` that really plans, for the API and browser tests.

`FakeSite` holds a small site, its sessions and their cars. Every write
re-plans with `optimizer.solve`, so a group limit set through the API lowers
the currents planned (and, since its stations accept every profile at once,
the limits in force). `tick` moves time's effects on: each car draws what it
is offered up to what it takes, with a slow wobble, and the draw is recorded
per group and line as the "measured" history.

It keeps the contract of `gridshare.api.backend` (NotFound, Conflict, change
hints) so the API tests exercise what the real service will do, and holds
state only: its answers are built by the service's own projections
(`gridshare.api.projections`), so the two cannot show the same state apart.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np

from forecasts.capacity_book import Stretch
from forecasts.units import Limit
from gridshare.api.backend import OperatorBackend
from gridshare.api.errors import Conflict, NotFound
from gridshare.api.projections import (
    ConnectorSession,
    EndedSession,
    RunningSession,
    connector_out,
    ended_session_out,
    event_page,
    finite,
    forecast_series,
    group_order,
    group_out,
    measured_point,
    member_lines,
    paused_sessions,
    plan_status,
    planned_now_a,
    planned_points,
    profile_out,
    running_session_out,
    status_out,
)
from gridshare.api.schemas import (
    AuditEvent,
    Availability,
    CapacityAdjustRequest,
    CapacityAdjustResult,
    Change,
    ChangeKind,
    CommandOutcome,
    CommandResult,
    DsoStatus,
    EventPage,
    ForecastPage,
    ForecastValue,
    GroupLimitRequest,
    GroupLimitResult,
    GroupOut,
    GroupTimeline,
    GroupTree,
    PlanOut,
    PlanStatus,
    RemoteStart,
    RemoteStop,
    Reset,
    SessionOut,
    SessionPatch,
    SessionResult,
    StationCommand,
    StationOut,
    StatusOut,
    TriggerMeterValues,
)
from gridshare.dso_reports import group_members
from gridshare.site.operator_limits import OperatorLimit
from optimizer import Capacity, Plan, PlanningProblem, SessionDemand, Site, TimeGrid, solve
from optimizer.modes import ChargeMode
from optimizer.problem import LimitWindow
from optimizer.site import LINES, Line

SITE: dict[str, Any] = {
    "site": {"name": "Test depot", "slot_minutes": 15, "horizon_hours": 24},
    "groups": [
        {"id": "grid", "limit_a": 120, "limit_kw": 80, "description": "Grid connection"},
        {"id": "panel-a", "parent": "grid", "limit_a": 80, "description": "Panel A"},
        {"id": "panel-b", "parent": "grid", "limit_a": 40, "description": "Panel B"},
    ],
    "chargers": [
        {"id": "CP01", "group": "panel-a", "connectors": [{"id": 1, "max_current_a": 32}]},
        {"id": "CP02", "group": "panel-a", "connectors": [{"id": 1, "max_current_a": 32}]},
        {"id": "CP03", "group": "panel-a", "connectors": [{"id": 1, "max_current_a": 32}]},
        {"id": "CP04", "group": "panel-b", "connectors": [{"id": 1, "max_current_a": 16}]},
        {
            "id": "CP05",
            "group": "panel-b",
            "connectors": [
                {"id": 1, "max_current_a": 32, "phases": ["L1"], "cable_max_current_a": 20},
                {"id": 2, "max_current_a": 32, "phases": ["L2"], "cable_max_current_a": 20},
            ],
        },
    ],
}

# connector → (session id, energy need kWh, hours to departure, what the car takes in A)
ARRIVALS: dict[str, tuple[str, float, float, float]] = {
    "CP01/1": ("T1", 40.0, 6.0, 32.0),
    "CP02/1": ("T2", 30.0, 5.0, 32.0),
    "CP03/1": ("T3", 25.0, 8.0, 16.0),
    "CP04/1": ("T4", 15.0, 4.0, 16.0),
    "CP05/1": ("T5", 8.0, 3.0, 20.0),
}


@dataclass
class FakeSession:
    session_id: str
    connector_id: str
    id_tag: str | None
    started_at: datetime
    departure: datetime
    departure_stated: bool
    energy_need_kwh: float
    """Still needed at ``started_at`` + delivered: the target is need - delivered."""
    need_stated: bool
    car_max_a: float
    priority: float = 1.0
    delivered_kwh: float = 0.0
    drawn: dict[Line, float] = field(default_factory=dict)
    charge_mode: str = "fast"
    ended_at: datetime | None = None

    @property
    def active(self) -> bool:
        return self.ended_at is None

    @property
    def remaining_kwh(self) -> float:
        return max(0.0, self.energy_need_kwh - self.delivered_kwh)


@dataclass
class HistoryPoint:
    at: datetime
    measured: dict[str, dict[Line, float]]
    capacity: dict[str, tuple[float | None, float | None]]


class FakeSite:
    """See the module docstring. ``clock`` gives aware UTC times."""

    def __init__(
        self,
        site: Site | None = None,
        *,
        clock: Callable[[], datetime] | None = None,
        arrivals: dict[str, tuple[str, float, float, float]] | None = None,
        dso_limit_a: float | None = 100.0,
    ) -> None:
        self.site = site or Site.model_validate(SITE)
        self.clock = clock or (lambda: datetime.now(UTC))
        self.session_by_id: dict[str, FakeSession] = {}
        self.overrides: dict[str, OperatorLimit] = {}
        self.connected = {c.id for c in self.site.chargers}
        self.status_of: dict[str, str] = {cid: "Available" for cid in self.site.connectors}
        self.audit: list[AuditEvent] = []
        self.history: list[HistoryPoint] = []
        self.plan_obj: Plan | None = None
        self.plan_status: PlanStatus | None = None
        self.plan_count = 0
        self.ticks = 0
        self.commands: list[tuple[str, StationCommand, str]] = []
        self.adjustments: list[CapacityAdjustResult] = []
        """Capacity requests "sent" to the fake DSO (it knows the root group only)."""
        self._subscribers: set[asyncio.Queue[Change | None]] = set()
        now = self.clock()
        self.dso_received = now
        self.dso_limit_a = dso_limit_a
        """The DSO's forecast for ``grid``: this per-line limit from 2 h to 4 h ahead."""
        for cid, (sid, need, hours, car) in (
            arrivals if arrivals is not None else ARRIVALS
        ).items():
            self._start(cid, sid, None, need, now + timedelta(hours=hours), car, now)
        self._replan("start")

    # --- the model -----------------------------------------------------------------------

    def _start(
        self,
        cid: str,
        sid: str,
        id_tag: str | None,
        need: float,
        departure: datetime,
        car: float,
        now: datetime,
    ) -> None:
        self.session_by_id[sid] = FakeSession(
            session_id=sid,
            connector_id=cid,
            id_tag=id_tag or f"TAG-{sid}",
            started_at=now - timedelta(minutes=30),
            departure=departure,
            departure_stated=True,
            energy_need_kwh=need,
            need_stated=True,
            car_max_a=car,
        )
        self.status_of[cid] = "Charging"

    def active_on(self, cid: str) -> FakeSession | None:
        for s in self.session_by_id.values():
            if s.active and s.connector_id == cid:
                return s
        return None

    def dso_window(self, now: datetime) -> tuple[datetime, datetime]:
        start = now.replace(minute=0, second=0, microsecond=0) + timedelta(hours=2)
        return start, start + timedelta(hours=2)

    def capacity(self, grid: TimeGrid, now: datetime) -> Capacity:
        cap = Capacity.static(self.site, grid)
        starts = np.array([grid.slot_start(i) for i in range(grid.slots)], dtype=object)
        if self.dso_limit_a is not None:
            d0, d1 = self.dso_window(now)
            mask = np.array([d0 <= t < d1 for t in starts], dtype=bool)
            cap = cap.lowered(self.site.root.id, mask, limit_a=self.dso_limit_a, limit_kw=None)
        return cap.limited(grid, (o.window for o in self.overrides.values()))

    def _replan(self, reason: str) -> PlanStatus:
        now = self.clock()
        info = self.site.site
        grid = TimeGrid.covering(now, info.slot_minutes, info.horizon_hours)
        demands = []
        for s in self.session_by_id.values():
            if not s.active:
                continue
            departure = max(s.departure, now + grid.step)
            demands.append(
                SessionDemand(
                    session_id=s.session_id,
                    connector_id=s.connector_id,
                    arrival=s.started_at,
                    departure=departure,
                    energy_kwh=s.remaining_kwh,
                    ev_max_current_a=s.car_max_a,
                    priority=s.priority,
                    charge_mode=ChargeMode(s.charge_mode),
                )
            )
        problem = PlanningProblem(
            site=self.site,
            grid=grid,
            now=now,
            sessions=tuple(demands),
            capacity=self.capacity(grid, now),
        )
        plan = solve(problem)
        self.plan_obj = plan
        self.plan_count += 1
        self.plan_status = plan_status(plan, plan_id=self.plan_count, created_at=now, reason=reason)
        self.publish(ChangeKind.PLAN, reason)
        return self.plan_status

    def limit_now(self, cid: str) -> float:
        return self.plan_obj.now_a(cid) if self.plan_obj is not None else 0.0

    def plan_lines(self, cid: str) -> tuple[Line, ...]:
        if self.plan_obj is not None and cid in self.plan_obj.lines:
            return tuple(self.plan_obj.lines[cid])
        return self.site.connectors[cid].lines

    def group_connectors(self, gid: str) -> dict[str, float]:
        """Connector → weight (1 in the tree, |weight| in a weighted group)."""
        return group_members(self.site, self.site.group_by_id[gid])

    def running(self) -> dict[str, FakeSession]:
        """Connector → its running session."""
        return {s.connector_id: s for s in self.session_by_id.values() if s.active}

    def measured_now(self) -> dict[str, dict[Line, float]]:
        out: dict[str, dict[Line, float]] = {}
        for g in self.site.groups:
            sums = dict.fromkeys(LINES, 0.0)
            for cid, w in self.group_connectors(g.id).items():
                s = self.active_on(cid)
                if s is None:
                    continue
                for line, a in s.drawn.items():
                    sums[line] += w * a
            out[g.id] = sums
        return out

    def capacity_slot(self, now: datetime) -> Capacity:
        """The capacity of the planner's slot that holds ``now``."""
        slot = self.site.site.slot_minutes
        return self.capacity(TimeGrid.covering(now, slot, slot / 60), now)

    def capacity_now(self) -> dict[str, tuple[float | None, float | None]]:
        now = self.clock()
        cap = self.capacity_slot(now)
        return {
            g.id: (finite(cap.limit_a[g.id][0]), finite(cap.limit_kw[g.id][0]))
            for g in self.site.groups
        }

    def tick(self, dt_s: float = 1.0) -> None:
        """Cars draw what they are offered (up to what they take), wobbling a little."""
        now = self.clock()
        self.ticks += 1
        for s in self.session_by_id.values():
            if not s.active:
                continue
            offered = self.limit_now(s.connector_id)
            wobble = 0.85 + 0.1 * math.sin(self.ticks / 3.0 + hash(s.session_id) % 7)
            a = min(offered, s.car_max_a) * wobble
            lines = self.plan_lines(s.connector_id)
            s.drawn = {line: round(a, 2) for line in lines}
            kw = a * self.site.connectors[s.connector_id].kw_per_amp(lines)
            s.delivered_kwh += kw * dt_s / 3600.0
        self.history.append(HistoryPoint(now, self.measured_now(), self.capacity_now()))
        del self.history[:-5000]
        self.publish(ChangeKind.MEASUREMENT, "meter values")

    def backfill(self, hours: float, step_s: float = 300.0) -> None:
        """Invent a measured history for the past ``hours`` (cars arriving one by one)."""
        now = self.clock()
        n = int(hours * 3600 / step_s)
        conns = sorted({s.connector_id for s in self.session_by_id.values() if s.active})
        points = []
        for i in range(n, 0, -1):
            at = now - timedelta(seconds=i * step_s)
            frac = 1 - i / n
            draw: dict[str, dict[Line, float]] = {}
            for k, cid in enumerate(conns):
                here = frac * len(conns) >= k
                a = self.limit_now(cid) * (0.8 + 0.1 * math.sin(i / 4 + k)) if here else 0.0
                draw[cid] = {line: a for line in self.plan_lines(cid)}
            measured = {}
            for g in self.site.groups:
                sums = dict.fromkeys(LINES, 0.0)
                for cid, w in self.group_connectors(g.id).items():
                    for line, a in draw.get(cid, {}).items():
                        sums[line] += w * a
                measured[g.id] = sums
            static = {g.id: (g.limit_a, g.limit_kw) for g in self.site.groups}
            points.append(HistoryPoint(at, measured, static))
        self.history[:0] = points

    async def run(self, *, period_s: float, max_ticks: int, stop: asyncio.Event) -> None:
        """Tick every ``period_s`` until ``stop`` or ``max_ticks`` (a bounded driver)."""
        for _ in range(max_ticks):
            self.tick(period_s)
            try:
                await asyncio.wait_for(stop.wait(), timeout=period_s)
                return
            except TimeoutError:
                pass

    # --- change hints --------------------------------------------------------------------

    def publish(self, kind: ChangeKind, subject: str = "") -> None:
        change = Change(kind=kind, at=self.clock(), subject=subject)
        for q in self._subscribers:
            if q.qsize() < 100:
                q.put_nowait(change)

    async def changes(self) -> AsyncIterator[Change]:
        q: asyncio.Queue[Change | None] = asyncio.Queue()
        self._subscribers.add(q)
        try:
            while (item := await q.get()) is not None:
                yield item
        finally:
            self._subscribers.discard(q)

    def close(self) -> None:
        """End every subscription (the service shutting down)."""
        for q in self._subscribers:
            q.put_nowait(None)

    @property
    def subscribers(self) -> int:
        return len(self._subscribers)

    def _audit(self, kind: str, subject: str, actor: str, detail: dict[str, Any]) -> None:
        self.audit.append(
            AuditEvent(
                id=len(self.audit) + 1,
                at=self.clock(),
                kind=kind,
                subject=subject,
                actor=actor,
                detail=detail,
            )
        )

    # --- reads ---------------------------------------------------------------------------

    async def status(self) -> StatusOut:
        now = self.clock()
        return status_out(
            self.site,
            now,
            stations_connected=len(self.connected),
            sessions_active=len(self.running()),
            overrides=self.overrides.values(),
            plan=self.plan_status,
            dso=DsoStatus(
                configured=self.dso_limit_a is not None,
                online=True,
                last_heartbeat=now - timedelta(seconds=20),
                fallback_active=False,
                detail="fake DSO",
            ),
        )

    def _dso_value(self, gid: str, now: datetime) -> ForecastValue | None:
        """The fake DSO's forecast for the root group, also while none of it applies."""
        if gid != self.site.root.id or self.dso_limit_a is None:
            return None
        d0, d1 = self.dso_window(now)
        return ForecastValue(
            limit_a=self.dso_limit_a if d0 <= now < d1 else None,
            limit_kw=None,
            source="oscp:fake-dso",
            received_at=self.dso_received,
        )

    def _drawn_kw(self, s: FakeSession) -> float | None:
        if not s.drawn:
            return None
        d = next(iter(s.drawn.values()))
        return d * self.site.connectors[s.connector_id].kw_per_amp(tuple(s.drawn))

    def _group(self, gid: str) -> GroupOut:
        now = self.clock()
        running = self.running()
        measured_kw = {cid: kw for cid, s in running.items() if (kw := self._drawn_kw(s))}
        return group_out(
            self.site,
            gid,
            now,
            members=self.group_connectors(gid),
            capacity=self.capacity_slot(now),
            override=self.overrides.get(gid),
            dso_forecast=self._dso_value(gid, now),
            plan=self.plan_obj,
            running=running.keys(),
            measured={cid: s.drawn for cid, s in running.items()},
            measured_kw=measured_kw,
        )

    async def groups(self) -> GroupTree:
        return GroupTree(
            root=self.site.root.id, groups=[self._group(gid) for gid in group_order(self.site)]
        )

    async def group_timeline(self, group_id: str, history: timedelta) -> GroupTimeline:
        if group_id not in self.site.group_by_id:
            raise NotFound("group", group_id)
        now = self.clock()
        members = self.group_connectors(group_id)
        lines = member_lines(self.site, members)
        points = [
            measured_point(
                h.at,
                *h.capacity[group_id],
                {line: h.measured[group_id][line] for line in lines},
            )
            for h in self.history
            if h.at >= now - history
        ]
        plan = self.plan_obj
        if plan is not None:
            points += planned_points(
                self.site,
                group_id,
                now,
                plan=plan,
                capacity=self.capacity(plan.grid, now),
                members=members,
                running=self.running().keys(),
            )
        return GroupTimeline(group_id=group_id, now=now, lines=lines, points=points)

    async def stations(self) -> list[StationOut]:
        plan = self.plan_obj
        out = []
        for ch in self.site.chargers:
            conns = []
            for con in ch.connectors:
                cid = f"{ch.id}/{con.id}"
                s = self.active_on(cid)
                sent = self.plan_status
                conns.append(
                    connector_out(
                        self.site.connectors[cid],
                        status=self.status_of[cid],
                        session=None
                        if s is None
                        else ConnectorSession(s.session_id, s.delivered_kwh),
                        limit_a=self.limit_now(cid) if s is not None else None,
                        planned_a=planned_now_a(plan, cid, s is not None),
                        draw_a=s.drawn if s is not None else {},
                        power_kw=self._drawn_kw(s) if s is not None else None,
                        # its stations accept every profile at once
                        profile=None
                        if sent is None
                        else profile_out([(0.0, self.limit_now(cid))], sent.created_at, "accepted"),
                    )
                )
            connected = ch.id in self.connected
            out.append(
                StationOut(
                    station_id=ch.id,
                    group=ch.group,
                    connected=connected,
                    protocol="ocpp1.6" if connected else None,
                    vendor="Fake",
                    model="AC22",
                    firmware="1.0",
                    capabilities=["SmartCharging", "RemoteTrigger"],
                    last_seen=self.clock() if connected else None,
                    connectors=conns,
                )
            )
        return out

    def _paused(self) -> set[str]:
        running = {cid: s.session_id for cid, s in self.running().items()}
        return paused_sessions(self.plan_obj, running)

    def _session_out(self, s: FakeSession, paused: set[str]) -> SessionOut:
        if not s.active:
            return ended_session_out(
                EndedSession(
                    session_id=s.session_id,
                    connector_id=s.connector_id,
                    id_tag=s.id_tag,
                    started_at=s.started_at,
                    ended_at=s.ended_at,
                    delivered_kwh=s.delivered_kwh,
                    departure=s.departure,
                    energy_need_stated=s.need_stated,
                    priority=s.priority,
                    charge_mode=s.charge_mode,
                )
            )
        running = RunningSession(
            session_id=s.session_id,
            connector_id=s.connector_id,
            id_tag=s.id_tag,
            started_at=s.started_at,
            delivered_kwh=s.delivered_kwh,
            departure=s.departure,
            departure_estimated=not s.departure_stated,
            energy_need_kwh=s.remaining_kwh,
            energy_need_estimated=not s.need_stated,
            priority=s.priority,
            drawn_a=next(iter(s.drawn.values())) if s.drawn else None,
            charge_mode=s.charge_mode,
        )
        return running_session_out(
            running,
            plan=self.plan_obj,
            limit_a=self.limit_now(s.connector_id),
            paused=s.session_id in paused,
        )

    async def sessions(self, *, active: bool | None) -> list[SessionOut]:
        paused = self._paused()
        return [
            self._session_out(s, paused)
            for s in self.session_by_id.values()
            if active is None or s.active == active
        ]

    async def plan(self) -> PlanOut | None:
        plan, status = self.plan_obj, self.plan_status
        if plan is None or status is None:
            return None
        return PlanOut.of(plan, status, self.site)

    async def forecasts(self, *, limit: int, offset: int) -> ForecastPage:
        if self.dso_limit_a is None:
            return ForecastPage(series=[], total=0)
        d0, d1 = self.dso_window(self.clock())
        applied = Stretch(d0, d1, Limit(self.dso_limit_a, math.inf), "fake-dso", self.dso_received)
        series = forecast_series(self.site.root.id, "capacity", [applied])
        return ForecastPage.of(series, limit=limit, offset=offset)

    async def events(self, *, limit: int, before: int | None) -> EventPage:
        rows = [e for e in reversed(self.audit) if before is None or e.id < before]
        return event_page(rows, limit)

    # --- writes --------------------------------------------------------------------------

    async def set_group_limit(
        self, group_id: str, request: GroupLimitRequest, *, actor: str
    ) -> GroupLimitResult:
        if group_id not in self.site.group_by_id:
            raise NotFound("group", group_id)
        self.overrides[group_id] = OperatorLimit(
            LimitWindow(
                group_id=group_id,
                limit_a=request.limit_a,
                limit_kw=request.limit_kw,
                start=request.start,
                end=request.end,
            ),
            set_by=actor,
            set_at=self.clock(),
        )
        self._audit("group_limit", group_id, actor, request.model_dump(mode="json"))
        self.publish(ChangeKind.LIMIT, group_id)
        status = self._replan("operator limit")
        return GroupLimitResult(
            plan=status, paused_sessions=sorted(self._paused()), group=self._group(group_id)
        )

    async def clear_group_limit(self, group_id: str, *, actor: str) -> GroupLimitResult:
        if group_id not in self.site.group_by_id:
            raise NotFound("group", group_id)
        had = self.overrides.pop(group_id, None) is not None
        self._audit("group_limit_cleared", group_id, actor, {"had_override": had})
        self.publish(ChangeKind.LIMIT, group_id)
        status = self._replan("operator limit cleared")
        return GroupLimitResult(
            plan=status, paused_sessions=sorted(self._paused()), group=self._group(group_id)
        )

    async def adjust_group_capacity(
        self, group_id: str, request: CapacityAdjustRequest, *, actor: str
    ) -> CapacityAdjustResult:
        if group_id not in self.site.group_by_id:
            raise NotFound("group", group_id)
        if group_id != self.site.root.id:
            raise Conflict(f"group {group_id!r} has no oscp_group_id: no DSO knows it")
        if self.dso_limit_a is None:
            raise Conflict("no capacity provider (DSO) is configured")
        now = self.clock()
        if request.end <= now:
            raise Conflict("the window is over already")
        result = CapacityAdjustResult(
            group_id=group_id,
            oscp_group_id=f"fake-{group_id}",
            capacity=request.capacity,
            unit=request.unit,
            start=max(request.start or now, now),
            end=request.end,
            providers=1,
            requested_at=now,
        )
        self.adjustments.append(result)
        self._audit("capacity_adjust_requested", group_id, actor, result.model_dump(mode="json"))
        self.publish(ChangeKind.DSO, group_id)
        return result

    async def update_session(
        self, session_id: str, patch: SessionPatch, *, actor: str
    ) -> SessionResult:
        s = self.session_by_id.get(session_id)
        if s is None:
            raise NotFound("session", session_id)
        if not s.active:
            raise Conflict(f"session {session_id!r} has ended")
        if patch.departure is not None and patch.departure <= s.started_at:
            raise Conflict("departure must be after the session started")
        if patch.priority is not None:
            s.priority = patch.priority
        if patch.charge_mode is not None:
            s.charge_mode = patch.charge_mode.value
        if patch.departure is not None:
            s.departure = patch.departure
            s.departure_stated = True
        if patch.energy_need_kwh is not None:
            s.energy_need_kwh = s.delivered_kwh + patch.energy_need_kwh
            s.need_stated = True
        self._audit(
            "session_patch", session_id, actor, patch.model_dump(mode="json", exclude_none=True)
        )
        self.publish(ChangeKind.SESSION, session_id)
        status = self._replan("session changed")
        return SessionResult(
            plan=status,
            paused_sessions=sorted(paused := self._paused()),
            session=self._session_out(s, paused),
        )

    async def station_command(
        self, station_id: str, command: StationCommand, *, actor: str
    ) -> CommandResult:
        charger = next((c for c in self.site.chargers if c.id == station_id), None)
        if charger is None:
            raise NotFound("station", station_id)
        connector = getattr(command, "connector", None)
        if connector and connector not in {k.id for k in charger.connectors}:
            raise NotFound("connector", f"{station_id}/{connector}")
        self.commands.append((station_id, command, actor))
        self._audit("station_command", station_id, actor, command.model_dump(mode="json"))

        def answer(outcome: CommandOutcome, detail: str = "") -> CommandResult:
            return CommandResult(
                station_id=station_id,
                command=command.command,
                outcome=outcome,
                detail=detail,
                plan=self.plan_status,
            )

        if station_id not in self.connected:
            return answer(CommandOutcome.NOT_CONNECTED)
        now = self.clock()
        match command:
            case RemoteStart(connector=n, id_tag=tag):
                cid = f"{station_id}/{n}"
                if self.active_on(cid) is not None or self.status_of[cid] == "Unavailable":
                    return answer(CommandOutcome.REJECTED, "connector busy or unavailable")
                sid = f"R{len(self.session_by_id) + 1}"
                self._start(cid, sid, tag, 20.0, now + timedelta(hours=8), 16.0, now)
                self.session_by_id[sid].started_at = now
                self.session_by_id[sid].departure_stated = False
                self.session_by_id[sid].need_stated = False
                self._replan("remote start")
            case RemoteStop(connector=n):
                cid = f"{station_id}/{n}"
                s = self.active_on(cid)
                if s is None:
                    return answer(CommandOutcome.REJECTED, "no session on the connector")
                s.ended_at = now
                s.drawn = {}
                self.status_of[cid] = "Finishing"
                self._replan("remote stop")
            case Availability(connector=n, operative=op):
                targets = [f"{station_id}/{k.id}" for k in charger.connectors if n in (0, k.id)]
                for cid in targets:
                    if self.active_on(cid) is None:
                        self.status_of[cid] = "Available" if op else "Unavailable"
            case TriggerMeterValues() | Reset():
                pass
        self.publish(ChangeKind.STATION, station_id)
        return answer(CommandOutcome.ACCEPTED)


def _conforms(fake: FakeSite) -> OperatorBackend:
    """mypy checks here that the fake keeps the protocol's signatures."""
    return fake
