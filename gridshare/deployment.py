"""A deployment: several site runtimes behind one OCPP port and one HTTP port.

The node's edges are built here, the sites' parts in `gridshare.site_runtime`:

    OCPP port   one central system for every site's stations; each station's
                events go to its site's runtime (station ids are unique across
                the deployment), each site's commands reach only its own stations
    HTTP port   one server: with one site its app as it is; with several,
                ``/api/sites``, ``/api/sites/{site}/…`` and
                ``/sites/{site}/oscp/fp/2.0`` (`gridshare.api.sites`)

    start: stores → runtimes (recover state, scheduler) → OCPP → HTTP → OSCP
    stop:  live streams → OSCP → HTTP → OCPP (stations closed with "going away")
           → runtimes (controller, energy counter, store)

so that no event arrives without a place to be stored, and the stores are the
last things to close. The node's settings (``[server]``, ``[api]``) are the
deployment's (`gridshare.config.load_deployment` checks the site files agree).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import signal
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import urlsplit, urlunsplit

from gridshare.api.schemas import StatusService
from gridshare.api.sites import SiteApps, node_app, one_site_app
from gridshare.config import GridshareConfig
from gridshare.controller import CapacityProvider, ControllerSettings, static_capacity
from gridshare.errors import UserError
from gridshare.http_server import (
    HttpServer,
    HttpServerError,
    http_allowed_hosts,
    security_warnings,
)
from gridshare.retention import limit_heap_arenas
from gridshare.site.compliance import ComplianceSettings
from gridshare.site_runtime import SiteRuntime
from gridshare.site_stations import SiteStations
from ocpp_adapter.events import DomainEvent
from ocpp_adapter.ports import OcppGateway
from ocpp_adapter.settings import ServerSettings

log = logging.getLogger("gridshare.service")  # the service's log, one site or several

EventSink = Callable[[DomainEvent], Awaitable[None]]

Gateway = OcppGateway
"""The OCPP central system as the service sees it."""

GatewayFactory = Callable[[GridshareConfig, int, str, EventSink], Gateway]
"""(config, OCPP port, host, event sink) → a gateway not yet started."""


class ServiceError(UserError):
    """The service cannot start as configured."""


def redact_url(url: str) -> str:
    """A database URL fit for a log line: no password, no query options."""
    bare = url.split("?", 1)[0]
    parts = urlsplit(bare)
    if parts.password is None:
        return bare
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port else ""
    return urlunsplit(parts._replace(netloc=f"{parts.username}:***@{host}{port}"))


def ocpp_server_settings(
    config: GridshareConfig,
    port: int | None = None,
    host: str | None = None,
    known_stations: frozenset[str] | None = None,
) -> ServerSettings:
    """The central system's part of the configuration (``port``/``host``: the
    command line's, over ``[server]``; ``known_stations``: every site's, else the
    config's chargers)."""
    server = config.server
    tags = server.authorize_id_tags
    known = known_stations
    if known is None:
        known = frozenset(c.id for c in config.site.chargers)
    return ServerSettings(
        host=server.host if host is None else host,
        port=server.ocpp_port if port is None else port,
        known_stations=known,
        allow_unknown_stations=server.allow_unknown_stations,
        station_passwords={k: v.get_secret_value() for k, v in server.station_passwords.items()},
        tls_cert=server.tls_cert,
        tls_key=server.tls_key,
        tls_client_ca=server.tls_client_ca,
        authorize_id_tags=frozenset(tags) if tags is not None else None,
    )


def central_system_factory(
    config: GridshareConfig,
    port: int,
    host: str,
    sink: EventSink,
    clock: Callable[[], datetime] | None = None,
    transaction_ids: Callable[[], int] | None = None,
    known_stations: frozenset[str] | None = None,
) -> Gateway:
    """The OCPP adapter's central system, on the service's clock (profiles carry
    absolute times, so the demo's fast clock must reach them), with 1.6
    transaction ids from ``transaction_ids`` (the store's sequence)."""
    from ocpp_adapter import AdapterSettings, CentralSystem

    settings = AdapterSettings(
        meter_interval_s=config.server.meter_interval_s,
        heartbeat_interval_s=config.server.heartbeat_interval_s,
    )
    return CentralSystem(
        ocpp_server_settings(config, port, host, known_stations),
        sink,
        settings=settings,
        transaction_ids=transaction_ids,
        **({"clock": clock} if clock is not None else {}),
    )


