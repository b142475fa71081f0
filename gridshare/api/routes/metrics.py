"""``/metrics``: the recorder's figures in Prometheus text format, status and
group loads observed at each scrape."""

from fastapi import APIRouter
from fastapi.responses import Response

from gridshare.api.backend import OperatorBackend
from gridshare.api.metrics import CONTENT_TYPE_LATEST, MetricsRecorder
from gridshare.api.routes.common import READ_ERRORS, Reader


def router(backend: OperatorBackend, recorder: MetricsRecorder) -> APIRouter:
    api = APIRouter()

    @api.get(
        "/metrics",
        response_class=Response,
        responses={
            200: {"content": {CONTENT_TYPE_LATEST: {"schema": {"type": "string"}}}},
            **READ_ERRORS,
        },
        tags=["read"],
    )
    async def get_metrics(_: Reader) -> Response:
        recorder.observe_status(await backend.status())
        recorder.observe_groups(await backend.groups())
        return Response(recorder.render(), media_type=CONTENT_TYPE_LATEST)

    return api
