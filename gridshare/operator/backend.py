"""`ServiceBackend`: the operator API's `OperatorBackend` over the running service.

Built from `OperatorParts` (narrow views of the controller, store, DSO link
and central system) by the service once its parts run:

    reads   `SiteReads`   status, groups, timelines, stations, sessions, plan,
                          forecasts, events
    writes  `SiteWrites`  group limits, capacity requests, sessions, commands
    live    `LiveFeed`    change hints (station events, plans, the DSO) and
                          the metrics that follow them
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta

from gridshare.api.schemas import (
    CapacityAdjustRequest,
    CapacityAdjustResult,
    Change,
    CommandResult,
    EventPage,
    ForecastPage,
    GroupLimitRequest,
    GroupLimitResult,
    GroupTimeline,
    GroupTree,
    PlanOut,
    SessionOut,
    SessionPatch,
    SessionResult,
    StationCommand,
    StationOut,
    StatusOut,
)
from gridshare.operator.live import LiveFeed
from gridshare.operator.reads import SiteReads
from gridshare.operator.views import OperatorParts
from gridshare.operator.writes import SiteWrites


class ServiceBackend:
    """See the module docstring. ``live`` is the feed the service also hands to the
    DSO link and the controller's plan observers."""

    def __init__(self, parts: OperatorParts, live: LiveFeed) -> None:
        self.parts = parts
        self.live = live
        self.reads = SiteReads(parts, live.sightings)
        self.writes = SiteWrites(parts, self.reads, live)

    # --- reads -------------------------------------------------------------------------

    async def status(self) -> StatusOut:
        self.live.refresh_oscp_metrics(self.parts.dso)
        self.parts.metrics.record_conflicts(self.parts.state.conflicts_total)
        return self.reads.status()

    async def groups(self) -> GroupTree:
        return self.reads.groups()

    async def group_timeline(self, group_id: str, history: timedelta) -> GroupTimeline:
        return self.reads.group_timeline(group_id, history)

    async def stations(self) -> list[StationOut]:
        return self.reads.stations()

    async def sessions(self, *, active: bool | None) -> list[SessionOut]:
        return self.reads.sessions(active=active)

    async def plan(self) -> PlanOut | None:
        return self.reads.plan()

    async def forecasts(self, *, limit: int, offset: int) -> ForecastPage:
        return self.reads.forecasts(limit=limit, offset=offset)

    async def events(self, *, limit: int, before: int | None) -> EventPage:
        return self.reads.events(limit=limit, before=before)

    # --- writes ------------------------------------------------------------------------

    async def set_group_limit(
        self, group_id: str, request: GroupLimitRequest, *, actor: str
    ) -> GroupLimitResult:
        return await self.writes.set_group_limit(group_id, request, actor=actor)

    async def clear_group_limit(self, group_id: str, *, actor: str) -> GroupLimitResult:
        return await self.writes.clear_group_limit(group_id, actor=actor)

    async def adjust_group_capacity(
        self, group_id: str, request: CapacityAdjustRequest, *, actor: str
    ) -> CapacityAdjustResult:
        return await self.writes.adjust_group_capacity(group_id, request, actor=actor)

    async def update_session(
        self, session_id: str, patch: SessionPatch, *, actor: str
    ) -> SessionResult:
        return await self.writes.update_session(session_id, patch, actor=actor)

    async def station_command(
        self, station_id: str, command: StationCommand, *, actor: str
    ) -> CommandResult:
        return await self.writes.station_command(station_id, command, actor=actor)

    # --- live --------------------------------------------------------------------------

    def changes(self) -> AsyncIterator[Change]:
        return self.live.changes()

    @property
    def subscribers(self) -> int:
        return self.live.subscribers

    def close(self) -> None:
        """End every live subscription (the service is stopping)."""
        self.live.close()
