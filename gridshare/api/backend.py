"""`OperatorBackend`: everything the operator API needs of the service.

The API holds no site state. It authenticates, validates, and calls one of
these methods; the service (or the test fake) answers with the response
models of `gridshare.api.schemas`. The contract:

Reads
    Cheap and side-effect free; may be called often (the live stream reads
    `status`, `groups` and `stations` after every change it is told of).

Writes
    Each write applies, is persisted and audited under ``actor`` (the token's
    name), re-plans at once and returns only after the new plan exists, with
    that plan's status. A limit the site cannot meet right now is applied, not
    refused: sessions are paused (0 A) and listed in ``paused_sessions``. A
    capacity request to the DSO changes nothing at the site until the DSO
    answers with a forecast, so it is audited but does not re-plan.

Errors
    An unknown group, station, connector or session id raises
    `gridshare.api.errors.NotFound`; a request that cannot apply in the
    present state raises `gridshare.api.errors.Conflict`. Any other exception
    is a bug and answers 500.

Live updates
    `changes()` gives an async iterator of `Change` hints for one subscriber.
    It ends when the subscriber stops iterating (the API closes it with
    ``aclose()``) or when the service shuts down. Hints may be coalesced or
    dropped under load: the API re-reads state, so only "something changed"
    must not be lost for long.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Protocol, runtime_checkable

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


@runtime_checkable
class OperatorBackend(Protocol):
    # --- reads ---------------------------------------------------------------------------

    async def status(self) -> StatusOut:
        """Site name, now, station and session counts, the current plan, the DSO."""
        ...

    async def groups(self) -> GroupTree:
        """The capacity tree with limits, override, DSO forecast and loads now."""
        ...

    async def group_timeline(self, group_id: str, history: timedelta) -> GroupTimeline:
        """One group over ``history`` back (measured) and the plan ahead (planned).

        Raises `NotFound` for an unknown group.
        """
        ...

    async def stations(self) -> list[StationOut]:
        """Every station of the site (connected or not) with its connectors."""
        ...

    async def sessions(self, *, active: bool | None) -> list[SessionOut]:
        """Sessions: running (``active=True``), ended recently (``False``) or both (None)."""
        ...

    async def plan(self) -> PlanOut | None:
        """The plan in force per connector per slot, with its figures (None: no plan yet)."""
        ...

    async def forecasts(self, *, limit: int, offset: int) -> ForecastPage:
        """Capacity forecasts in force per group (DSO, fallback), now and ahead, as
        what applies (overlapping blocks at their most restrictive); the points
        ``offset`` to ``offset + limit`` of all series in order."""
        ...

    async def events(self, *, limit: int, before: int | None) -> EventPage:
        """Audit log, newest first: at most ``limit`` events with id < ``before``."""
        ...

    # --- writes (each re-plans before it returns) ------------------------------------

    async def set_group_limit(
        self, group_id: str, request: GroupLimitRequest, *, actor: str
    ) -> GroupLimitResult:
        """Replace the group's operator override. Raises `NotFound` for an unknown group."""
        ...

    async def clear_group_limit(self, group_id: str, *, actor: str) -> GroupLimitResult:
        """Remove the group's override (no-op if none). Raises `NotFound`."""
        ...

    async def update_session(
        self, session_id: str, patch: SessionPatch, *, actor: str
    ) -> SessionResult:
        """Change priority, departure, charging mode and/or energy need of a running session.

        Raises `NotFound` for an unknown session, `Conflict` for an ended one.
        """
        ...

    async def station_command(
        self, station_id: str, command: StationCommand, *, actor: str
    ) -> CommandResult:
        """Send a command; the station's answer (or timeout) is the outcome.

        Raises `NotFound` for an unknown station or connector.
        """
        ...

    async def adjust_group_capacity(
        self, group_id: str, request: CapacityAdjustRequest, *, actor: str
    ) -> CapacityAdjustResult:
        """Ask the group's DSO for the capacity in ``request`` (audited; no re-plan:
        the capacity changes only when the DSO answers with a forecast).

        Raises `NotFound` for an unknown group, `Conflict` when the group has no
        OSCP group id, no DSO is configured or registered, or the window is over.
        """
        ...

    # --- live ------------------------------------------------------------------------

    def changes(self) -> AsyncIterator[Change]:
        """A new subscription to change hints (see the module docstring)."""
        ...
