"""``/api/meters``: the meters and the metered groups; readings posted by an
``http`` meter's integration with a ``write`` token."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from gridshare.api.errors import ApiError, Conflict, NotFound
from gridshare.api.routes.common import READ_ERRORS, WRITE_ERRORS, Reader, Writer
from gridshare.meters.hub import MeterHub
from gridshare.meters.readings import ReadingRefused


class Unprocessable(ApiError):
    status_code = 422


class ReadingIn(BaseModel):
    """One reading: amperes per line (import positive), at a time with offset
    (default: when it arrives)."""

    model_config = ConfigDict(extra="forbid")

    current_a: dict[str, float] = Field(min_length=1, max_length=3)
    at: AwareDatetime | None = None


def router(hub: MeterHub) -> APIRouter:
    api = APIRouter(prefix="/api")

    @api.get("/meters", responses=READ_ERRORS, tags=["read"])
    async def get_meters(_: Reader) -> dict[str, Any]:
        return hub.view(hub.clock())

    @api.post(
        "/meters/{meter_id}/readings", status_code=202, responses=WRITE_ERRORS, tags=["write"]
    )
    async def post_reading(meter_id: str, body: ReadingIn, _: Writer) -> dict[str, Any]:
        meter = hub.config.get(meter_id)
        if meter is None:
            raise NotFound("meter", meter_id)
        if meter.source.type != "http":
            raise Conflict(f"meter {meter_id!r} is read over {meter.source.type}, not posted")
        at: datetime | None = body.at
        try:
            hub.offer(meter_id, body.current_a, at)
        except ReadingRefused as e:
            raise Unprocessable(f"reading refused: {e}") from None
        return {"accepted": True, "meter": meter_id}

    return api
