"""`ServiceBackend`: the operator API's `OperatorBackend` over the running service.

Reads come from the service's parts as they are now:

    controller   sessions, plan, limits in force, overrides, connected stations
    store        audit log, ended sessions, meter history, last profile per connector
    capacity     forecasts and the DSO's liveness (the capacity book, the OSCP provider)
    gateway      station details (`StationInfo`) and station commands

Writes go through the controller (which persists and audits them) and wait
for the plan they cause to be rolled out, so an answer carries the status of
a plan that includes the change.

Change hints for the live stream come from `ServiceBackend.observe` (every
station event the service accepted) and the controller's plan observer; the
service calls `close` on shutdown so every stream ends.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import AsyncIterator, Iterable, Mapping
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal, get_args

from gridshare.api.errors import Conflict, NotFound
from gridshare.api.metrics import MetricsRecorder
from gridshare.api.schemas import (
    AuditEvent,
    Availability,
    CapacityAdjustRequest,
    CapacityAdjustResult,
    Change,
    ChangeKind,
    CommandResult,
    ConnectorOut,
    DsoStatus,
    EventPage,
    ForecastOut,
    ForecastPage,
    ForecastPoint,
    ForecastValue,
    GroupLimitRequest,
    GroupLimitResult,
    GroupOut,
    GroupTimeline,
    GroupTree,
    LimitOverride,
    PlanOut,
    PlanStatus,
    ProfileOut,
    RemoteStart,
    RemoteStop,
    Reset,
    ResetKind,
    SessionOut,
    SessionPatch,
    SessionResult,
    StationCommand,
    StationOut,
    StatusOut,
    TimelinePoint,
    TriggerMeterValues,
)
from gridshare.controller import Controller, SessionState
from gridshare.dso_reports import group_members, site_lines
from gridshare.rollout import RolloutReport
from gridshare.store import Store, StoredSession
from ocpp_adapter.events import (
    CommandOutcome,
    ConnectorStatusChanged,
    DomainEvent,
    MeterReading,
    SessionEnded,
    SessionStarted,
    StationCapabilities,
    StationConnected,
    StationDisconnected,
)
from ocpp_adapter.events import CommandResult as GatewayResult
from optimizer.plan import Plan
from optimizer.problem import Capacity, TimeGrid
from optimizer.site import ConnectorInfo, Line, Site, station_of

if TYPE_CHECKING:
    from gridshare.service import Service

RECENT_SESSIONS = 50
"""Ended sessions listed by ``GET /api/sessions``."""

CAPACITY_HISTORY = timedelta(hours=48)
"""How long the capacity book keeps a block after it ended: a group's timeline
shows the capacity as it stood over up to this much history."""

ProfileOutcome = Literal[
    "pending", "accepted", "rejected", "timeout", "not_connected", "rate_limited", "error"
]
PROFILE_OUTCOMES: dict[str, ProfileOutcome] = {o: o for o in get_args(ProfileOutcome)}
"""The store's answers as the API names them (anything else: ``error``)."""


def _finite(x: float | None) -> float | None:
    return None if x is None or not math.isfinite(x) else float(x)


def capability_names(c: StationCapabilities) -> list[str]:
    """What a station said it can do, as short names for the operator."""
    names = ["SmartCharging", *(f"rate:{u}" for u in c.rate_units)]
    if c.phase_switching:
        names.append("PhaseSwitching")
    if c.max_periods is not None:
        names.append(f"max_periods:{c.max_periods}")
    return names


def _capabilities(c: StationCapabilities | None, info: Iterable[str]) -> list[str]:
    return sorted(set(info) | set(capability_names(c) if c is not None else ()))


class _Changes:
    """Fan-out of change hints to the live stream's subscribers (bounded queues)."""

    def __init__(self) -> None:
        self._subscribers: set[asyncio.Queue[Change | None]] = set()
        self._closed = False

    def publish(self, change: Change) -> None:
        for q in self._subscribers:
            # a subscriber that is behind only needs to know that something changed
            if q.qsize() < 64:
                q.put_nowait(change)

    async def subscribe(self) -> AsyncIterator[Change]:
        q: asyncio.Queue[Change | None] = asyncio.Queue()
        if self._closed:
            return
        self._subscribers.add(q)
        try:
            while (item := await q.get()) is not None:
                yield item
        finally:
            self._subscribers.discard(q)

    def close(self) -> None:
        self._closed = True
        for q in self._subscribers:
            q.put_nowait(None)

    def __len__(self) -> int:
        return len(self._subscribers)


