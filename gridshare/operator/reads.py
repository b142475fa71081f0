"""The operator API's reads over the running service: status, groups, timelines,
stations, sessions, plan, forecasts and the audit log.

Each read gathers the state it needs from the views and hands it to the pure
projections of `gridshare.api.projections`.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta

from forecasts.model import ForecastType
from gridshare.api.errors import NotFound
from gridshare.api.projections import (
    ConnectorSession,
    EndedSession,
    RunningSession,
    capacity_at,
    connector_out,
    ended_session_out,
    event_page,
    forecast_series,
    forecast_value,
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
    station_capabilities,
    status_out,
)
from gridshare.api.schemas import (
    AuditEvent,
    ConnectorOut,
    DsoStatus,
    EventPage,
    ForecastOut,
    ForecastPage,
    ForecastValue,
    GroupOut,
    GroupTimeline,
    GroupTree,
    PlanOut,
    PlanStatus,
    SessionOut,
    StationOut,
    StatusOut,
)
from gridshare.controller import SessionState
from gridshare.dso_reports import group_members
from gridshare.operator.live import Sightings
from gridshare.operator.views import OperatorParts, StoreRow
from gridshare.site.readings import site_lines
from gridshare.store import StoredSession
from optimizer.problem import Capacity, TimeGrid
from optimizer.site import ConnectorInfo, Line

RECENT_SESSIONS = 50
"""Ended sessions listed by ``GET /api/sessions``."""

FORECAST_KINDS = (
    (ForecastType.CONSUMPTION, "capacity"),
    (ForecastType.FALLBACK_CONSUMPTION, "fallback"),
)
"""The DSO's forecast types the operator sees, and what the API calls them."""


def past_slot(grid: TimeGrid, at: datetime) -> int:
    """The slot of ``grid`` that holds ``at`` (the first or last one beyond its ends)."""
    return min(max(int(grid.position(at)), 0), grid.slots - 1)


