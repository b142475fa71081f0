"""The service: one asyncio process holding the site's state.

The composition root: it builds the parts and wires them together, and takes
them down in the right order:

    store               the site's memory (`gridshare.store`)
    controller          reacts to events and re-plans (`gridshare.controller`)
    gateway             the OCPP central system (the station commands)
    DSO link            OSCP forecasts, heartbeats and reports (`gridshare.dso_link`)
    operator backend    the operator API over narrow views of the above
                        (`gridshare.operator`)
    HTTP port           operator API, dashboard, metrics, OSCP (`gridshare.http_server`)

    start: store → controller (recover state, scheduler) → OCPP → HTTP → OSCP
    stop:  live streams → OSCP → HTTP → OCPP (stations closed with "going away")
           → controller → energy counter → store

so that no event arrives without a place to be stored, and the store is the
last thing to close.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import signal
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from forecasts.capacity_book import CapacityBook
from gridshare.api import MetricsRecorder, create_api
from gridshare.api.schemas import StatusService
from gridshare.config import GridshareConfig, database_url, pv_source
from gridshare.controller import (
    CapacityProvider,
    Controller,
    ControllerSettings,
    static_capacity,
)
from gridshare.dso_link import DsoLink, load_capacity_book
from gridshare.dso_reports import ComplianceWatch, EnergyCounter
from gridshare.errors import UserError
from gridshare.http_server import (
    HttpServer,
    HttpServerError,
    http_allowed_hosts,
    security_warnings,
)
from gridshare.in_force import InForceWatch
from gridshare.meters import api as meters_api
from gridshare.meters.forecast import store_forecast
from gridshare.meters.hub import MeterHub
from gridshare.meters.metrics import MeterMetrics
from gridshare.meters.pv import attach_pv
from gridshare.operator import LiveFeed, OperatorParts, ServiceBackend
from gridshare.retention import limit_heap_arenas, run_retention
from gridshare.site.compliance import ComplianceSettings
from gridshare.site.v2x import V2xSettings
from gridshare.store import Store, open_store
from gridshare.tariff.fast_cap import within_planned_kw
from gridshare.tariff.live import SiteCosts, book_optimum, metered_non_ev_kw, site_costs
from ocpp_adapter.events import (
    DomainEvent,
)
from ocpp_adapter.ports import OcppGateway
from ocpp_adapter.ports import StationInfo as StationInfo  # the operator's view and fakes use it
from ocpp_adapter.settings import ServerSettings
from oscp.provider import FlexibilityProvider

log = logging.getLogger(__name__)

EventSink = Callable[[DomainEvent], Awaitable[None]]


Gateway = OcppGateway
"""The OCPP central system as the service sees it."""


GatewayFactory = Callable[[GridshareConfig, int, str, EventSink], Gateway]
"""(config, OCPP port, host, event sink) → a gateway not yet started."""


def redact_url(url: str) -> str:
    """A database URL fit for a log line: no password, no query options."""
    bare = url.split("?", 1)[0]
    parts = urlsplit(bare)
    if parts.password is None:
        return bare
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port else ""
    return urlunsplit(parts._replace(netloc=f"{parts.username}:***@{host}{port}"))


class ServiceError(UserError):
    """The service cannot start as configured."""


def ocpp_server_settings(
    config: GridshareConfig, port: int | None = None, host: str | None = None
) -> ServerSettings:
    """The central system's part of the configuration (``port``/``host``: the
    command line's, over ``[server]``)."""
    server = config.server
    tags = server.authorize_id_tags
    return ServerSettings(
        host=server.host if host is None else host,
        port=server.ocpp_port if port is None else port,
        known_stations=frozenset(c.id for c in config.site.chargers),
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
        ocpp_server_settings(config, port, host),
        sink,
        settings=settings,
        transaction_ids=transaction_ids,
        **({"clock": clock} if clock is not None else {}),
    )


