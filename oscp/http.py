"""The HTTP shell around `FlexibilityProvider.handle`: a FastAPI router.

    app.include_router(create_router(fp), prefix="/oscp/fp/2.0")

Every route reads the raw request and hands it over; no FastAPI validation
runs, so every error has the protocol's own status and ``{"message": ...}``.
"""

from __future__ import annotations

from fastapi import APIRouter, FastAPI, Request, Response
from fastapi.responses import JSONResponse
from starlette.background import BackgroundTask

from oscp.provider import FP_MESSAGES, FlexibilityProvider, Reply

FP_PREFIX = "/oscp/fp/2.0"


def _response(fp: FlexibilityProvider, reply: Reply) -> Response:
    task = BackgroundTask(fp.run_after, reply) if reply.after else None
    if reply.body is None:
        return Response(status_code=reply.status, headers=dict(reply.headers), background=task)
    return JSONResponse(
        reply.body, status_code=reply.status, headers=dict(reply.headers), background=task
    )


def create_router(fp: FlexibilityProvider) -> APIRouter:
    """Routes for every Flexibility Provider message (mount under ``FP_PREFIX``)."""
    router = APIRouter()

    def route(message: str, methods: list[str]) -> None:
        async def endpoint(request: Request) -> Response:
            body = await request.body()
            reply = await fp.handle(message, request.method, request.headers, body)
            return _response(fp, reply)

        endpoint.__name__ = f"oscp_{message}"
        # One route per method: the schema needs an operation id per method.
        for method in methods:
            router.add_api_route(
                f"/{message}",
                endpoint,
                methods=[method],
                operation_id=f"oscp_{message}_{method.lower()}",
                include_in_schema=True,
                response_class=Response,
                status_code=204,
            )

    for msg in FP_MESSAGES:  # every method: the core answers 405 with a message
        route(msg.value, ["GET", "POST", "PUT", "DELETE", "PATCH"])
    return router


def create_app(fp: FlexibilityProvider, prefix: str = FP_PREFIX) -> FastAPI:
    """A stand-alone app serving the router (tests, tools)."""
    app = FastAPI(title="gridshare OSCP Flexibility Provider", openapi_url=None)
    app.include_router(create_router(fp), prefix=prefix)
    return app
