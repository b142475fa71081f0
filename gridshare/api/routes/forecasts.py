"""Capacity forecasts per group, paged by points."""

from typing import Annotated

from fastapi import APIRouter, Query, Response

from gridshare.api.backend import OperatorBackend
from gridshare.api.routes.common import READ_ERRORS, Reader
from gridshare.api.schemas import FORECAST_PAGE, FORECAST_PAGE_MAX, ForecastOut


def router(backend: OperatorBackend) -> APIRouter:
    api = APIRouter()

    @api.get("/forecasts", response_model=list[ForecastOut], responses=READ_ERRORS, tags=["read"])
    async def get_forecasts(
        _: Reader,
        response: Response,
        limit: Annotated[
            int, Query(ge=1, le=FORECAST_PAGE_MAX, description="Points per page.")
        ] = FORECAST_PAGE,
        offset: Annotated[int, Query(ge=0, description="Points to skip.")] = 0,
    ) -> list[ForecastOut]:
        """Paged by points; ``X-Total-Count`` gives the points of all pages."""
        page = await backend.forecasts(limit=limit, offset=offset)
        response.headers["X-Total-Count"] = str(page.total)
        return page.series

    return api
