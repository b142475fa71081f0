"""The HTTP port of a deployment of several sites: each site's app under its prefix.

    GET  /api/sites                         the sites: id, name, where their routes are
    ANY  /api/sites/{site}/…                the site's ``/api/…`` (status, groups,
                                            sessions, stations, forecasts, live, meters)
    GET  /api/sites/{site}/metrics          the site's ``/metrics``
    ANY  /sites/{site}/oscp/fp/2.0/…        the site's OSCP endpoints (the base URL
                                            told its DSO)

A site's app is the one app of a one-site deployment, unchanged: `SiteDispatch`
rewrites the path and hands the request over, so auth, Host check and headers
are the site app's. With one site, its routes stay where they are and the
scoped ones answer too. With several, the unscoped ``/api/…``, ``/oscp/…`` and
``/metrics`` answer 409 naming the scoped route to use, an unknown site 404;
the dashboard (``/``) picks a site from ``/api/sites``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from fastapi import APIRouter, FastAPI
from fastapi.responses import JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.metrics_core import Metric
from pydantic import BaseModel
from starlette.types import ASGIApp, Receive, Scope, Send

from gridshare.api.auth import TokenAuth
from gridshare.api.backend import OperatorBackend
from gridshare.api.errors import ApiError
from gridshare.api.metrics import MetricsRecorder
from gridshare.api.routes import dashboard
from gridshare.api.routes.common import READ_ERRORS, Reader, errors
from gridshare.api.routes.dashboard import WEB_DIR
from gridshare.api.security import HostCheck, SecurityHeaders
from gridshare.config import GridshareConfig

OSCP_PREFIX = "/oscp/"


@dataclass(frozen=True)
class SiteApps:
    """Each site's app and name, by site id (in the deployment's order)."""

    apps: Mapping[str, ASGIApp]
    names: Mapping[str, str]
    figures: Mapping[str, tuple[OperatorBackend, MetricsRecorder]] = field(default_factory=dict)
    """Each site's backend and metrics recorder, for the node's ``/metrics``."""

    @property
    def several(self) -> bool:
        return len(self.apps) > 1


class SiteOut(BaseModel):
    id: str
    name: str
    api: str
    """The prefix of the site's operator API routes."""
    oscp: str
    """The site's OSCP Flexibility Provider endpoint."""


def _site_out(sites: SiteApps, sid: str) -> SiteOut:
    oscp = f"/sites/{sid}/oscp/fp/2.0" if sites.several else "/oscp/fp/2.0"
    return SiteOut(id=sid, name=sites.names[sid], api=f"/api/sites/{sid}", oscp=oscp)


def _unknown(sites: SiteApps, site: str) -> JSONResponse:
    known = ", ".join(sites.apps)
    return JSONResponse({"detail": f"no site {site!r}; the sites are: {known}"}, 404)


def sites_router(sites: SiteApps) -> APIRouter:
    """``/api/sites``, and the 404 of a site that is not one (the known ones are
    dispatched before routing: `SiteDispatch`)."""
    api = APIRouter()

    @api.get("/api/sites", response_model=list[SiteOut], responses=READ_ERRORS, tags=["read"])
    async def list_sites(_: Reader) -> list[SiteOut]:
        return [_site_out(sites, sid) for sid in sites.apps]

    methods = ["GET", "POST", "PUT", "PATCH", "DELETE"]

    @api.api_route("/api/sites/{site}/{rest:path}", methods=methods, include_in_schema=False)
    async def unknown_site(site: str, rest: str, _: Reader) -> JSONResponse:
        return _unknown(sites, site)

    @api.api_route("/sites/{site}/{rest:path}", methods=methods, include_in_schema=False)
    async def unknown_site_oscp(site: str, rest: str) -> JSONResponse:
        # no token here (a DSO's is OSCP's own): the sites are not named
        return JSONResponse({"detail": f"no site {site!r}"}, 404)

    return api


