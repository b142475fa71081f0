"""`create_api`: the operator API, the dashboard and ``/metrics`` as one FastAPI app.

    app = create_api(backend, config.api, metrics=recorder)
    uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=8080))

Routes (reads need a read token unless open on loopback; writes a write token;
every answer carries the `gridshare.api.security` headers, and a request for
another Host than ``allowed_hosts`` gets 400):

    GET    /api/status                      site, counts, plan status, DSO
    GET    /api/groups                      capacity tree with limits and loads now
    GET    /api/groups/{id}/timeline        past measurements and the plan ahead
    PUT    /api/groups/{id}/limit           operator limit (re-plans)
    DELETE /api/groups/{id}/limit           clear it (re-plans)
    POST   /api/groups/{id}/adjust          ask the DSO for more (or less) capacity
    GET    /api/stations[/{id}]             stations and connectors
    POST   /api/stations/{id}/commands      remote start/stop, trigger meter values,
                                            reset, availability
    GET    /api/sessions[/{id}]             active and recent sessions
    PATCH  /api/sessions/{id}               priority, departure, energy need (re-plans)
    GET    /api/plan                        plan per connector per slot, figures
    GET    /api/forecasts                   capacity forecasts per group, paged
                                            (``limit``/``offset`` points, ``X-Total-Count``)
    GET    /api/events                      audit log, paged (``before`` cursor)
    GET    /api/live                        server-sent events: `Snapshot` per change
    GET    /api/openapi.json                the schema (no docs page: it would load
                                            code from elsewhere next to the tokens)
    GET    /metrics                         Prometheus text format
    GET    /                                the dashboard (static files under /static)
"""

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Depends, FastAPI, Query, Request, Security
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response, StreamingResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from fastapi.staticfiles import StaticFiles

