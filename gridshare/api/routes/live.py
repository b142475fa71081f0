"""``/live``: server-sent events, one `Snapshot` per change (`gridshare.api.live`)."""

from dataclasses import dataclass

from fastapi import APIRouter
from fastapi.responses import StreamingResponse

from gridshare.api.backend import OperatorBackend
from gridshare.api.live import snapshot_stream
from gridshare.api.routes.common import READ_ERRORS, Reader


@dataclass(frozen=True)
class LiveSettings:
    min_interval_s: float = 0.25
    """At most one snapshot per this interval per client."""
    keepalive_s: float = 15.0


def router(backend: OperatorBackend, settings: LiveSettings) -> APIRouter:
    api = APIRouter()

    @api.get(
        "/live",
        response_class=StreamingResponse,
        responses={
            200: {
                "content": {"text/event-stream": {"schema": {"type": "string"}}},
                "description": "Server-sent events named 'snapshot' (JSON `Snapshot`).",
            },
            **READ_ERRORS,
        },
        tags=["read"],
    )
    async def get_live(_: Reader) -> StreamingResponse:
        return StreamingResponse(
            snapshot_stream(
                backend,
                min_interval_s=settings.min_interval_s,
                keepalive_s=settings.keepalive_s,
            ),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
        )

    return api