class SiteReads:
    """See the module docstring."""

    def __init__(self, parts: OperatorParts, sightings: Sightings) -> None:
        self.parts = parts
        self.site = parts.site
        self.state = parts.state
        self.store = parts.store
        self.sightings = sightings

    # --- plan and status ---------------------------------------------------------------

    def plan_status(self) -> PlanStatus | None:
        state = self.state
        plan = state.plan
        if plan is None:
            return None
        return plan_status(
            plan,
            plan_id=state.plan_id or state.plans,
            created_at=state.plan_at or self.parts.clock(),
            reason=state.plan_reason,
        )

    def dso_status(self) -> DsoStatus:
        dso = self.parts.dso
        now = self.parts.clock()
        providers = dso.provider_status()
        book = dso.capacity_book
        fallback = any(
            g.oscp_group_id and book.fallback_active(g.oscp_group_id, now) for g in self.site.groups
        )
        return DsoStatus(
            configured=dso.configured,
            online=any(p.online for p in providers),
            last_heartbeat=dso.last_heartbeat(),
            fallback_active=bool(fallback),
            detail=", ".join(f"{p.id}: {p.state.lower()}" for p in providers),
        )

    def status(self) -> StatusOut:
        state = self.state
        now = self.parts.clock()
        return status_out(
            self.site,
            now,
            stations_connected=len(state.connected),
            sessions_active=len(state.sessions),
            overrides=state.overrides.by_group.values(),
            plan=self.plan_status(),
            dso=self.dso_status(),
            own=state.status(),
            service=self.parts.service(),
        ).model_copy(update={"not_following": dict(self.parts.not_following())})

    def paused(self) -> set[str]:
        running = {cid: s.session_id for cid, s in self.state.sessions.items()}
        return paused_sessions(self.state.plan, running)

    # --- groups ------------------------------------------------------------------------

    def _members(self, group_id: str) -> dict[str, float]:
        """Connector → weight in the group (1 in the tree)."""
        return group_members(self.site, self.site.group_by_id[group_id])

    def _capacity_now(self, now: datetime) -> Capacity:
        """The planner's slot that holds ``now`` (one that began at ``now`` would
        reach into the next slot and show the lower of the two)."""
        slot = self.site.site.slot_minutes
        return self.state.capacity(TimeGrid.covering(now, slot, slot / 60), now)

    def _measured(self, meters: Mapping[str, StoreRow]) -> dict[str, dict[Line, float]]:
        """Connector → measured current per site line, for running sessions at
        connected stations (a lost station's last reading is not "now")."""
        out: dict[str, dict[Line, float]] = {}
        for cid, s in self.state.sessions.items():
            if self.site.connectors[cid].station_id not in self.state.connected:
                continue
            row = meters.get(cid)
            if row is None or (row.get("transaction_id") not in (None, s.transaction_id)):
                continue
            out[cid] = site_lines(row["current_a"], self.site.connectors[cid].lines)
        return out

    @staticmethod
    def _measured_kw(
        meters: Mapping[str, StoreRow], measured: Mapping[str, object]
    ) -> dict[str, float]:
        out = {}
        for cid in measured:
            power = meters.get(cid, {}).get("power_w")
            if power is not None:
                out[cid] = float(power) / 1000.0
        return out

    def _dso_value(self, group_id: str, now: datetime) -> ForecastValue | None:
        g = self.site.group_by_id[group_id]
        if not g.oscp_group_id:
            return None
        book = self.parts.dso.capacity_book
        v = self.site.site.voltage_v
        here = book.applied_at(g.oscp_group_id, ForecastType.CONSUMPTION, v, now)
        return None if here is None else forecast_value(here)

    def _group(
        self,
        group_id: str,
        now: datetime,
        cap: Capacity,
        meters: Mapping[str, StoreRow],
        measured: Mapping[str, Mapping[Line, float]],
    ) -> GroupOut:
        state = self.state
        return group_out(
            self.site,
            group_id,
            now,
            members=self._members(group_id),
            capacity=cap,
            override=state.overrides.by_group.get(group_id),
            dso_forecast=self._dso_value(group_id, now),
            plan=state.plan,
            running=state.sessions.keys(),
            measured=measured,
            measured_kw=self._measured_kw(meters, measured),
        )

    def group_now(self, group_id: str) -> GroupOut:
        now = self.parts.clock()
        meters = self.store.meter_last_all()
        return self._group(group_id, now, self._capacity_now(now), meters, self._measured(meters))

    def groups(self) -> GroupTree:
        now = self.parts.clock()
        cap = self._capacity_now(now)
        meters = self.store.meter_last_all()
        measured = self._measured(meters)
        return GroupTree(
            root=self.site.root.id,
            groups=[self._group(g, now, cap, meters, measured) for g in group_order(self.site)],
        )

    def group_timeline(self, group_id: str, history: timedelta) -> GroupTimeline:
        if group_id not in self.site.group_by_id:
            raise NotFound("group", group_id)
        state = self.state
        now = self.parts.clock()
        members = self._members(group_id)
        lines = member_lines(self.site, members)
        conns = self.site.connectors
        slot = self.site.site.slot_minutes
        since = now - history
        # capacity as it stood then: the same sources, over a grid of the past
        past = TimeGrid.covering(since, slot, max(history.total_seconds() / 3600, slot / 60))
        past_cap = state.capacity(past, past.start)
        by_minute: dict[datetime, dict[Line, float]] = {}
        for row in self.store.meter_minutes_since(since):
            w = members.get(row["connector_id"])
            if w is None:
                continue
            sums = by_minute.setdefault(row["minute"], dict.fromkeys(lines, 0.0))
            for line, a in site_lines(row["current_a"], conns[row["connector_id"]].lines).items():
                if line in sums:
                    sums[line] += w * a
        points = [
            measured_point(at, *capacity_at(past_cap, group_id, past_slot(past, at)), sums)
            for at, sums in sorted(by_minute.items())
            if at < now
        ]
        plan = state.plan
        if plan is not None:
            points += planned_points(
                self.site,
                group_id,
                now,
                plan=plan,
                capacity=state.capacity(plan.grid, now),
                members=members,
                running=state.sessions.keys(),
            )
        return GroupTimeline(group_id=group_id, now=now, lines=lines, points=points)

    # --- stations ------------------------------------------------------------------------

    def _connector(
        self,
        info: ConnectorInfo,
        now: datetime,
        meters: Mapping[str, StoreRow],
        measured: Mapping[str, Mapping[Line, float]],
        profiles: Mapping[str, StoreRow],
    ) -> ConnectorOut:
        state = self.state
        cid = info.key
        s = state.sessions.get(cid)
        power = meters.get(cid, {}).get("power_w") if cid in measured else None
        row = profiles.get(cid)
        profile = (
            None if row is None else profile_out(row["periods"], row["sent_at"], row["outcome"])
        )
        status = state.status_by_connector.get(cid) or ("Charging" if s is not None else "Unknown")
        out = connector_out(
            info,
            status=status,
            session=None if s is None else ConnectorSession(s.session_id, s.delivered_kwh),
            limit_a=state.limit_now(cid, now),
            planned_a=planned_now_a(state.plan, cid, s is not None),
            draw_a=measured.get(cid, {}),
            power_kw=None if power is None else float(power) / 1000.0,
            profile=profile,
        )
        why = self.parts.not_following().get(cid)
        return out if why is None else out.model_copy(update={"not_following": why})

    def stations(self) -> list[StationOut]:
        state = self.state
        now = self.parts.clock()
        meters = self.store.meter_last_all()
        measured = self._measured(meters)
        profiles = self.store.last_profiles()
        stored = {row["id"]: row for row in self.store.stations()}
        infos = {i.station_id: i for i in self.parts.stations.stations()}
        by_station: dict[str, list[ConnectorInfo]] = {}
        for info in self.site.connectors.values():
            by_station.setdefault(info.station_id, []).append(info)
        seen_at = self.sightings.last_seen
        out = []
        for ch in self.site.chargers:
            row = stored.get(ch.id, {})
            gi = infos.get(ch.id)
            connected = ch.id in state.connected
            protocol = state.connected.get(ch.id) or (gi.protocol if gi else None) or None
            seen = [t for t in (seen_at.get(ch.id), gi.last_seen if gi else None) if t]
            out.append(
                StationOut(
                    station_id=ch.id,
                    group=ch.group,
                    connected=connected,
                    protocol=protocol if connected else (protocol or row.get("protocol")),
                    vendor=(gi.vendor if gi else None) or row.get("vendor"),
                    model=(gi.model if gi else None) or row.get("model"),
                    firmware=(gi.firmware if gi else None) or row.get("firmware"),
                    capabilities=station_capabilities(
                        self.sightings.capabilities.get(ch.id), gi.capabilities if gi else ()
                    ),
                    last_seen=max(seen) if seen else None,
                    connectors=[
                        self._connector(info, now, meters, measured, profiles)
                        for info in by_station.get(ch.id, [])
                    ],
                )
            )
        return out

    # --- sessions ------------------------------------------------------------------------

    def _running(self, s: SessionState) -> RunningSession:
        """The session as the API shows it; a need nobody stated is estimated."""
        if s.energy_need_wh is not None:
            need, estimated = max(0.0, s.energy_need_wh / 1000.0 - s.delivered_kwh), False
        else:
            est = s.est_energy_kwh
            if est is None:
                est = self.parts.default_energy_kwh
            need, estimated = max(0.0, est - s.delivered_kwh), True
        return RunningSession(
            session_id=s.session_id,
            connector_id=s.connector_id,
            id_tag=s.id_tag,
            started_at=s.started_at,
            delivered_kwh=s.delivered_kwh,
            departure=s.departure or s.est_departure,
            departure_estimated=s.departure is None,
            energy_need_kwh=need,
            energy_need_estimated=estimated,
            priority=s.priority,
            drawn_a=s.drawn_a,
            charge_mode=s.charge_mode.value,
        )

    def active_out(self, s: SessionState, now: datetime, paused: set[str]) -> SessionOut:
        return running_session_out(
            self._running(s),
            plan=self.state.plan,
            limit_a=self.state.limit_now(s.connector_id, now),
            paused=s.session_id in paused,
        )

    @staticmethod
    def _ended(s: StoredSession) -> SessionOut:
        return ended_session_out(
            EndedSession(
                session_id=s.session_id,
                connector_id=s.connector_id,
                id_tag=s.id_tag,
                started_at=s.started_at,
                ended_at=s.ended_at,
                delivered_kwh=s.delivered_wh / 1000.0,
                departure=s.departure,
                energy_need_stated=s.energy_need_wh is not None,
                priority=s.priority,
                charge_mode=s.charge_mode,
            )
        )

    def sessions(self, *, active: bool | None) -> list[SessionOut]:
        now = self.parts.clock()
        out: list[SessionOut] = []
        if active in (True, None):
            running = sorted(self.state.sessions.values(), key=lambda s: s.started_at)
            paused = self.paused()
            out += [self.active_out(s, now, paused) for s in running]
        if active in (False, None):
            out += [self._ended(s) for s in self.store.recent_sessions(RECENT_SESSIONS)]
        return out

    def plan(self) -> PlanOut | None:
        plan = self.state.plan
        status = self.plan_status()
        if plan is None or status is None:
            return None
        return PlanOut.of(plan, status, self.site)

    # --- forecasts and events ----------------------------------------------------------

    def forecasts(self, *, limit: int, offset: int) -> ForecastPage:
        book = self.parts.dso.capacity_book
        now = self.parts.clock()
        v = self.site.site.voltage_v
        series: list[ForecastOut] = []
        for g in self.site.groups:
            if not g.oscp_group_id:
                continue
            for ftype, kind in FORECAST_KINDS:
                series += forecast_series(
                    g.id, kind, book.applied(g.oscp_group_id, ftype, v, start=now)
                )
        return ForecastPage.of(series, limit=limit, offset=offset)

    def events(self, *, limit: int, before: int | None) -> EventPage:
        events = []
        for r in self.store.audit_page(limit + 1, before):
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
        return event_page(events, limit)