from gridshare.api.auth import Principal, TokenAuth
from gridshare.api.backend import OperatorBackend
from gridshare.api.errors import ApiError, NoPlanYet, NotFound
from gridshare.api.live import snapshot_stream
from gridshare.api.metrics import CONTENT_TYPE_LATEST, MetricsRecorder
from gridshare.api.schemas import (
    FORECAST_PAGE,
    FORECAST_PAGE_MAX,
    CapacityAdjustRequest,
    CapacityAdjustResult,
    CommandResult,
    ErrorOut,
    EventPage,
    ForecastOut,
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
from gridshare.api.security import LOCAL_HOSTS, HostCheck, SecurityHeaders
from gridshare.config import ApiConfig

WEB_DIR = Path(__file__).resolve().parent.parent / "web"

_bearer = HTTPBearer(auto_error=False, description="A token from [[api.tokens]]")


@dataclass(frozen=True)
class LiveSettings:
    min_interval_s: float = 0.25
    """At most one snapshot per this interval per client."""
    keepalive_s: float = 15.0


def _errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    return {code: {"model": ErrorOut} for code in codes}


READ_ERRORS = _errors(401)
WRITE_ERRORS = _errors(400, 401, 403, 404)


def _json_safe(value: Any) -> Any:
    """``value`` with what JSON cannot carry (NaN, infinity, bytes, objects) as text."""
    if isinstance(value, bool | int | str) or value is None:
        return value
    if isinstance(value, float):
        if math.isfinite(value):
            return value
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


def validation_errors(exc: RequestValidationError) -> list[dict[str, Any]]:
    """FastAPI's 422 detail (type, loc, msg, input, ctx), made safe to serialise:
    the offending input may be NaN or infinity, which JSON cannot carry."""
    keep = ("type", "loc", "msg", "input", "ctx")
    return [{k: _json_safe(e[k]) for k in keep if k in e} for e in exc.errors()]


def create_api(
    backend: OperatorBackend,
    config: ApiConfig,
    *,
    metrics: MetricsRecorder | None = None,
    live: LiveSettings | None = None,
    routers: Sequence[APIRouter] = (),
    allowed_hosts: Sequence[str] = LOCAL_HOSTS,
    trusted_proxies: Sequence[str] = (),
) -> FastAPI:
    """The operator app.

    ``metrics``: the recorder the service also writes to (a fresh one if None,
    available as ``app.state.metrics``). ``routers``: more routes served by the
    same app (e.g. the OSCP endpoints); they bring their own auth.
    ``allowed_hosts``: the Host header's names answered. ``trusted_proxies``:
    the proxies the server believes ``X-Forwarded-For`` from (uvicorn's
    ``forwarded_allow_ips``); a request still from one of them is not local.
    """
    auth = TokenAuth(config, trusted_proxies)
    recorder = metrics if metrics is not None else MetricsRecorder()
    live_settings = live or LiveSettings()

    def reader(
        request: Request,
        _: Annotated[HTTPAuthorizationCredentials | None, Security(_bearer)] = None,
    ) -> Principal:
        return auth.reader(request)

    def writer(
        request: Request,
        _: Annotated[HTTPAuthorizationCredentials | None, Security(_bearer)] = None,
    ) -> Principal:
        return auth.writer(request)

    Reader = Annotated[Principal, Depends(reader)]
    Writer = Annotated[Principal, Depends(writer)]

    app = FastAPI(
        title="gridshare operator API",
        version="1",
        description=(
            "Watch the site and set its limits. Currents are per line in A, power in kW, "
            "energy in kWh, times ISO 8601 with offset. Every write re-plans and answers "
            "with the new plan's status."
        ),
        openapi_url="/api/openapi.json",
        docs_url=None,
        redoc_url=None,
    )
    # the Host check inside, so that its refusals carry the headers too
    app.add_middleware(HostCheck, allowed=allowed_hosts)
    app.add_middleware(SecurityHeaders)
    app.state.metrics = recorder
    app.state.backend = backend

    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> JSONResponse:
        headers = {"WWW-Authenticate": "Bearer"} if exc.status_code == 401 else None
        return JSONResponse({"detail": exc.detail}, exc.status_code, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse({"detail": validation_errors(exc)}, 422)

    api = APIRouter(prefix="/api")

    # --- reads ---------------------------------------------------------------------------

    @api.get("/status", response_model=StatusOut, responses=READ_ERRORS, tags=["read"])
    async def get_status(_: Reader) -> StatusOut:
        return await backend.status()

    @api.get("/groups", response_model=GroupTree, responses=READ_ERRORS, tags=["read"])
    async def get_groups(_: Reader) -> GroupTree:
        return await backend.groups()

    @api.get(
        "/groups/{group_id}/timeline",
        response_model=GroupTimeline,
        responses=_errors(401, 404),
        tags=["read"],
    )
    async def get_timeline(
        group_id: str,
        _: Reader,
        hours: Annotated[float, Query(gt=0, le=48, description="History to include.")] = 6.0,
    ) -> GroupTimeline:
        return await backend.group_timeline(group_id, timedelta(hours=hours))

    @api.get("/stations", response_model=list[StationOut], responses=READ_ERRORS, tags=["read"])
    async def get_stations(_: Reader) -> list[StationOut]:
        return await backend.stations()

    @api.get(
        "/stations/{station_id}",
        response_model=StationOut,
        responses=_errors(401, 404),
        tags=["read"],
    )
    async def get_station(station_id: str, _: Reader) -> StationOut:
        for s in await backend.stations():
            if s.station_id == station_id:
                return s
        raise NotFound("station", station_id)

    @api.get("/sessions", response_model=list[SessionOut], responses=READ_ERRORS, tags=["read"])
    async def get_sessions(
        _: Reader,
        state: Annotated[
            Literal["active", "recent", "all"],
            Query(description="Running, ended recently, or both."),
        ] = "all",
    ) -> list[SessionOut]:
        active = {"active": True, "recent": False, "all": None}[state]
        return await backend.sessions(active=active)

    @api.get(
        "/sessions/{session_id}",
        response_model=SessionOut,
        responses=_errors(401, 404),
        tags=["read"],
    )
    async def get_session(session_id: str, _: Reader) -> SessionOut:
        for s in await backend.sessions(active=None):
            if s.session_id == session_id:
                return s
        raise NotFound("session", session_id)

    @api.get("/plan", response_model=PlanOut, responses=_errors(401, 404), tags=["read"])
    async def get_plan(_: Reader) -> PlanOut:
        plan = await backend.plan()
        if plan is None:
            raise NoPlanYet("no plan yet")
        return plan

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

    @api.get("/events", response_model=EventPage, responses=READ_ERRORS, tags=["read"])
    async def get_events(
        _: Reader,
        limit: Annotated[int, Query(ge=1, le=500)] = 50,
        before: Annotated[int | None, Query(ge=1, description="Events with id below this.")] = None,
    ) -> EventPage:
        return await backend.events(limit=limit, before=before)

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
                min_interval_s=live_settings.min_interval_s,
                keepalive_s=live_settings.keepalive_s,
            ),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
        )

    # --- writes --------------------------------------------------------------------------

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
        responses=_errors(400, 401, 403, 404, 409),
        tags=["write"],
        summary="Ask the DSO for a different capacity (OSCP AdjustGroupCapacityForecast)",
    )
    async def post_group_adjust(
        group_id: str, body: CapacityAdjustRequest, who: Writer
    ) -> CapacityAdjustResult:
        return await backend.adjust_group_capacity(group_id, body, actor=who.name)

    @api.patch(
        "/sessions/{session_id}",
        response_model=SessionResult,
        responses=_errors(400, 401, 403, 404, 409),
        tags=["write"],
    )
    async def patch_session(session_id: str, body: SessionPatch, who: Writer) -> SessionResult:
        return await backend.update_session(session_id, body, actor=who.name)

    @api.post(
        "/stations/{station_id}/commands",
        response_model=CommandResult,
        responses=WRITE_ERRORS,
        tags=["write"],
    )
    async def post_command(
        station_id: str, body: Annotated[StationCommand, Body()], who: Writer
    ) -> CommandResult:
        return await backend.station_command(station_id, body, actor=who.name)

    app.include_router(api)
    for router in routers:
        app.include_router(router)

    # --- metrics and dashboard -----------------------------------------------------------

    @app.get(
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

    @app.get("/", include_in_schema=False)
    async def dashboard() -> FileResponse:
        return FileResponse(WEB_DIR / "index.html", headers={"Cache-Control": "no-cache"})

    app.mount("/static", StaticFiles(directory=WEB_DIR), name="static")
    return app


__all__ = ["WEB_DIR", "LiveSettings", "create_api"]