def _several_router(sites: SiteApps) -> APIRouter:
    """The unscoped routes with several sites: 409 naming the scoped route, and the
    node's ``/metrics``."""
    api = APIRouter()
    methods = ["GET", "POST", "PUT", "PATCH", "DELETE"]
    known = ", ".join(sites.apps)

    def conflict(scoped: str) -> JSONResponse:
        return JSONResponse(
            {
                "detail": f"this deployment serves several sites ({known}): "
                f"use {scoped} (the sites: GET /api/sites)"
            },
            409,
        )

    @api.api_route(
        "/api/{rest:path}", methods=methods, responses=errors(401, 409), include_in_schema=False
    )
    async def api_unscoped(rest: str, _: Reader) -> JSONResponse:
        return conflict(f"/api/sites/{{site}}/{rest}")

    @api.api_route("/oscp/{rest:path}", methods=methods, include_in_schema=False)
    async def oscp_unscoped(rest: str) -> JSONResponse:
        # no token here either: the sites are not named
        detail = (
            "this deployment serves several sites: each site's OSCP endpoints are "
            f"under /sites/{{site}}/oscp/{rest}"
        )
        return JSONResponse({"detail": detail}, 409)

    @api.get("/metrics", include_in_schema=False)
    async def metrics(_: Reader) -> Response:
        for backend, recorder in sites.figures.values():  # as each site's /metrics does
            recorder.observe_status(await backend.status())
            recorder.observe_groups(await backend.groups())
        registries = {sid: recorder.registry for sid, (_, recorder) in sites.figures.items()}
        return Response(render_sites(registries), media_type=CONTENT_TYPE_LATEST)

    return api


class _SiteLabelled:
    """Every site's figures as one collector, each sample labelled with its ``site``."""

    def __init__(self, registries: Mapping[str, CollectorRegistry]) -> None:
        self.registries = registries

    def describe(self) -> Iterable[Metric]:
        return []

    def collect(self) -> Iterable[Metric]:
        families: dict[str, Metric] = {}
        for sid, registry in self.registries.items():
            for family in registry.collect():
                out = families.get(family.name)
                if out is None:
                    out = Metric(family.name, family.documentation, family.type, family.unit)
                    families[family.name] = out
                for sample in family.samples:
                    out.samples.append(sample._replace(labels={"site": sid, **sample.labels}))
        return list(families.values())


def render_sites(registries: Mapping[str, CollectorRegistry]) -> bytes:
    """The Prometheus text of several sites' registries, with a ``site`` label."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_SiteLabelled(registries))
    return generate_latest(registry)


def node_app(sites: SiteApps, edges: GridshareConfig, allowed_hosts: Sequence[str]) -> ASGIApp:
    """The HTTP app of a deployment of several sites (see the module)."""
    app = FastAPI(
        title="gridshare operator API: sites",
        version="1",
        openapi_url="/api/openapi.json",
        docs_url=None,
        redoc_url=None,
    )
    app.add_middleware(HostCheck, allowed=allowed_hosts)
    app.add_middleware(SecurityHeaders)
    app.state.auth = TokenAuth(edges.api, edges.server.trusted_proxies)

    @app.exception_handler(ApiError)
    async def _api_error(request: object, exc: ApiError) -> JSONResponse:
        headers = {"WWW-Authenticate": "Bearer"} if exc.status_code == 401 else None
        return JSONResponse({"detail": exc.detail}, exc.status_code, headers=headers)

    app.include_router(sites_router(sites))
    app.include_router(_several_router(sites))
    app.include_router(dashboard.router())
    app.mount("/static", StaticFiles(directory=WEB_DIR), name="static")
    return SiteDispatch(app, sites)


class SiteDispatch:
    """ASGI: a request under a known site's prefix to that site's app, the path
    rewritten to the site app's own; everything else to ``fallback``."""

    def __init__(self, fallback: ASGIApp, sites: SiteApps) -> None:
        self.fallback = fallback
        self.sites = sites

    def _route(self, path: str) -> tuple[ASGIApp, str] | None:
        if path.startswith("/api/sites/"):
            site, sep, rest = path[len("/api/sites/") :].partition("/")
            app = self.sites.apps.get(site)
            if app is None or not sep:
                return None
            return app, "/metrics" if rest == "metrics" else f"/api/{rest}"
        if path.startswith("/sites/"):
            site, sep, rest = path[len("/sites/") :].partition("/")
            app = self.sites.apps.get(site)
            if app is None or not ("/" + rest).startswith(OSCP_PREFIX):
                return None
            return app, f"/{rest}"
        return None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket"):
            routed = self._route(scope["path"])
            if routed is not None:
                app, path = routed
                scope = dict(scope, path=path, raw_path=path.encode())
                await app(scope, receive, send)
                return
        await self.fallback(scope, receive, send)


def one_site_app(app: FastAPI, sites: SiteApps) -> ASGIApp:
    """A one-site deployment's app: its routes as they are, and the scoped ones."""
    app.include_router(sites_router(sites))
    return SiteDispatch(app, sites)
