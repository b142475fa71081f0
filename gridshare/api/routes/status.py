"""Site-wide reads: ``/status``, ``/plan`` and the audit log ``/events``."""

from typing import Annotated

from fastapi import APIRouter, Query

from gridshare.api.backend import OperatorBackend
from gridshare.api.errors import NoPlanYet
from gridshare.api.routes.common import READ_ERRORS, Reader, errors
from gridshare.api.schemas import EventPage, PlanOut, StatusOut


def router(backend: OperatorBackend) -> APIRouter:
    api = APIRouter()

    @api.get("/status", response_model=StatusOut, responses=READ_ERRORS, tags=["read"])
    async def get_status(_: Reader) -> StatusOut:
        return await backend.status()

    @api.get("/plan", response_model=PlanOut, responses=errors(401, 404), tags=["read"])
    async def get_plan(_: Reader) -> PlanOut:
        plan = await backend.plan()
        if plan is None:
            raise NoPlanYet("no plan yet")
        return plan

    @api.get("/events", response_model=EventPage, responses=READ_ERRORS, tags=["read"])
    async def get_events(
        _: Reader,
        limit: Annotated[int, Query(ge=1, le=500)] = 50,
        before: Annotated[int | None, Query(ge=1, description="Events with id below this.")] = None,
    ) -> EventPage:
        return await backend.events(limit=limit, before=before)

    return api
