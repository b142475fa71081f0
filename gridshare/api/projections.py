"""The API's read model: pure functions from the site's state to the response models.

Both the service's backend and the test fake build their answers here, so
what the API shows (rounding, weighting, what counts as paused, when an
override is in force) is decided once. Nothing here reads a clock, a store
or a socket: the caller passes ``now`` and the state it holds.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal, get_args

from forecasts.capacity_book import Stretch
from gridshare.api.schemas import (
    AuditEvent,
    ConnectorOut,
    DsoStatus,
    EventPage,
    ForecastOut,
    ForecastPoint,
    ForecastValue,
    GroupOut,
    LimitOverride,
    OverrideView,
    PlanStatus,
    ProfileOut,
    SessionOut,
    StatusOut,
    StatusService,
    TimelinePoint,
)
from ocpp_adapter.events import StationCapabilities
from ocpp_adapter.ports import capability_names
from optimizer.modes import ChargeMode
from optimizer.plan import Plan
from optimizer.problem import Capacity
from optimizer.site import ConnectorInfo, Line, Site

ProfileOutcome = Literal[
    "pending", "accepted", "rejected", "timeout", "not_connected", "rate_limited", "error"
]
PROFILE_OUTCOMES: dict[str, ProfileOutcome] = {o: o for o in get_args(ProfileOutcome)}
"""The store's answers as the API names them (anything else: ``error``)."""


def finite(x: float | None) -> float | None:
    """JSON has no infinity: an unbounded limit shows as None."""
    return None if x is None or not math.isfinite(x) else float(x)


# --- plan and status ----------------------------------------------------------------------


