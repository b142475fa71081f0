"""The operator API's writes: group limits, capacity requests to the DSO, session
changes and station commands.

Writes go through the controller (which persists and audits them) and wait
for the plan they cause to be rolled out, so an answer carries the status of
a plan that includes the change. A capacity request changes nothing at the
site until the DSO answers, so it is audited and does not re-plan.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable

from forecasts.model import Block, Phase, Unit
from gridshare.api.errors import Conflict, NotFound
from gridshare.api.schemas import (
    Availability,
    CapacityAdjustRequest,
    CapacityAdjustResult,
    ChangeKind,
    CommandResult,
    GroupLimitRequest,
    GroupLimitResult,
    PlanStatus,
    RemoteStart,
    RemoteStop,
    Reset,
    ResetKind,
    SessionPatch,
    SessionResult,
    StationCommand,
    TriggerMeterValues,
)
from gridshare.operator.live import LiveFeed
from gridshare.operator.reads import SiteReads
from gridshare.operator.views import OperatorParts
from ocpp_adapter.events import CommandOutcome
from ocpp_adapter.events import CommandResult as GatewayResult


class SiteWrites:
    """See the module docstring."""

    def __init__(self, parts: OperatorParts, reads: SiteReads, live: LiveFeed) -> None:
        self.parts = parts
        self.site = parts.site
        self.reads = reads
        self.live = live
        self._stations = {ch.id: ch for ch in self.site.chargers}

    async def _replanned(self, reason: str) -> PlanStatus:
        await self.parts.control.replan_now(reason)
        status = self.reads.plan_status()
        assert status is not None  # a plan was just made
        return status

    async def _group_limit_result(self, group_id: str) -> GroupLimitResult:
        self.live.publish(ChangeKind.LIMIT, group_id)
        status = await self._replanned("operator limit")
        return GroupLimitResult(
            plan=status,
            paused_sessions=sorted(self.reads.paused()),
            group=self.reads.group_now(group_id),
        )

    async def set_group_limit(
        self, group_id: str, request: GroupLimitRequest, *, actor: str
    ) -> GroupLimitResult:
        if group_id not in self.site.group_by_id:
            raise NotFound("group", group_id)
        self.parts.control.set_group_limit(
            group_id,
            limit_a=request.limit_a,
            limit_kw=request.limit_kw,
            start=request.start,
            end=request.end,
            actor=actor,
        )
        return await self._group_limit_result(group_id)

    async def clear_group_limit(self, group_id: str, *, actor: str) -> GroupLimitResult:
        if group_id not in self.site.group_by_id:
            raise NotFound("group", group_id)
        self.parts.control.set_group_limit(group_id, actor=actor)
        return await self._group_limit_result(group_id)

    async def adjust_group_capacity(
        self, group_id: str, request: CapacityAdjustRequest, *, actor: str
    ) -> CapacityAdjustResult:
        group = self.site.group_by_id.get(group_id)
        if group is None:
            raise NotFound("group", group_id)
        if not group.oscp_group_id:
            raise Conflict(f"group {group_id!r} has no oscp_group_id: no DSO knows it")
        dso = self.parts.dso
        if not dso.configured:
            raise Conflict("no capacity provider (DSO) is configured")
        now = self.parts.clock()
        start = max(request.start or now, now)  # the past cannot be adjusted
        if request.end <= now:
            raise Conflict("the window is over already")
        block = Block(request.capacity, Unit(request.unit.value), Phase.ALL, start, request.end)
        providers = dso.request_adjustment(group.oscp_group_id, [block])
        if providers is None:
            raise Conflict("no capacity provider (DSO) is configured")
        if providers == 0:
            raise Conflict("no capacity provider is registered yet")
        self.parts.store.audit(
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
        self.live.publish(ChangeKind.DSO, group_id)
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
        state = self.parts.state
        running = next((s for s in state.sessions.values() if s.session_id == session_id), None)
        if running is None:
            stored = self.parts.store.session_by_id(session_id)
            if stored is None:
                raise NotFound("session", session_id)
            raise Conflict(f"session {session_id!r} is not running")
        if patch.departure is not None and patch.departure <= running.started_at:
            raise Conflict("departure must be after the session started")
        self.parts.control.update_session(
            running.connector_id,
            priority=patch.priority,
            departure=patch.departure,
            energy_need_kwh=patch.energy_need_kwh,
            charge_mode=patch.charge_mode,
            actor=actor,
        )
        self.live.publish(ChangeKind.SESSION, session_id)
        status = await self._replanned("session changed")
        s = state.sessions.get(running.connector_id, running)
        paused = self.reads.paused()
        return SessionResult(
            plan=status,
            paused_sessions=sorted(paused),
            session=self.reads.active_out(s, self.parts.clock(), paused),
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
        result = await self._send(station_id, command)
        self.parts.store.audit(
            self.parts.clock(),
            "station_command",
            station_id,
            {
                **command.model_dump(mode="json"),
                "actor": actor,
                "outcome": result.outcome.value,
                "detail": result.detail,
            },
        )
        self.live.publish(ChangeKind.STATION, station_id)
        status = await self._replanned("station command")
        return CommandResult(
            station_id=station_id,
            command=command.command,
            outcome=result.outcome,
            detail=result.detail,
            plan=status,
        )

    async def _send(self, station_id: str, command: StationCommand) -> GatewayResult:
        stations = self.parts.stations
        call: Awaitable[GatewayResult]
        match command:
            case RemoteStart(connector=n, id_tag=tag):
                call = stations.remote_start(station_id, n, tag)
            case RemoteStop(connector=n):
                s = self.parts.state.sessions.get(f"{station_id}/{n}")
                if s is None:
                    return GatewayResult(CommandOutcome.REJECTED, "no session on the connector")
                call = stations.remote_stop(station_id, s.transaction_id)
            case TriggerMeterValues(connector=n):
                call = stations.trigger_message(station_id, "MeterValues", n)
            case Reset(kind=kind):
                call = stations.reset(station_id, hard=kind is ResetKind.HARD)
            case Availability(connector=n, operative=op):
                call = stations.change_availability(station_id, n, op)
        try:
            return await asyncio.wait_for(call, self.parts.state.settings.answer_timeout_s)
        except TimeoutError:
            return GatewayResult(CommandOutcome.TIMEOUT, "no answer")
