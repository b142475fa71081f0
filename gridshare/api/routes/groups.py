"""The capacity tree: ``/groups``, a group's timeline, its operator limit and
requests to the DSO for a different capacity."""

from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Query

from gridshare.api.backend import OperatorBackend
from gridshare.api.routes.common import READ_ERRORS, WRITE_ERRORS, Reader, Writer, errors
from gridshare.api.schemas import (
    CapacityAdjustRequest,
    CapacityAdjustResult,
    GroupLimitRequest,
    GroupLimitResult,
    GroupTimeline,
    GroupTree,
)


def router(backend: OperatorBackend) -> APIRouter:
    api = APIRouter()

    @api.get("/groups", response_model=GroupTree, responses=READ_ERRORS, tags=["read"])
    async def get_groups(_: Reader) -> GroupTree:
        return await backend.groups()

    @api.get(
        "/groups/{group_id}/timeline",
        response_model=GroupTimeline,
        responses=errors(401, 404),
        tags=["read"],
    )
    async def get_timeline(
        group_id: str,
        _: Reader,
        hours: Annotated[float, Query(gt=0, le=48, description="History to include.")] = 6.0,
    ) -> GroupTimeline:
        return await backend.group_timeline(group_id, timedelta(hours=hours))

    @api.put(
        "/groups/{group_id}/limit",
        response_model=GroupLimitResult,
        responses=WRITE_ERRORS,
        tags=["write"],
    )
    async def put_group_limit(
        group_id: str, body: GroupLimitRequest, who: Writer
    ) -> GroupLimitResult:
        return await backend.set_group_limit(group_id, body, actor=who.name)

    @api.delete(
        "/groups/{group_id}/limit",
        response_model=GroupLimitResult,
        responses=WRITE_ERRORS,
        tags=["write"],
    )
    async def delete_group_limit(group_id: str, who: Writer) -> GroupLimitResult:
        return await backend.clear_group_limit(group_id, actor=who.name)

    @api.post(
        "/groups/{group_id}/adjust",
        response_model=CapacityAdjustResult,
        status_code=202,
        responses=errors(400, 401, 403, 404, 409),
        tags=["write"],
        summary="Ask the DSO for a different capacity (OSCP AdjustGroupCapacityForecast)",
    )
    async def post_group_adjust(
        group_id: str, body: CapacityAdjustRequest, who: Writer
    ) -> CapacityAdjustResult:
        return await backend.adjust_group_capacity(group_id, body, actor=who.name)

    return api