def plan_status(plan: Plan, *, plan_id: int, created_at: datetime, reason: str) -> PlanStatus:
    binding = plan.summary()["binding_now"]
    assert isinstance(binding, list)
    return PlanStatus(
        plan_id=plan_id,
        created_at=created_at,
        reason=reason,
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


def overrides_active(overrides: Iterable[OverrideView], now: datetime) -> int:
    return sum(1 for o in overrides if o.covers(now, now))


OWN_STATUS = ("stations", "sessions", "rollout", "groups", "overrides", "conflicts")
"""The parts of the controller's own status the API's status carries."""


def status_out(
    site: Site,
    now: datetime,
    *,
    stations_connected: int,
    sessions_active: int,
    overrides: Iterable[OverrideView],
    plan: PlanStatus | None,
    dso: DsoStatus,
    own: Mapping[str, object] | None = None,
    service: StatusService | None = None,
) -> StatusOut:
    """The status's figures, with the controller's own status (``own``) and the
    service's facts where there are."""
    figures = {
        "site": site.site.name,
        "timezone": site.site.timezone,
        "now": now,
        "stations_known": len(site.chargers),
        "stations_connected": stations_connected,
        "sessions_active": sessions_active,
        "overrides_active": overrides_active(overrides, now),
        "plan": plan,
        "dso": dso,
        "service": service,
    }
    if own is not None:
        figures.update({k: own[k] for k in OWN_STATUS})
    return StatusOut.model_validate(figures)


# --- groups and timelines -----------------------------------------------------------------


def group_order(site: Site) -> list[str]:
    """Every group, parents before their children (then the weighted ones)."""
    order: list[str] = []

    def walk(gid: str) -> None:
        order.append(gid)
        for child in site.children(gid):
            walk(child)

    walk(site.root.id)
    return order + [g.id for g in site.groups if g.id not in order]


def member_lines(site: Site, members: Iterable[str]) -> list[Line]:
    """The lines carried by the connectors of a group."""
    conns = site.connectors
    return sorted({x for cid in members for x in conns[cid].lines})


def plan_slot(plan: Plan, now: datetime) -> int:
    """The plan's slot that holds ``now`` (its first or last beyond its ends): a
    plan made in an earlier slot is read where it stands now, as the capacity is."""
    return min(max(math.floor(plan.grid.position(now)), 0), plan.grid.slots - 1)


def plan_lines(plan: Plan, site: Site, connector_id: str) -> tuple[Line, ...]:
    """The lines the plan loads on a connector (its wiring if the plan says nothing)."""
    return tuple(plan.lines.get(connector_id, site.connectors[connector_id].lines))


def group_out(
    site: Site,
    group_id: str,
    now: datetime,
    *,
    members: Mapping[str, float],
    capacity: Capacity,
    override: OverrideView | None,
    dso_forecast: ForecastValue | None,
    plan: Plan | None,
    running: Collection[str],
    measured: Mapping[str, Mapping[Line, float]],
    measured_kw: Mapping[str, float],
) -> GroupOut:
    """One group now. ``members``: connector → weight in the group; ``capacity``: the
    slot that holds now in slot 0; ``running``: connectors with a running session;
    ``measured``/``measured_kw``: what their meters show (running sessions only)."""
    g = site.group_by_id[group_id]
    rows = {cid: i for i, cid in enumerate(plan.connector_ids)} if plan is not None else {}
    lines = member_lines(site, members)
    planned = dict.fromkeys(lines, 0.0)
    seen = dict.fromkeys(lines, 0.0)
    planned_kw = load_kw = 0.0
    slot = 0 if plan is None else plan_slot(plan, now)
    for cid, w in members.items():
        if plan is not None and cid in running and cid in rows:
            a = float(plan.current_a[rows[cid], slot])
            for line in plan_lines(plan, site, cid):
                if line in planned:
                    planned[line] += w * a
            planned_kw += w * float(plan.power_kw[rows[cid], slot])
        for line, amps in measured.get(cid, {}).items():
            if line in seen:
                seen[line] += w * amps
        if cid in running and cid in measured_kw:
            load_kw += w * measured_kw[cid]
    cap_a = capacity.limit_a.get(group_id)
    cap_kw = capacity.limit_kw.get(group_id)
    return GroupOut(
        id=g.id,
        parent=g.parent,
        children=list(site.children(g.id)),
        description=g.description,
        weighted=g.weights is not None,
        lines=lines,
        static_limit_a=g.limit_a,
        static_limit_kw=g.limit_kw,
        fallback_limit_a=g.fallback_limit_a,
        override=LimitOverride.of(override, now),
        dso_forecast=dso_forecast,
        capacity_a=None if cap_a is None else finite(float(cap_a[0])),
        capacity_kw=None if cap_kw is None else finite(float(cap_kw[0])),
        planned_a={line: round(v, 2) for line, v in planned.items()},
        measured_a={line: round(v, 2) for line, v in seen.items()},
        planned_kw=round(planned_kw, 3),
        measured_kw=round(load_kw, 3),
    )


def capacity_at(capacity: Capacity, group_id: str, slot: int) -> tuple[float | None, float | None]:
    """A group's per-line and power limits in one slot (None: no limit)."""
    a = capacity.limit_a.get(group_id)
    kw = capacity.limit_kw.get(group_id)
    return (
        None if a is None else finite(float(a[slot])),
        None if kw is None else finite(float(kw[slot])),
    )


def measured_point(
    at: datetime, cap_a: float | None, cap_kw: float | None, sums: Mapping[Line, float]
) -> TimelinePoint:
    """A moment of the past: the capacity as it stood then, the load measured."""
    return TimelinePoint(
        at=at,
        capacity_a=cap_a,
        capacity_kw=cap_kw,
        planned_a=None,
        measured_a={k: round(v, 2) for k, v in sums.items()},
    )


def planned_points(
    site: Site,
    group_id: str,
    now: datetime,
    *,
    plan: Plan,
    capacity: Capacity,
    members: Mapping[str, float],
    running: Collection[str],
) -> list[TimelinePoint]:
    """The plan ahead for a group, one point per slot from now on (``capacity`` over
    the plan's grid; the running sessions' currents, weighted, per line)."""
    lines = member_lines(site, members)
    grid = plan.grid
    out: list[TimelinePoint] = []
    first = plan_slot(plan, now)
    for i in range(first, grid.slots):
        at = max(grid.slot_start(i), now) if i == first else grid.slot_start(i)
        sums = dict.fromkeys(lines, 0.0)
        for cid, w in members.items():
            if cid not in running or cid not in plan.connector_ids:
                continue
            a = float(plan.schedule(cid)[i])
            for line in plan_lines(plan, site, cid):
                if line in sums:
                    sums[line] += w * a
        cap_a, cap_kw = capacity_at(capacity, group_id, i)
        out.append(
            TimelinePoint(
                at=at,
                capacity_a=cap_a,
                capacity_kw=cap_kw,
                planned_a={k: round(v, 2) for k, v in sums.items()},
                measured_a=None,
            )
        )
    return out


# --- stations and connectors --------------------------------------------------------------


def station_capabilities(c: StationCapabilities | None, known: Iterable[str]) -> list[str]:
    """What the station reported and what the central system knows of it, as names."""
    return sorted(set(known) | set(capability_names(c) if c is not None else ()))


def profile_out(
    periods: Sequence[Sequence[float]], sent_at: datetime, outcome: str | None
) -> ProfileOut | None:
    """The last profile sent: its first period's limit and the station's answer."""
    if not periods:
        return None
    shown = PROFILE_OUTCOMES.get(outcome or "pending", "error")
    return ProfileOut(limit_a=float(periods[0][1]), sent_at=sent_at, outcome=shown)


@dataclass(frozen=True)
class ConnectorSession:
    """The session running on a connector, as a connector row shows it."""

    session_id: str
    delivered_kwh: float


def planned_now_a(plan: Plan | None, connector_id: str, running: bool) -> float | None:
    """The plan's current for a connector now (None: no session or not in the plan)."""
    if plan is None or not running or connector_id not in plan.connector_ids:
        return None
    return round(plan.now_a(connector_id), 2)


def connector_out(
    info: ConnectorInfo,
    *,
    status: str,
    session: ConnectorSession | None,
    limit_a: float | None,
    planned_a: float | None,
    draw_a: Mapping[Line, float],
    power_kw: float | None,
    profile: ProfileOut | None,
) -> ConnectorOut:
    return ConnectorOut(
        connector_id=info.key,
        connector=info.connector.id,
        status=status,
        max_current_a=info.max_current_a,
        min_current_a=info.connector.min_current_a,
        lines=list(info.lines),
        limit_a=None if limit_a is None else round(limit_a, 2),
        planned_a=planned_a,
        draw_a={k: round(v, 2) for k, v in draw_a.items()},
        power_kw=None if power_kw is None else round(power_kw, 3),
        energy_kwh=None if session is None else round(session.delivered_kwh, 3),
        session_id=None if session is None else session.session_id,
        profile=profile if session is not None else None,
    )


# --- sessions -----------------------------------------------------------------------------


@dataclass(frozen=True)
class RunningSession:
    """A running session as the API shows it: what is known and what is estimated."""

    session_id: str
    connector_id: str
    id_tag: str | None
    started_at: datetime
    delivered_kwh: float
    departure: datetime | None
    departure_estimated: bool
    energy_need_kwh: float
    """Still to deliver."""
    energy_need_estimated: bool
    priority: float
    drawn_a: float | None
    charge_mode: str = "fast"


@dataclass(frozen=True)
class EndedSession:
    session_id: str
    connector_id: str
    id_tag: str | None
    started_at: datetime
    ended_at: datetime | None
    delivered_kwh: float
    departure: datetime | None
    energy_need_stated: bool
    priority: float | None
    charge_mode: str | None = None


def paused_sessions(plan: Plan | None, running: Mapping[str, str]) -> set[str]:
    """Sessions offered 0 A now by the plan although they still need energy
    (``running``: connector → session id)."""
    if plan is None:
        return set()
    out = set()
    for cid, sid in running.items():
        if cid not in plan.connector_ids or sid not in plan.requested_kwh:
            continue
        if plan.requested_kwh[sid] > 1e-6 and plan.now_a(cid) < 1e-6:
            out.add(sid)
    return out


def running_session_out(
    s: RunningSession, *, plan: Plan | None, limit_a: float | None, paused: bool
) -> SessionOut:
    cid = s.connector_id
    in_plan = plan is not None and cid in plan.connector_ids and s.session_id in plan.requested_kwh
    return SessionOut(
        session_id=s.session_id,
        connector_id=cid,
        id_tag=s.id_tag,
        active=True,
        started_at=s.started_at,
        ended_at=None,
        energy_kwh=round(s.delivered_kwh, 3),
        departure=s.departure,
        departure_estimated=s.departure_estimated,
        energy_need_kwh=round(s.energy_need_kwh, 3),
        energy_need_estimated=s.energy_need_estimated,
        priority=s.priority,
        charge_mode=ChargeMode(s.charge_mode),
        planned_a=round(plan.now_a(cid), 2) if plan is not None and in_plan else None,
        planned_kwh=round(plan.energy_kwh.get(s.session_id, 0.0), 3)
        if plan is not None and in_plan
        else None,
        drawn_a=None if s.drawn_a is None else round(s.drawn_a, 2),
        limit_a=None if limit_a is None else round(limit_a, 2),
        paused=paused,
    )


def ended_session_out(s: EndedSession) -> SessionOut:
    return SessionOut(
        session_id=s.session_id,
        connector_id=s.connector_id,
        id_tag=s.id_tag,
        active=False,
        started_at=s.started_at,
        ended_at=s.ended_at,
        energy_kwh=round(s.delivered_kwh, 3),
        departure=s.departure,
        departure_estimated=s.departure is None,
        energy_need_kwh=None,
        energy_need_estimated=not s.energy_need_stated,
        priority=s.priority if s.priority is not None else 1.0,
        charge_mode=ChargeMode(s.charge_mode or ChargeMode.FAST),
        planned_a=None,
        planned_kwh=None,
        drawn_a=None,
        limit_a=None,
        paused=False,
    )


# --- forecasts and events -----------------------------------------------------------------


def forecast_value(here: Stretch) -> ForecastValue:
    """The DSO's capacity in force now."""
    return ForecastValue(
        limit_a=finite(here.limit.limit_a),
        limit_kw=finite(here.limit.limit_kw),
        source=here.source,
        received_at=here.received_at,
    )


def forecast_series(group_id: str, kind: str, stretches: Iterable[Stretch]) -> list[ForecastOut]:
    """What applies to a group of one kind, one series per source (``oscp:SOURCE``)."""
    by_source: dict[str, list[Stretch]] = {}
    for s in stretches:
        by_source.setdefault(s.source, []).append(s)
    return [
        ForecastOut(
            group_id=group_id,
            source=f"oscp:{source}",
            kind=kind,
            received_at=max(s.received_at for s in pieces),
            points=[
                ForecastPoint(
                    start=s.start,
                    end=s.end,
                    limit_a=finite(s.limit.limit_a),
                    limit_kw=finite(s.limit.limit_kw),
                )
                for s in pieces
            ],
        )
        for source, pieces in by_source.items()
    ]


def event_page(newest_first: Sequence[AuditEvent], limit: int) -> EventPage:
    """A page of the audit log from up to ``limit + 1`` events (one more says there
    is a next page)."""
    page = list(newest_first[:limit])
    more = len(newest_first) > limit
    return EventPage(events=page, next_before=page[-1].id if more and page else None)