class ServiceBackend:
    """See the module docstring. Built by the service once its parts run."""

    def __init__(self, service: Service, metrics: MetricsRecorder | None = None) -> None:
        self.service = service
        self.site: Site = service.config.site
        self.metrics = metrics
        self._changes = _Changes()
        self.last_seen: dict[str, datetime] = {}
        self.capabilities: dict[str, StationCapabilities] = {}
        self._oscp_seen: dict[str, tuple[int, int]] = {}
        self._stations = {ch.id: ch for ch in self.site.chargers}

    # --- wiring ----------------------------------------------------------------------

    @property
    def controller(self) -> Controller:
        ctl = self.service.controller
        if ctl is None:
            raise RuntimeError("the service is not running")
        return ctl

    @property
    def store(self) -> Store:
        store = self.service.store
        if store is None:
            raise RuntimeError("the service is not running")
        return store

    def attach(self, controller: Controller) -> None:
        """Follow the controller's plans (metrics, live hints)."""
        controller.on_plan.append(self._on_plan)

    def close(self) -> None:
        """End every live subscription (the service is stopping)."""
        self._changes.close()

    def publish(self, kind: ChangeKind, subject: str = "") -> None:
        self._changes.publish(Change(kind=kind, at=self.service.clock(), subject=subject))

    def observe(self, event: DomainEvent) -> None:
        """An event the service accepted (stored and applied)."""
        station = getattr(event, "station_id", None)
        cid = getattr(event, "connector_id", None)
        if station is None and isinstance(cid, str):
            station = station_of(cid)
        if isinstance(station, str):
            self.last_seen[station] = self.service.clock()
        match event:
            case StationCapabilities():
                self.capabilities[event.station_id] = event
            case StationConnected() | StationDisconnected():
                self.publish(ChangeKind.STATION, event.station_id)
                self._count_stations()
            case SessionStarted() | SessionEnded():
                self.publish(ChangeKind.SESSION, self._session_id(event.transaction_id, station))
                self._count_stations()
            case MeterReading():
                self.publish(ChangeKind.MEASUREMENT, event.connector_id)
            case ConnectorStatusChanged():
                self.publish(ChangeKind.STATION, event.connector_id)

    def _session_id(self, transaction_id: str, station: str | None) -> str:
        """The API's id of a station's session (``TX@STATION`` where another station's
        session already has the transaction id)."""
        store = self.service.store
        if store is None:
            return transaction_id
        # without a station (an end that named none) the transaction id is the best guess
        stored = (
            store.session(station, transaction_id)
            if station is not None
            else store.session_by_id(transaction_id)
        )
        return stored.session_id if stored is not None else transaction_id

    def _count_stations(self) -> None:
        if self.metrics is not None and self.service.controller is not None:
            self.metrics.set_stations_connected(len(self.controller.connected))
            self.metrics.set_sessions_active(len(self.controller.sessions))

    def _on_plan(self, plan: Plan, report: RolloutReport) -> None:
        ctl = self.controller
        if self.metrics is not None:
            since = ctl.plan_requested_at
            seconds = time.perf_counter() - since if since is not None else plan.solve_ms / 1000
            reason = ctl.plan_reason.split(", ", 1)[0]
            self.metrics.record_replan(seconds=seconds, status=plan.status.value, reason=reason)
            self.metrics.record_profile("sent", report.sent)
            self.metrics.record_profile("accepted", report.accepted)
            for outcome in report.failed.values():
                self.metrics.record_profile(outcome.value)
        self.publish(ChangeKind.PLAN, ctl.plan_reason)

    def publish_dso(self, provider: str) -> None:
        self.publish(ChangeKind.DSO, provider)

    def dso_heard(self, kind: str) -> None:
        """A message from the DSO arrived (a forecast, a heartbeat)."""
        if self.metrics is not None:
            self.metrics.record_oscp_message("in", kind)
        self.publish(ChangeKind.DSO, kind)

    def refresh_oscp_metrics(self) -> None:
        """Outgoing OSCP messages and DSO liveness, read from the provider's counters."""
        oscp = self.service.oscp
        if self.metrics is None or oscp is None:
            return
        for p in oscp.status():
            pid = str(p["id"])
            sent = (int(p.get("delivered", 0)), int(p.get("heartbeats_sent", 0)))
            seen = self._oscp_seen.get(pid, (0, 0))
            for kind, new, old in (("message", sent[0], seen[0]), ("Heartbeat", sent[1], seen[1])):
                for _ in range(max(0, new - old)):
                    self.metrics.record_oscp_message("out", kind)
            self._oscp_seen[pid] = sent
            self.metrics.set_dso_online(pid, self._provider_online(p))

    @staticmethod
    def _provider_online(p: Mapping[str, Any]) -> bool:
        return p.get("state") in ("REGISTERED", "HANDSHAKEN") and not p.get("offline")

    # --- reads -------------------------------------------------------------------------

    def plan_status(self) -> PlanStatus | None:
        ctl = self.controller
        plan = ctl.plan
        if plan is None:
            return None
        binding = plan.summary()["binding_now"]
        assert isinstance(binding, list)
        return PlanStatus(
            plan_id=ctl.plan_id or ctl.plans,
            created_at=ctl.plan_at or self.service.clock(),
            reason=ctl.plan_reason,
            status=plan.status,
            backend=plan.backend,
            solve_ms=round(plan.solve_ms, 3),
            grid_start=plan.grid.start,
            slot_minutes=plan.grid.slot_minutes,
            slots=plan.grid.slots,
            sessions=len(plan.requested_kwh),
            energy_requested_kwh=round(plan.energy_requested_kwh, 3),
            energy_planned_kwh=round(plan.energy_planned_kwh, 3),
            unmet_kwh=round(plan.total_unmet_kwh, 3),
            binding_now=[str(b) for b in binding],
            notes=list(plan.notes),
        )

    def dso_status(self) -> DsoStatus:
        svc = self.service
        now = svc.clock()
        configured = bool(svc.config.oscp.capacity_providers)
        providers = svc.oscp.status() if svc.oscp is not None else []
        book = svc.capacity_book
        fallback = book is not None and any(
            g.oscp_group_id and book.fallback_active(g.oscp_group_id, now) for g in self.site.groups
        )
        heard = list(svc.dso_heartbeats.values())
        return DsoStatus(
            configured=configured,
            online=any(self._provider_online(p) for p in providers),
            last_heartbeat=max(heard) if heard else None,
            fallback_active=bool(fallback),
            detail=", ".join(f"{p['id']}: {p['state'].lower()}" for p in providers),
        )

    async def status(self) -> StatusOut:
        ctl = self.controller
        now = self.service.clock()
        self.refresh_oscp_metrics()
        if self.metrics is not None:
            self.metrics.record_conflicts(ctl.conflicts_total)
        own = self.service.status()
        return StatusOut(
            site=self.site.site.name,
            now=now,
            stations_known=len(self.site.chargers),
            stations_connected=len(ctl.connected),
            sessions_active=len(ctl.sessions),
            overrides_active=sum(1 for o in ctl.overrides.by_group.values() if o.covers(now, now)),
            plan=self.plan_status(),
            dso=self.dso_status(),
            stations=own["stations"],
            sessions=own["sessions"],
            rollout=own["rollout"],
            groups=own["groups"],
            overrides=own["overrides"],
            conflicts=own["conflicts"],
            service=own["service"],
        )

    def _members(self, group_id: str) -> dict[str, float]:
        """Connector → weight in the group (1 in the tree)."""
        return group_members(self.site, self.site.group_by_id[group_id])

    def _group_lines(self, group_id: str) -> list[Line]:
        conns = self.site.connectors
        return sorted({x for cid in self._members(group_id) for x in conns[cid].lines})

    def _capacity_now(self, now: datetime) -> Capacity:
        """The planner's slot that holds ``now`` (one that began at ``now`` would
        reach into the next slot and show the lower of the two)."""
        slot = self.site.site.slot_minutes
        return self.controller.capacity(TimeGrid.covering(now, slot, slot / 60), now)

    def _measured(self, meters: Mapping[str, Mapping[str, Any]]) -> dict[str, dict[Line, float]]:
        """Connector → measured current per site line, for running sessions."""
        out: dict[str, dict[Line, float]] = {}
        for cid, s in self.controller.sessions.items():
            row = meters.get(cid)
            if row is None or (row.get("transaction_id") not in (None, s.transaction_id)):
                continue
            out[cid] = site_lines(row["current_a"], self.site.connectors[cid].lines)
        return out

    def _dso_value(self, group_id: str, now: datetime) -> ForecastValue | None:
        from forecasts.model import ForecastType

        g = self.site.group_by_id[group_id]
        book = self.service.capacity_book
        if book is None or not g.oscp_group_id:
            return None
        v = self.site.site.voltage_v
        here = book.applied_at(g.oscp_group_id, ForecastType.CONSUMPTION, v, now)
        if here is None:
            return None
        return ForecastValue(
            limit_a=_finite(here.limit.limit_a),
            limit_kw=_finite(here.limit.limit_kw),
            source=here.source,
            received_at=here.received_at,
        )

    def _group(
        self,
        group_id: str,
        now: datetime,
        cap: Capacity,
        measured: Mapping[str, Mapping[Line, float]],
        meters: Mapping[str, Mapping[str, Any]],
    ) -> GroupOut:
        ctl = self.controller
        g = self.site.group_by_id[group_id]
        plan = ctl.plan
        rows = {cid: i for i, cid in enumerate(plan.connector_ids)} if plan is not None else {}
        lines = self._group_lines(group_id)
        planned = dict.fromkeys(lines, 0.0)
        seen = dict.fromkeys(lines, 0.0)
        planned_kw = measured_kw = 0.0
        for cid, w in self._members(group_id).items():
            s = ctl.sessions.get(cid)
            if plan is not None and s is not None and cid in rows:
                a = plan.now_a(cid)
                for line in plan.lines.get(cid, self.site.connectors[cid].lines):
                    if line in planned:
                        planned[line] += w * a
                planned_kw += w * float(plan.power_kw[rows[cid], 0])
            for line, amps in measured.get(cid, {}).items():
                if line in seen:
                    seen[line] += w * amps
            if s is not None and cid in measured:
                power = meters.get(cid, {}).get("power_w")
                if power is not None:
                    measured_kw += w * float(power) / 1000.0
        o = ctl.overrides.by_group.get(group_id)
        cap_a = cap.limit_a.get(group_id)
        cap_kw = cap.limit_kw.get(group_id)
        return GroupOut(
            id=g.id,
            parent=g.parent,
            children=list(self.site.children(g.id)),
            description=g.description,
            weighted=g.weights is not None,
            lines=lines,
            static_limit_a=g.limit_a,
            static_limit_kw=g.limit_kw,
            fallback_limit_a=g.fallback_limit_a,
            override=LimitOverride.of(o, now),
            dso_forecast=self._dso_value(group_id, now),
            capacity_a=None if cap_a is None else _finite(float(cap_a[0])),
            capacity_kw=None if cap_kw is None else _finite(float(cap_kw[0])),
            planned_a={line: round(v, 2) for line, v in planned.items()},
            measured_a={line: round(v, 2) for line, v in seen.items()},
            planned_kw=round(planned_kw, 3),
            measured_kw=round(measured_kw, 3),
        )

    def _group_order(self) -> list[str]:
        order: list[str] = []

        def walk(gid: str) -> None:
            order.append(gid)
            for child in self.site.children(gid):
                walk(child)

        walk(self.site.root.id)
        return order + [g.id for g in self.site.groups if g.id not in order]

    def _group_now(self, group_id: str) -> GroupOut:
        now = self.service.clock()
        meters = self.store.meter_last_all()
        return self._group(group_id, now, self._capacity_now(now), self._measured(meters), meters)

    async def groups(self) -> GroupTree:
        now = self.service.clock()
        cap = self._capacity_now(now)
        meters = self.store.meter_last_all()
        measured = self._measured(meters)
        return GroupTree(
            root=self.site.root.id,
            groups=[self._group(g, now, cap, measured, meters) for g in self._group_order()],
        )

    async def group_timeline(self, group_id: str, history: timedelta) -> GroupTimeline:
        if group_id not in self.site.group_by_id:
            raise NotFound("group", group_id)
        ctl = self.controller
        now = self.service.clock()
        lines = self._group_lines(group_id)
        members = self._members(group_id)
        conns = self.site.connectors
        slot = self.site.site.slot_minutes
        since = now - history
        # capacity as it stood then: the same sources, over a grid of the past
        past = TimeGrid.covering(since, slot, max(history.total_seconds() / 3600, slot / 60))
        past_cap = ctl.capacity(past, past.start)
        by_minute: dict[datetime, dict[Line, float]] = {}
        for row in self.store.meter_minutes_since(since):
            w = members.get(row["connector_id"])
            if w is None:
                continue
            sums = by_minute.setdefault(row["minute"], dict.fromkeys(lines, 0.0))
            for line, a in site_lines(row["current_a"], conns[row["connector_id"]].lines).items():
                if line in sums:
                    sums[line] += w * a
        points: list[TimelinePoint] = []
        for at, sums in sorted(by_minute.items()):
            if at >= now:
                continue
            i = min(max(int(past.position(at)), 0), past.slots - 1)
            points.append(
                TimelinePoint(
                    at=at,
                    capacity_a=_finite(float(past_cap.limit_a[group_id][i]))
                    if group_id in past_cap.limit_a
                    else None,
                    capacity_kw=_finite(float(past_cap.limit_kw[group_id][i]))
                    if group_id in past_cap.limit_kw
                    else None,
                    planned_a=None,
                    measured_a={k: round(v, 2) for k, v in sums.items()},
                )
            )
        plan = ctl.plan
        if plan is not None:
            grid = plan.grid
            cap = ctl.capacity(grid, now)
            for i in range(grid.slots):
                at = max(grid.slot_start(i), now) if i == 0 else grid.slot_start(i)
                if i > 0 and at <= now:
                    continue
                sums = dict.fromkeys(lines, 0.0)
                for cid, w in members.items():
                    if cid not in ctl.sessions or cid not in plan.connector_ids:
                        continue
                    a = float(plan.schedule(cid)[i])
                    for line in plan.lines.get(cid, conns[cid].lines):
                        if line in sums:
                            sums[line] += w * a
                points.append(
                    TimelinePoint(
                        at=at,
                        capacity_a=_finite(float(cap.limit_a[group_id][i]))
                        if group_id in cap.limit_a
                        else None,
                        capacity_kw=_finite(float(cap.limit_kw[group_id][i]))
                        if group_id in cap.limit_kw
                        else None,
                        planned_a={k: round(v, 2) for k, v in sums.items()},
                        measured_a=None,
                    )
                )
        return GroupTimeline(group_id=group_id, now=now, lines=lines, points=points)

    def _profile(self, row: Mapping[str, Any] | None) -> ProfileOut | None:
        if row is None or not row["periods"]:
            return None
        outcome = PROFILE_OUTCOMES.get(row["outcome"] or "pending", "error")
        return ProfileOut(
            limit_a=float(row["periods"][0][1]), sent_at=row["sent_at"], outcome=outcome
        )

    def _connector(
        self,
        info: ConnectorInfo,
        now: datetime,
        meters: Mapping[str, Mapping[str, Any]],
        measured: Mapping[str, Mapping[Line, float]],
        profiles: Mapping[str, Mapping[str, Any]],
    ) -> ConnectorOut:
        ctl = self.controller
        cid = info.key
        s = ctl.sessions.get(cid)
        plan = ctl.plan
        planned = (
            round(plan.now_a(cid), 2)
            if plan is not None and s is not None and cid in plan.connector_ids
            else None
        )
        limit = ctl.limit_now(cid, now)
        power = meters.get(cid, {}).get("power_w") if cid in measured else None
        status = ctl.status_by_connector.get(cid) or ("Charging" if s is not None else "Unknown")
        return ConnectorOut(
            connector_id=cid,
            connector=info.connector.id,
            status=status,
            max_current_a=info.max_current_a,
            min_current_a=info.connector.min_current_a,
            lines=list(info.lines),
            limit_a=None if limit is None else round(limit, 2),
            planned_a=planned,
            draw_a={k: round(v, 2) for k, v in measured.get(cid, {}).items()},
            power_kw=None if power is None else round(float(power) / 1000.0, 3),
            energy_kwh=None if s is None else round(s.delivered_kwh, 3),
            session_id=None if s is None else s.session_id,
            profile=self._profile(profiles.get(cid)) if s is not None else None,
        )

    async def stations(self) -> list[StationOut]:
        ctl = self.controller
        now = self.service.clock()
        meters = self.store.meter_last_all()
        measured = self._measured(meters)
        profiles = self.store.last_profiles()
        stored = {row["id"]: row for row in self.store.stations()}
        gateway = self.service.gateway
        infos = {i.station_id: i for i in gateway.stations()} if gateway is not None else {}
        by_station: dict[str, list[ConnectorInfo]] = {}
        for info in self.site.connectors.values():
            by_station.setdefault(info.station_id, []).append(info)
        out = []
        for ch in self.site.chargers:
            row = stored.get(ch.id, {})
            gi = infos.get(ch.id)
            connected = ch.id in ctl.connected
            protocol = ctl.connected.get(ch.id) or (gi.protocol if gi else None) or None
            seen = [t for t in (self.last_seen.get(ch.id), gi.last_seen if gi else None) if t]
            out.append(
                StationOut(
                    station_id=ch.id,
                    group=ch.group,
                    connected=connected,
                    protocol=protocol if connected else (protocol or row.get("protocol")),
                    vendor=(gi.vendor if gi else None) or row.get("vendor"),
                    model=(gi.model if gi else None) or row.get("model"),
                    firmware=(gi.firmware if gi else None) or row.get("firmware"),
                    capabilities=_capabilities(
                        self.capabilities.get(ch.id), gi.capabilities if gi else ()
                    ),
                    last_seen=max(seen) if seen else None,
                    connectors=[
                        self._connector(info, now, meters, measured, profiles)
                        for info in by_station.get(ch.id, [])
                    ],
                )
            )
        return out

    def _needs(self, s: SessionState) -> tuple[float, bool]:
        """Energy still to deliver (kWh) and whether it is estimated."""
        if s.energy_need_wh is not None:
            return max(0.0, s.energy_need_wh / 1000.0 - s.delivered_kwh), False
        est = (
            s.est_energy_kwh
            if s.est_energy_kwh is not None
            else self.service.config.defaults.energy_kwh
        )
        return max(0.0, est - s.delivered_kwh), True

    def _active_out(self, s: SessionState, now: datetime) -> SessionOut:
        ctl = self.controller
        plan = ctl.plan
        cid = s.connector_id
        in_plan = (
            plan is not None and cid in plan.connector_ids and s.session_id in plan.requested_kwh
        )
        planned = round(plan.now_a(cid), 2) if plan is not None and in_plan else None
        need, estimated = self._needs(s)
        limit = ctl.limit_now(cid, now)
        return SessionOut(
            session_id=s.session_id,
            connector_id=cid,
            id_tag=s.id_tag,
            active=True,
            started_at=s.started_at,
            ended_at=None,
            energy_kwh=round(s.delivered_kwh, 3),
            departure=s.departure or s.est_departure,
            departure_estimated=s.departure is None,
            energy_need_kwh=round(need, 3),
            energy_need_estimated=estimated,
            priority=s.priority,
            planned_a=planned,
            planned_kwh=round(plan.energy_kwh.get(s.session_id, 0.0), 3)
            if plan is not None and in_plan
            else None,
            drawn_a=None if s.drawn_a is None else round(s.drawn_a, 2),
            limit_a=None if limit is None else round(limit, 2),
            paused=s.session_id in self._paused(),
        )

    @staticmethod
    def _ended_out(s: StoredSession) -> SessionOut:
        return SessionOut(
            session_id=s.session_id,
            connector_id=s.connector_id,
            id_tag=s.id_tag,
            active=False,
            started_at=s.started_at,
            ended_at=s.ended_at,
            energy_kwh=round(s.delivered_wh / 1000.0, 3),
            departure=s.departure,
            departure_estimated=s.departure is None,
            energy_need_kwh=None,
            energy_need_estimated=s.energy_need_wh is None,
            priority=s.priority if s.priority is not None else 1.0,
            planned_a=None,
            planned_kwh=None,
            drawn_a=None,
            limit_a=None,
            paused=False,
        )

    async def sessions(self, *, active: bool | None) -> list[SessionOut]:
        now = self.service.clock()
        out: list[SessionOut] = []
        if active in (True, None):
            running = sorted(self.controller.sessions.values(), key=lambda s: s.started_at)
            out += [self._active_out(s, now) for s in running]
        if active in (False, None):
            out += [self._ended_out(s) for s in self.store.recent_sessions(RECENT_SESSIONS)]
        return out

    async def plan(self) -> PlanOut | None:
        plan = self.controller.plan
        status = self.plan_status()
        if plan is None or status is None:
            return None
        return PlanOut.of(plan, status, self.site)

    async def forecasts(self, *, limit: int, offset: int) -> ForecastPage:
        from forecasts.model import ForecastType

        book = self.service.capacity_book
        if book is None:
            return ForecastPage(series=[], total=0)
        now = self.service.clock()
        v = self.site.site.voltage_v
        kinds = (
            (ForecastType.CONSUMPTION, "capacity"),
            (ForecastType.FALLBACK_CONSUMPTION, "fallback"),
        )
        series: list[ForecastOut] = []
        for g in self.site.groups:
            if not g.oscp_group_id:
                continue
            for ftype, kind in kinds:
                by_source: dict[str, list[Any]] = {}
                for s in book.applied(g.oscp_group_id, ftype, v, start=now):
                    by_source.setdefault(s.source, []).append(s)
                for source, stretches in by_source.items():
                    series.append(
                        ForecastOut(
                            group_id=g.id,
                            source=f"oscp:{source}",
                            kind=kind,
                            received_at=max(s.received_at for s in stretches),
                            points=[
                                ForecastPoint(
                                    start=s.start,
                                    end=s.end,
                                    limit_a=_finite(s.limit.limit_a),
                                    limit_kw=_finite(s.limit.limit_kw),
                                )
                                for s in stretches
                            ],
                        )
                    )
        return ForecastPage.of(series, limit=limit, offset=offset)

    async def events(self, *, limit: int, before: int | None) -> EventPage:
        rows = self.store.audit_page(limit + 1, before)
        page = rows[:limit]
        events = []
        for r in page:
            detail = r["detail"] if isinstance(r["detail"], dict) else {"value": r["detail"]}
            actor = detail.get("actor") or detail.get("source") or "gridshare"
            events.append(
                AuditEvent(
                    id=r["id"],
                    at=datetime.fromisoformat(r["at"]),
                    kind=r["kind"],
                    subject=r["subject"],
                    actor=str(actor),
                    detail=detail,
                )
            )
        more = len(rows) > limit
        return EventPage(events=events, next_before=events[-1].id if more and events else None)

    # --- writes --------------------------------------------------------------------------

    def _paused(self) -> set[str]:
        """Sessions offered 0 A now by the plan although they still need energy."""
        ctl = self.controller
        plan = ctl.plan
        if plan is None:
            return set()
        out = set()
        for cid, s in ctl.sessions.items():
            tx = s.session_id
            if cid not in plan.connector_ids or tx not in plan.requested_kwh:
                continue
            if plan.requested_kwh[tx] > 1e-6 and plan.now_a(cid) < 1e-6:
                out.add(tx)
        return out

    async def _replanned(self, reason: str) -> PlanStatus:
        await self.controller.replan_now(reason)
        status = self.plan_status()
        assert status is not None  # a plan was just made
        return status

    async def set_group_limit(
        self, group_id: str, request: GroupLimitRequest, *, actor: str
    ) -> GroupLimitResult:
        if group_id not in self.site.group_by_id:
            raise NotFound("group", group_id)
        self.controller.set_group_limit(
            group_id,
            limit_a=request.limit_a,
            limit_kw=request.limit_kw,
            start=request.start,
            end=request.end,
            actor=actor,
        )
        self.publish(ChangeKind.LIMIT, group_id)
        status = await self._replanned("operator limit")
        return GroupLimitResult(
            plan=status, paused_sessions=sorted(self._paused()), group=self._group_now(group_id)
        )

    async def clear_group_limit(self, group_id: str, *, actor: str) -> GroupLimitResult:
        if group_id not in self.site.group_by_id:
            raise NotFound("group", group_id)
        self.controller.set_group_limit(group_id, actor=actor)
        self.publish(ChangeKind.LIMIT, group_id)
        status = await self._replanned("operator limit")
        return GroupLimitResult(
            plan=status, paused_sessions=sorted(self._paused()), group=self._group_now(group_id)
        )

    async def adjust_group_capacity(
        self, group_id: str, request: CapacityAdjustRequest, *, actor: str
    ) -> CapacityAdjustResult:
        from forecasts.model import Block, Phase, Unit

        group = self.site.group_by_id.get(group_id)
        if group is None:
            raise NotFound("group", group_id)
        if not group.oscp_group_id:
            raise Conflict(f"group {group_id!r} has no oscp_group_id: no DSO knows it")
        oscp = self.service.oscp
        if oscp is None or not self.service.config.oscp.capacity_providers:
            raise Conflict("no capacity provider (DSO) is configured")
        now = self.service.clock()
        start = max(request.start or now, now)  # the past cannot be adjusted
        if request.end <= now:
            raise Conflict("the window is over already")
        block = Block(request.capacity, Unit(request.unit.value), Phase.ALL, start, request.end)
        providers = int(oscp.request_adjustment(group.oscp_group_id, [block]))
        if providers == 0:
            raise Conflict("no capacity provider is registered yet")
        self.store.audit(
            now,
            "capacity_adjust_requested",
            group_id,
            {
                "oscp_group_id": group.oscp_group_id,
                "capacity": request.capacity,
                "unit": request.unit.value,
                "start": start.isoformat(),
                "end": request.end.isoformat(),
                "providers": providers,
                "actor": actor,
            },
        )
        self.publish(ChangeKind.DSO, group_id)
        return CapacityAdjustResult(
            group_id=group_id,
            oscp_group_id=group.oscp_group_id,
            capacity=request.capacity,
            unit=request.unit,
            start=start,
            end=request.end,
            providers=providers,
            requested_at=now,
        )

    async def update_session(
        self, session_id: str, patch: SessionPatch, *, actor: str
    ) -> SessionResult:
        ctl = self.controller
        running = next((s for s in ctl.sessions.values() if s.session_id == session_id), None)
        if running is None:
            stored = self.store.session_by_id(session_id)
            if stored is None:
                raise NotFound("session", session_id)
            raise Conflict(f"session {session_id!r} is not running")
        if patch.departure is not None and patch.departure <= running.started_at:
            raise Conflict("departure must be after the session started")
        ctl.update_session(
            running.connector_id,
            priority=patch.priority,
            departure=patch.departure,
            energy_need_kwh=patch.energy_need_kwh,
            actor=actor,
        )
        self.publish(ChangeKind.SESSION, session_id)
        status = await self._replanned("session changed")
        s = ctl.sessions.get(running.connector_id, running)
        return SessionResult(
            plan=status,
            paused_sessions=sorted(self._paused()),
            session=self._active_out(s, self.service.clock()),
        )

    async def station_command(
        self, station_id: str, command: StationCommand, *, actor: str
    ) -> CommandResult:
        charger = self._stations.get(station_id)
        if charger is None:
            raise NotFound("station", station_id)
        connector = getattr(command, "connector", None)
        if connector and connector not in {k.id for k in charger.connectors}:
            raise NotFound("connector", f"{station_id}/{connector}")
        gateway = self.service.gateway
        if gateway is None:
            raise RuntimeError("the service is not running")
        result = await self._send(gateway, station_id, command)
        self.store.audit(
            self.service.clock(),
            "station_command",
            station_id,
            {
                **command.model_dump(mode="json"),
                "actor": actor,
                "outcome": result.outcome.value,
                "detail": result.detail,
            },
        )
        self.publish(ChangeKind.STATION, station_id)
        status = await self._replanned("station command")
        return CommandResult(
            station_id=station_id,
            command=command.command,
            outcome=result.outcome,
            detail=result.detail,
            plan=status,
        )

    async def _send(self, gateway: Any, station_id: str, command: StationCommand) -> GatewayResult:
        timeout = self.controller.settings.answer_timeout_s
        match command:
            case RemoteStart(connector=n, id_tag=tag):
                call = gateway.remote_start(station_id, n, tag)
            case RemoteStop(connector=n):
                s = self.controller.sessions.get(f"{station_id}/{n}")
                if s is None:
                    return GatewayResult(CommandOutcome.REJECTED, "no session on the connector")
                call = gateway.remote_stop(station_id, s.transaction_id)
            case TriggerMeterValues(connector=n):
                call = gateway.trigger_message(station_id, "MeterValues", n)
            case Reset(kind=kind):
                call = gateway.reset(station_id, hard=kind is ResetKind.HARD)
            case Availability(connector=n, operative=op):
                call = gateway.change_availability(station_id, n, op)
        try:
            result: GatewayResult = await asyncio.wait_for(call, timeout)
        except TimeoutError:
            return GatewayResult(CommandOutcome.TIMEOUT, "no answer")
        return result

    # --- live ----------------------------------------------------------------------------

    def changes(self) -> AsyncIterator[Change]:
        return self._changes.subscribe()

    @property
    def subscribers(self) -> int:
        return len(self._changes)