def controller_settings(config: GridshareConfig) -> ControllerSettings:
    c = config.controller
    return ControllerSettings(
        coalesce_s=c.coalesce_s,
        replan_interval_s=c.replan_interval_s,
        pin_s=c.pin_s,
        min_change_a=c.min_change_a,
        reserve_for_arrivals=c.reserve_for_arrivals,
        solve_time_limit_s=c.solve_time_limit_s,
        charge_modes=config.charge_modes,
        v2x=V2xSettings(config.v2x.enabled, config.v2x.degradation_cost_per_kwh),
    )


class Service:
    """The composition root: builds the parts at `start`, wires them, stops them."""

    def __init__(
        self,
        config: GridshareConfig,
        *,
        db: str | None = None,
        host: str | None = None,
        ocpp_port: int | None = None,
        http_port: int | None = None,
        gateway_factory: GatewayFactory | None = None,
        capacity: CapacityProvider = static_capacity,
        settings: ControllerSettings | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        scheduler: bool = True,
        oscp_measurement_interval_s: float = 60.0,
        compliance_grace_s: float | None = None,
        in_force: ComplianceSettings | None = None,
    ) -> None:
        self.config = config
        self.db_url = database_url(config, db)
        self.host = host or config.server.host
        self._ocpp_port = config.server.ocpp_port if ocpp_port is None else ocpp_port
        self.gateway_factory: GatewayFactory = gateway_factory or functools.partial(
            central_system_factory, clock=clock, transaction_ids=self._next_transaction_id
        )
        self.capacity = capacity
        self.settings = settings or controller_settings(config)
        self.clock = clock
        self.scheduler = scheduler
        self.store: Store | None = None
        self.controller: Controller | None = None
        self.gateway: Gateway | None = None
        self.http = HttpServer(
            config, self.host, config.server.http_port if http_port is None else http_port
        )
        self.started_at: datetime | None = None
        self.metrics = MetricsRecorder()
        self.meter_metrics = MeterMetrics(self.metrics.registry) if config.meters else None
        self.meters: MeterHub | None = None
        """The site's meters and the building behind its connection (``[[meters]]``)."""
        self.costs: SiteCosts | None = None
        """The tariff, carbon signal and peak so far (``[tariff]``, ``[carbon]``)."""
        self.dso: DsoLink | None = None
        """The DSO link (OSCP), while the service runs."""
        self.operator: ServiceBackend | None = None
        self.in_force: InForceWatch | None = None
        """Which connectors do not follow their limit (while the service runs)."""
        self.in_force_settings = in_force
        """Its tolerance and times (default: a meter interval's margin on the response time)."""
        self._retention_stop = asyncio.Event()
        self._retention: asyncio.Task[None] | None = None
        """The operator API's view of this service (while it runs)."""
        self.oscp_measurement_interval_s = oscp_measurement_interval_s
        """How often each OSCP group's cumulative energy goes to its capacity provider."""
        meter_s = float(config.server.meter_interval_s)
        self.compliance_grace_s = 2 * meter_s if compliance_grace_s is None else compliance_grace_s
        """How long a group may stay over its capacity before the DSO is told (two
        meter intervals: a car takes a few seconds to follow a lowered limit)."""

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

    # the DSO link's parts, as the service's callers knew them

    @property
    def oscp(self) -> FlexibilityProvider | None:
        """The OSCP Flexibility Provider, once the HTTP port serves it."""
        return self.dso.provider if self.dso is not None else None

    @property
    def capacity_book(self) -> CapacityBook:
        """The DSO's forecasts as the planner reads them (while the service runs)."""
        if self.dso is None:
            raise RuntimeError("the service is not running")
        return self.dso.capacity_book

    @capacity_book.setter
    def capacity_book(self, book: CapacityBook) -> None:
        assert self.dso is not None
        self.dso.capacity_book = book

    @property
    def energy(self) -> EnergyCounter | None:
        return self.dso.energy if self.dso is not None else None

    @property
    def compliance(self) -> ComplianceWatch | None:
        return self.dso.compliance if self.dso is not None else None

    def _next_transaction_id(self) -> int:
        assert self.store is not None
        return self.store.next_transaction_id()

    async def on_event(self, event: DomainEvent) -> None:
        assert self.controller is not None
        # as stored: what the controller refused of it counts nowhere else
        event = await self.controller.on_event(event)
        if self.meters is not None:
            self.meters.observe(event)
        if self.costs is not None:
            self.costs.observe(event)
        if self.operator is not None:
            self.operator.live.observe(event)
        if self.dso is not None:
            self.dso.observe(event)
        if self.in_force is not None:
            self.in_force.observe(event)

    def service_status(self) -> StatusService:
        """The service's own facts: start time, ports, database (password hidden)."""
        return StatusService(
            started_at=self.started_at,
            ocpp_port=self.ocpp_port,
            http_port=self.http_port,
            database=redact_url(self.db_url),
        )

    def status(self) -> dict[str, Any]:
        assert self.controller is not None
        out = self.controller.status()
        out["service"] = self.service_status().model_dump(mode="json")
        return out

    async def start(self) -> None:
        self.started_at = self.clock()
        limit_heap_arenas()  # before the worker threads: months of free memory per arena
        self.store = store = open_store(self.db_url)
        if hasattr(store, "full_plan_every"):  # plans are thinned as they are written
            store.full_plan_every = self.config.retention.period("full_plan_every")
        try:
            book = load_capacity_book(store)
            if self.capacity is static_capacity:
                self.capacity = book.capacity
            capacity = self._meter_hub(store, self.capacity)
            self.gateway = gateway = self.gateway_factory(
                self.config, self._ocpp_port, self.host, self.on_event
            )
            self.controller = controller = Controller(
                self.config.site,
                store,
                gateway,
                defaults=self.config.defaults.demand_defaults(),
                capacity=capacity,
                settings=self.settings,
                clock=self.clock,
            )
            if self.meters is not None:
                self.meters.attach(controller)
            self.costs = site_costs(self.config, store, self.clock, self.metrics.registry)
            if self.costs is not None:
                controller.problems.costs = self.costs.signal
                self.costs.optimum = book_optimum(book, self.config.site)
                if self.costs.tariff is not None and self.costs.tariff.config.peak_price_per_kw > 0:
                    controller.fast.trim = functools.partial(
                        within_planned_kw, self.config.site, lambda: controller.plan
                    )
                if self.meters is not None:
                    self.costs.non_ev_kw = metered_non_ev_kw(self.meters.building, self.config.site)
            live = LiveFeed(controller, store, self.metrics, self.clock)
            self.dso = dso = DsoLink(
                self.config,
                store,
                book,
                controller,
                clock=self.clock,
                metrics=self.metrics,
                listener=live,
                measurement_interval_s=self.oscp_measurement_interval_s,
                compliance_grace_s=self.compliance_grace_s,
            )
            controller.on_plan.append(dso.after_plan)
            controller.on_plan.append(live.on_plan)
            self.in_force = self._watch_in_force(controller, store, gateway)
            self.operator = ServiceBackend(
                OperatorParts(
                    site=self.config.site,
                    clock=self.clock,
                    state=controller,
                    control=controller,
                    store=store,
                    dso=dso,
                    stations=gateway,
                    metrics=self.metrics,
                    default_energy_kwh=self.config.defaults.energy_kwh,
                    service=self.service_status,
                    not_following=self.in_force.flagged,
                ),
                live,
            )
            # the controller's recovery first: it ends superseded sessions in the store,
            # which the energy counter's recovery then reads (its re-plan is only queued)
            await controller.start(scheduler=self.scheduler)
            if self.meters is not None:
                await self.meters.start()
            dso.start_reports()
            self._retention_stop.clear()
            self._retention = asyncio.get_running_loop().create_task(
                run_retention(store, self.config.retention, self.clock, self._retention_stop),
                name="retention",
            )
            await gateway.start()
            await self._start_http(self.operator, dso)
            await dso.start()
        except BaseException:
            await self.stop()
            raise
        log.info(
            "gridshare serving %s: OCPP on %s:%d, HTTP on %s, store %s",
            self.config.site.site.name,
            self.host,
            self.ocpp_port,
            self.http_url,
            redact_url(self.db_url),
        )
        if self.config.api.open_reads_on_loopback:
            log.warning(
                "operator API: loopback clients read without a token ([api] open_reads_on_loopback)"
            )
        else:
            log.info("operator API: every read needs a token")
        for warning in security_warnings(self.config, self.host):
            log.warning("%s", warning)

    def _meter_hub(self, store: Store, capacity: CapacityProvider) -> CapacityProvider:
        """The site's meters, if it has any; ``capacity`` less the building's load."""
        if not self.config.meters:
            return capacity
        self.meters = meters = MeterHub(
            self.config.site,
            self.config.meters,
            self.clock,
            metrics=self.meter_metrics,
            store=store,
            rollup_interval=self.config.retention.period("rollup_interval"),
            ev_response_s=self.config.in_force.ev_response_s,
        )
        # the building's forecast learns from the readings kept, from before a restart too
        meters.building.forecast = store_forecast(
            store, self.config.site, self.config.meters, meters.building.worst_all()
        )
        if (pv := pv_source(self.config)) is not None:  # the PV array's generation ahead
            attach_pv(meters.building, pv)
        meters.restore()
        return meters.building.capacity_provider(capacity)

    def _watch_in_force(self, controller: Controller, store: Store, gateway: Any) -> InForceWatch:
        """Flag connectors that do not follow their limit; the planner counts them at
        their draw (read-back only where the gateway can ask for composite schedules)."""
        reader = gateway if hasattr(gateway, "get_composite_schedule") else None
        meter_s = float(self.config.server.meter_interval_s)
        watch = InForceWatch(
            controller.state,
            store,
            reader,
            controller.request_replan,
            self.metrics,
            self.clock,
            controller.monotonic,
            self.in_force_settings
            or ComplianceSettings(
                tolerance_a=self.config.in_force.tolerance_a,
                response_s=self.config.in_force.ev_response_s,
                meter_margin_s=meter_s,
            ),
        )
        controller.problems.reserved = watch.reserved
        if self.dso is not None:
            self.dso.not_following = watch.flagged
        controller.on_plan.append(watch.after_plan)
        return watch

    async def _start_http(self, operator: ServiceBackend, dso: DsoLink) -> None:
        self.http.bind()
        router, prefix = dso.router(self.http.url)
        app = create_api(
            operator,
            self.config.api,
            metrics=self.metrics,
            allowed_hosts=http_allowed_hosts(self.config, self.host),
            trusted_proxies=self.config.server.trusted_proxies,
        )
        app.include_router(router, prefix=prefix)
        if self.meters is not None:
            app.include_router(meters_api.router(self.meters))
        if self.costs is not None:
            app.include_router(self.costs.router())
        try:
            await self.http.serve(app)
        except HttpServerError as e:
            raise ServiceError(str(e)) from e

    async def stop(self) -> None:
        """Stop accepting, close stations, stop planning, flush and close the store."""
        if self.operator is not None:
            self.operator.close()  # live streams end, so the HTTP server can stop at once
        if self.dso is not None:
            await self.dso.stop()
        if self.in_force is not None:
            await self.in_force.stop()
            self.in_force = None
        await self.http.stop()
        if self.gateway is not None:
            try:
                await self.gateway.stop()
            except Exception:
                log.exception("stopping the OCPP central system")
            self.gateway = None
        if self.meters is not None:
            await self.meters.stop()
            self.meters = None
        if self.controller is not None:
            await self.controller.stop()
        if self._retention is not None:
            self._retention_stop.set()  # the step under way finishes first
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._retention, 10)
            self._retention = None
        if self.dso is not None:
            self.dso.save_energy()
        self.dso = None
        self.operator = None
        if self.store is not None:
            self.store.close()
            self.store = None

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
