"""Typed read views of a site: its sessions, plan, last rollout, groups and
conflicts, as the operator API and the status page show them.

Each view is a frozen dataclass built from the site's state at one moment;
`SiteStatus.to_dict` is the JSON-ready status the service reports.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np

from gridshare.rollout import PinReason, RolloutReport
from gridshare.site.fallback import SiteCapacity
from gridshare.site.lookups import PlanRows
from gridshare.site.operator_limits import OperatorLimits
from gridshare.site.state import ConflictReport, SiteState
from optimizer import Plan
from optimizer.problem import TimeGrid
from optimizer.site import LINES


@dataclass(frozen=True)
class SessionView:
    connector_id: str
    session_id: str
    station_id: str
    transaction_id: str
    id_tag: str | None
    started_at: datetime
    energy_kwh: float
    departure: datetime
    departure_estimated: bool
    limit_a: float | None
    planned_a: float | None
    drawn_a: float | None
    learned_cap_a: float | None
    learned_lines: list[str] | None
    pinned: PinReason | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "connector_id": self.connector_id,
            "session_id": self.session_id,
            "station_id": self.station_id,
            "transaction_id": self.transaction_id,
            "id_tag": self.id_tag,
            "started_at": self.started_at.isoformat(),
            "energy_kwh": self.energy_kwh,
            "departure": self.departure.isoformat(),
            "departure_estimated": self.departure_estimated,
            "limit_a": self.limit_a,
            "planned_a": self.planned_a,
            "drawn_a": self.drawn_a,
            "learned_cap_a": self.learned_cap_a,
            "learned_lines": self.learned_lines,
            "pinned": self.pinned,
        }


@dataclass(frozen=True)
class PlanView:
    at: datetime | None
    grid_start: datetime
    status: str
    solve_ms: float
    count: int
    summary: Mapping[str, object]

    def to_dict(self) -> dict[str, Any]:
        return {
            "at": self.at.isoformat() if self.at else None,
            "grid_start": self.grid_start.isoformat(),
            "status": self.status,
            "solve_ms": self.solve_ms,
            "count": self.count,
            "summary": self.summary,
        }


@dataclass(frozen=True)
class RolloutView:
    sent: int
    accepted: int
    failed: Mapping[str, str]
    withheld: list[str]
    unchanged: int

    @classmethod
    def of(cls, report: RolloutReport) -> RolloutView:
        return cls(
            report.sent,
            report.accepted,
            {k: v.value for k, v in report.failed.items()},
            report.withheld,
            report.unchanged,
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "sent": self.sent,
            "accepted": self.accepted,
            "failed": dict(self.failed),
            "withheld": self.withheld,
            "unchanged": self.unchanged,
        }


@dataclass(frozen=True)
class GroupView:
    capacity_a: float | None
    """Now (None: no limit)."""
    capacity_kw: float | None
    limits_in_force_a: Mapping[str, float]
    """Per line: the sum of the limits in force now."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "capacity_a": self.capacity_a,
            "capacity_kw": self.capacity_kw,
            "limits_in_force_a": dict(self.limits_in_force_a),
        }


@dataclass(frozen=True)
class SiteStatus:
    site: str
    now: datetime
    connected: list[str]
    known_stations: int
    sessions: list[SessionView]
    plan: PlanView | None
    rollout: RolloutView | None
    groups: Mapping[str, GroupView]
    override_a: Mapping[str, float]
    override_kw: Mapping[str, float]
    conflicts: list[ConflictReport]

    def to_dict(self) -> dict[str, Any]:
        return {
            "site": self.site,
            "now": self.now.isoformat(),
            "stations": {"connected": self.connected, "known": self.known_stations},
            "sessions": [s.to_dict() for s in self.sessions],
            "plan": None if self.plan is None else self.plan.to_dict(),
            "rollout": None if self.rollout is None else self.rollout.to_dict(),
            "groups": {g: v.to_dict() for g, v in self.groups.items()},
            "overrides": {"limit_a": dict(self.override_a), "limit_kw": dict(self.override_kw)},
            "conflicts": [c.to_dict() for c in self.conflicts],
        }


