"""The HTTP side of the service: ``GET /api/status`` (the operator API grows
here) and a place where other routers (OSCP) are mounted.

The app reads the service through a `StatusSource`; it holds no state of its own.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from fastapi import APIRouter, FastAPI

StatusSource = Callable[[], dict[str, Any]]


def create_app(status: StatusSource, routers: Sequence[APIRouter] = ()) -> FastAPI:
    app = FastAPI(title="gridshare", docs_url=None, redoc_url=None, openapi_url=None)

    @app.get("/api/status")
    def get_status() -> dict[str, Any]:
        return status()

    for router in routers:
        app.include_router(router)
    return app