def station_of(event: DomainEvent) -> str | None:
    """The station an event is of: its ``station_id``, else its connector's
    (``"CP1/2"``: a station id holds no ``/``)."""
    sid: str | None = getattr(event, "station_id", None)
    if sid is not None:
        return sid
    connector: str | None = getattr(event, "connector_id", None)
    return connector.partition("/")[0] if connector else None


@dataclass(frozen=True)
class SiteSpec:
    """One site of a deployment: its id (URL path part, schema name), its file's
    configuration and its store's URL."""

    id: str
    config: GridshareConfig
    db_url: str


@dataclass(frozen=True)
class RuntimeOptions:
    """What every site runtime of the node is built with (tests and the demo set them)."""

    capacity: CapacityProvider = static_capacity
    settings: ControllerSettings | None = None
    scheduler: bool = True
    oscp_measurement_interval_s: float = 60.0
    compliance_grace_s: float | None = None
    in_force: ComplianceSettings | None = None


class Deployment:
    """The node: its sites' runtimes behind one OCPP port and one HTTP port."""

    def __init__(
        self,
        sites: Sequence[SiteSpec],
        edges: GridshareConfig,
        *,
        host: str | None = None,
        ocpp_port: int | None = None,
        http_port: int | None = None,
        gateway_factory: GatewayFactory | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        options: RuntimeOptions = RuntimeOptions(),
    ) -> None:
        if not sites:
            raise ServiceError("a deployment needs at least one site")
        self.edges = edges
        """The configuration the ports take their settings from (``[server]``, ``[api]``)."""
        self.host = host or edges.server.host
        self._ocpp_port = edges.server.ocpp_port if ocpp_port is None else ocpp_port
        self.clock = clock
        self.runtimes: dict[str, SiteRuntime] = {
            s.id: SiteRuntime(
                s.id,
                s.config,
                s.db_url,
                capacity=options.capacity,
                settings=options.settings,
                clock=clock,
                scheduler=options.scheduler,
                oscp_measurement_interval_s=options.oscp_measurement_interval_s,
                compliance_grace_s=options.compliance_grace_s,
                in_force=options.in_force,
                service_status=self.service_status,
            )
            for s in sites
        }
        self._by_station = {sid: rt for rt in self.runtimes.values() for sid in rt.station_ids}
        first = next(iter(self.runtimes.values()))
        # 1.6 transaction ids: one sequence for the port, the first site's store's
        self.gateway_factory: GatewayFactory = gateway_factory or functools.partial(
            central_system_factory,
            clock=clock,
            transaction_ids=first.next_transaction_id,
            known_stations=frozenset(self._by_station),
        )
        self.gateway: Gateway | None = None
        self.http = HttpServer(
            edges, self.host, edges.server.http_port if http_port is None else http_port
        )
        self.started_at: datetime | None = None

    @property
    def several(self) -> bool:
        return len(self.runtimes) > 1

    @property
    def ocpp_port(self) -> int:
        return self.gateway.port if self.gateway is not None else self._ocpp_port

    @property
    def http_port(self) -> int:
        return self.http.port

    @property
    def http_url(self) -> str:
        """``http(s)://host:port`` of the HTTP port (IPv6 in brackets)."""
        return self.http.url

    def site_url(self, site_id: str) -> str:
        """Where a site's HTTP routes are: the port's root for one site."""
        return f"{self.http_url}/sites/{site_id}" if self.several else self.http_url

    def database(self) -> str:
        urls = [redact_url(rt.db_url) for rt in self.runtimes.values()]
        return urls[0] if len(urls) == 1 else ", ".join(urls)

    def service_status(self) -> StatusService:
        """The service's own facts: start time, ports, database (password hidden)."""
        return StatusService(
            started_at=self.started_at,
            ocpp_port=self.ocpp_port,
            http_port=self.http_port,
            database=self.database(),
        )

    async def route_event(self, event: DomainEvent) -> None:
        """A station's event to its site's runtime (the central system admits only
        the deployment's stations, each of one site)."""
        sid = station_of(event)
        runtime = self._by_station.get(sid) if sid is not None else None
        if runtime is None:
            log.error("event of station %r, of no site: dropped (%s)", sid, type(event).__name__)
            return
        await runtime.on_event(event)

    async def start(self) -> None:
        self.started_at = self.clock()
        limit_heap_arenas()  # before the worker threads: months of free memory per arena
        try:
            for rt in self.runtimes.values():
                rt.open_store()
            only = None if self.several else next(iter(self.runtimes.values()))
            sink = only.on_event if only is not None else self.route_event
            self.gateway = gateway = self.gateway_factory(
                self.edges, self._ocpp_port, self.host, sink
            )
            for rt in self.runtimes.values():
                own = gateway if only is not None else SiteStations(gateway, rt.station_ids)
                await rt.open(own)
            await gateway.start()
            await self._start_http()
            for rt in self.runtimes.values():
                await rt.start_dso()
        except BaseException:
            await self.stop()
            raise
        self._log_started()

    def _log_started(self) -> None:
        names = ", ".join(rt.config.site.site.name for rt in self.runtimes.values())
        log.info(
            "gridshare serving %s: OCPP on %s:%d, HTTP on %s, store %s",
            names,
            self.host,
            self.ocpp_port,
            self.http_url,
            self.database(),
        )
        if self.edges.api.open_reads_on_loopback:
            log.warning(
                "operator API: loopback clients read without a token ([api] open_reads_on_loopback)"
            )
        else:
            log.info("operator API: every read needs a token")
        for warning in security_warnings(self.edges, self.host):
            log.warning("%s", warning)

    async def _start_http(self) -> None:
        self.http.bind()
        apps = {sid: rt.app(self.site_url(sid), self.host) for sid, rt in self.runtimes.items()}
        names = {sid: rt.config.site.site.name for sid, rt in self.runtimes.items()}
        figures = {
            sid: (rt.operator, rt.metrics)
            for sid, rt in self.runtimes.items()
            if rt.operator is not None
        }
        sites = SiteApps(apps, names, figures)
        if self.several:
            app = node_app(sites, self.edges, http_allowed_hosts(self.edges, self.host))
        else:
            app = one_site_app(next(iter(apps.values())), sites)
        try:
            await self.http.serve(app)
        except HttpServerError as e:
            raise ServiceError(str(e)) from e

    async def stop(self) -> None:
        """Stop accepting, close stations, stop planning, flush and close the stores."""
        for rt in self.runtimes.values():
            rt.close_streams()
        for rt in self.runtimes.values():
            await rt.stop_front()
        await self.http.stop()
        if self.gateway is not None:
            try:
                await self.gateway.stop()
            except Exception:
                log.exception("stopping the OCPP central system")
            self.gateway = None
        for rt in self.runtimes.values():
            await rt.close()

    async def run_until_signalled(self, stop: asyncio.Event | None = None) -> None:
        """Run until SIGINT/SIGTERM (or ``stop`` is set), then shut down cleanly."""
        stop = stop or asyncio.Event()
        loop = asyncio.get_running_loop()
        installed = []
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                loop.add_signal_handler(sig, stop.set)
                installed.append(sig)
            except (NotImplementedError, RuntimeError):  # not the main thread
                pass
        try:
            await self.start()
            await stop.wait()
            log.info("shutting down")
        finally:
            for sig in installed:
                loop.remove_signal_handler(sig)
            await self.stop()