def group_loads(state: SiteState, at: datetime) -> dict[str, dict[str, float]]:
    """Per group and line: the sum of limits in force at ``at``."""
    site, book = state.site, state.book
    out: dict[str, dict[str, float]] = {
        g.id: dict.fromkeys((x.value for x in LINES), 0.0) for g in site.groups
    }
    for cid, c in book.connectors.items():
        if not c.active and not book.count_idle:
            continue
        info = site.connectors[cid]
        a = (
            state.offered_now(cid, at)
            if c.active
            else float(book.worst(cid, TimeGrid(at, site.site.slot_minutes, 1))[0])
        )
        s = state.sessions.get(cid)
        lines = (s.lines if s is not None and s.lines else None) or info.lines
        for gid in info.ancestors:
            for line in lines:
                out[gid][line.value] += a
    return out


def group_views(state: SiteState, capacity: SiteCapacity, now: datetime) -> dict[str, GroupView]:
    site = state.site
    grid = TimeGrid.covering(now, site.site.slot_minutes, site.site.slot_minutes / 60)
    cap = capacity(grid, now)
    loads = group_loads(state, now)
    out: dict[str, GroupView] = {}
    for g in site.groups:
        a = cap.limit_a.get(g.id)
        kw = cap.limit_kw.get(g.id)
        out[g.id] = GroupView(
            capacity_a=None if a is None or not np.isfinite(a[0]) else float(a[0]),
            capacity_kw=None if kw is None or not np.isfinite(kw[0]) else float(kw[0]),
            limits_in_force_a={k: round(v, 1) for k, v in loads[g.id].items()},
        )
    return out


def session_views(
    state: SiteState,
    now: datetime,
    pinned: Mapping[str, PinReason],
    plan: Plan | None,
    rows: PlanRows,
) -> list[SessionView]:
    out = []
    planned = rows(plan)
    for cid, s in sorted(state.sessions.items()):
        out.append(
            SessionView(
                connector_id=cid,
                session_id=s.session_id,
                station_id=s.station_id,
                transaction_id=s.transaction_id,
                id_tag=s.id_tag,
                started_at=s.started_at,
                energy_kwh=round(s.delivered_kwh, 3),
                departure=s.departure or s.est_departure or now,
                departure_estimated=s.departure is None,
                limit_a=state.limit_now(cid, now),
                planned_a=round(plan.now_a(cid), 1)
                if plan is not None and cid in planned
                else None,
                drawn_a=None if s.drawn_a is None else round(s.drawn_a, 2),
                learned_cap_a=s.cap_a,
                learned_lines=None if s.lines is None else [x.value for x in s.lines],
                pinned=pinned.get(cid),
            )
        )
    return out


@dataclass(frozen=True)
class PlanRecord:
    """The controller's latest plan and rollout, as the views read them."""

    plan: Plan | None
    at: datetime | None
    count: int
    report: RolloutReport | None


def site_status(
    state: SiteState,
    *,
    now: datetime,
    pinned: Mapping[str, PinReason],
    latest: PlanRecord,
    rows: PlanRows,
    capacity: Callable[[TimeGrid, datetime], Any],
    limits: OperatorLimits,
) -> SiteStatus:
    plan = latest.plan
    return SiteStatus(
        site=state.site.site.name,
        now=now,
        connected=sorted(state.connected),
        known_stations=len(state.known_stations),
        sessions=session_views(state, now, pinned, plan, rows),
        plan=None
        if plan is None
        else PlanView(
            at=latest.at,
            grid_start=plan.grid.start,
            status=plan.status.value,
            solve_ms=round(plan.solve_ms, 2),
            count=latest.count,
            summary=plan.summary(),
        ),
        rollout=None if latest.report is None else RolloutView.of(latest.report),
        groups=group_views(state, capacity, now),
        override_a=limits.limit_a,
        override_kw=limits.limit_kw,
        conflicts=list(state.conflicts.values()),
    )
