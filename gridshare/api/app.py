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

Each resource's routes are in a module of `gridshare.api.routes`.
"""

import math
from collections.abc import Sequence
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles

from gridshare.api.auth import TokenAuth
from gridshare.api.backend import OperatorBackend
from gridshare.api.errors import ApiError
from gridshare.api.metrics import MetricsRecorder
from gridshare.api.routes import dashboard, forecasts, groups, sessions, stations, status
from gridshare.api.routes import live as live_routes
from gridshare.api.routes import metrics as metrics_routes
from gridshare.api.routes.dashboard import WEB_DIR
from gridshare.api.routes.live import LiveSettings
from gridshare.api.security import LOCAL_HOSTS, HostCheck, SecurityHeaders
from gridshare.config import ApiConfig


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
    app.state.auth = auth  # read by the routes' token dependencies

    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> JSONResponse:
        headers = {"WWW-Authenticate": "Bearer"} if exc.status_code == 401 else None
        return JSONResponse({"detail": exc.detail}, exc.status_code, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse({"detail": validation_errors(exc)}, 422)

    api = APIRouter(prefix="/api")
    for resource in (status, groups, stations, sessions, forecasts):
        api.include_router(resource.router(backend))
    api.include_router(live_routes.router(backend, live or LiveSettings()))
    app.include_router(api)
    for router in routers:
        app.include_router(router)
    app.include_router(metrics_routes.router(backend, recorder))
    app.include_router(dashboard.router())
    app.mount("/static", StaticFiles(directory=WEB_DIR), name="static")
    return app


__all__ = ["WEB_DIR", "LiveSettings", "create_api"]
