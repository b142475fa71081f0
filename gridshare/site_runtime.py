"""One site's runtime: everything about one site, behind the node's two ports.

    store               the site's memory (`gridshare.store`)
    controller          reacts to events, re-plans, rolls the plan out (`gridshare.controller`)
    meters              the building behind the site's connection (`gridshare.meters`)
    DSO link            OSCP forecasts, heartbeats and reports (`gridshare.dso_link`)
    in-force watch      which connectors do not follow their limit
    operator backend    the operator API over narrow views of the above
                        (`gridshare.operator`)

The node's edges (the OCPP server, the HTTP server) are not here: the runtime
is handed the station commands it may send (`LimitCommands` and the rest, for
its own stations) and gives back its events' handler (`on_event`) and its HTTP
app (`app`). `gridshare.service` puts one runtime behind the ports,
`gridshare.deployment` several.

    open:   store → controller (recover state, scheduler) → meters → reports → retention
    (the node starts its OCPP and HTTP ports)
    start_dso
    (the node stops taking requests: close_streams, stop_front; then its ports)
    close:  meters → controller → retention → energy counter → store
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import re
from collections.abc import Callable
from datetime import datetime
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from fastapi import FastAPI

from forecasts.capacity_book import CapacityBook
from gridshare.api import MetricsRecorder, create_api
from gridshare.api.schemas import StatusService
from gridshare.config import GridshareConfig, pv_source
from gridshare.controller import (
    CapacityProvider,
    Controller,
    ControllerSettings,
    static_capacity,
)
from gridshare.dso_link import DsoLink, load_capacity_book
from gridshare.dso_reports import ComplianceWatch, EnergyCounter
from gridshare.http_server import http_allowed_hosts
from gridshare.in_force import InForceWatch
from gridshare.meters import api as meters_api
from gridshare.meters.forecast import store_forecast
from gridshare.meters.hub import MeterHub
from gridshare.meters.metrics import MeterMetrics
from gridshare.meters.pv import attach_pv
from gridshare.operator import LiveFeed, OperatorParts, ServiceBackend
from gridshare.retention import run_retention
from gridshare.site.compliance import ComplianceSettings
from gridshare.site.v2x import V2xSettings
from gridshare.store import Store, connect, open_store
from gridshare.store.urls import is_postgres
from gridshare.tariff.fast_cap import within_planned_kw
from gridshare.tariff.live import SiteCosts, book_optimum, metered_non_ev_kw, site_costs
from ocpp_adapter.events import DomainEvent
from ocpp_adapter.ports import OcppGateway
from oscp.provider import FlexibilityProvider

log = logging.getLogger(__name__)


_SITE_SCHEMA = re.compile(r"search_path=(site_[a-z0-9_]{1,48})$")


def ensure_schema(url: str) -> None:
    """Make a site's PostgreSQL schema (``site_{id}`` in the URL's search_path,
    `gridshare.deployment_config`) if it is not there yet."""
    if not is_postgres(url):
        return
    options = dict(parse_qsl(urlsplit(url).query)).get("options", "")
    found = _SITE_SCHEMA.search(options)
    if found is None:
        return
    db = connect(url)
    try:
        db.execute(f"CREATE SCHEMA IF NOT EXISTS {found.group(1)}")
    finally:
        db.close()


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


class SiteRuntime:
    """One site's parts: built at `open`, wired, taken down at `close`."""

    def __init__(
        self,
        site_id: str,
        config: GridshareConfig,
        db_url: str,
        *,
        capacity: CapacityProvider = static_capacity,
        settings: ControllerSettings | None = None,
        clock: Callable[[], datetime],
        scheduler: bool = True,
        oscp_measurement_interval_s: float = 60.0,
        compliance_grace_s: float | None = None,
        in_force: ComplianceSettings | None = None,
        service_status: Callable[[], StatusService],
    ) -> None:
        self.site_id = site_id
        self.config = config
        self.db_url = db_url
        self.capacity = capacity
        self.settings = settings or controller_settings(config)
        self.clock = clock
        self.scheduler = scheduler
        self.service_status = service_status
        self.store: Store | None = None
        self.controller: Controller | None = None
        self.gateway: OcppGateway | None = None
        """The station commands this site may send (while it runs)."""
        self.metrics = MetricsRecorder()
        self.meter_metrics = MeterMetrics(self.metrics.registry) if config.meters else None
        self.meters: MeterHub | None = None
        """The site's meters and the building behind its connection (``[[meters]]``)."""
        self.costs: SiteCosts | None = None
        """The tariff, carbon signal and peak so far (``[tariff]``, ``[carbon]``)."""
        self.dso: DsoLink | None = None
        """The DSO link (OSCP), while the site runs."""
        self.operator: ServiceBackend | None = None
        """The operator API's view of this site (while it runs)."""
        self.in_force: InForceWatch | None = None
        """Which connectors do not follow their limit (while the site runs)."""
        self.in_force_settings = in_force
        """Its tolerance and times (default: a meter interval's margin on the response time)."""
        self._retention_stop = asyncio.Event()
        self._retention: asyncio.Task[None] | None = None
        self.oscp_measurement_interval_s = oscp_measurement_interval_s
        """How often each OSCP group's cumulative energy goes to its capacity provider."""
        meter_s = float(config.server.meter_interval_s)
        self.compliance_grace_s = 2 * meter_s if compliance_grace_s is None else compliance_grace_s
        """How long a group may stay over its capacity before the DSO is told (two
        meter intervals: a car takes a few seconds to follow a lowered limit)."""

    @property
    def station_ids(self) -> frozenset[str]:
        return frozenset(c.id for c in self.config.site.chargers)

    # the DSO link's parts

    @property
    def oscp(self) -> FlexibilityProvider | None:
        """The OSCP Flexibility Provider, once the HTTP port serves it."""
        return self.dso.provider if self.dso is not None else None

    @property
    def capacity_book(self) -> CapacityBook:
        """The DSO's forecasts as the planner reads them (while the site runs)."""
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

    def next_transaction_id(self) -> int:
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

    def status(self) -> dict[str, Any]:
        assert self.controller is not None
        out = self.controller.status()
        out["service"] = self.service_status().model_dump(mode="json")
        return out

    def open_store(self) -> Store:
        ensure_schema(self.db_url)
        self.store = store = open_store(self.db_url)
        if hasattr(store, "full_plan_every"):  # plans are thinned as they are written
            store.full_plan_every = self.config.retention.period("full_plan_every")
        return store

    async def open(self, gateway: OcppGateway) -> None:
        """Build and start the site's parts on its store (`open_store` first) with
        ``gateway`` for its commands; the node's ports are not started yet."""
        store = self.store or self.open_store()
        self.gateway = gateway
        book = load_capacity_book(store)
        if self.capacity is static_capacity:
            self.capacity = book.capacity
        capacity = self._meter_hub(store, self.capacity)
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
        self._attach_costs(controller, store, book)
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
            name=f"retention {self.site_id}",
        )

    def _attach_costs(self, controller: Controller, store: Store, book: CapacityBook) -> None:
        """The tariff, carbon signal and peak so far, if the site has them, told to
        the planner (and, with a peak charge, to the fast path)."""
        self.costs = costs = site_costs(self.config, store, self.clock, self.metrics.registry)
        if costs is None:
            return
        controller.problems.costs = costs.signal
        costs.optimum = book_optimum(book, self.config.site)
        if costs.tariff is not None and costs.tariff.config.peak_price_per_kw > 0:
            controller.fast.trim = functools.partial(
                within_planned_kw, self.config.site, lambda: controller.plan
            )
        if self.meters is not None:
            costs.non_ev_kw = metered_non_ev_kw(self.meters.building, self.config.site)

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

    def app(self, base_url: str, host: str) -> FastAPI:
        """The site's HTTP app: operator API, dashboard, metrics, OSCP, meters;
        ``base_url`` is where its OSCP endpoints are reached (told the DSO)."""
        assert self.operator is not None and self.dso is not None
        router, prefix = self.dso.router(base_url)
        app = create_api(
            self.operator,
            self.config.api,
            metrics=self.metrics,
            allowed_hosts=http_allowed_hosts(self.config, host),
            trusted_proxies=self.config.server.trusted_proxies,
        )
        app.include_router(router, prefix=prefix)
        if self.meters is not None:
            app.include_router(meters_api.router(self.meters))
        if self.costs is not None:
            app.include_router(self.costs.router())
        return app

    async def start_dso(self) -> None:
        """The OSCP side, once the HTTP port serves it."""
        if self.dso is not None:
            await self.dso.start()

    def close_streams(self) -> None:
        if self.operator is not None:
            self.operator.close()  # live streams end, so the HTTP server can stop at once

    async def stop_front(self) -> None:
        """What talks to the outside (the DSO) and reads the stations, before the ports close."""
        if self.dso is not None:
            await self.dso.stop()
        if self.in_force is not None:
            await self.in_force.stop()
            self.in_force = None

    async def close(self) -> None:
        """Stop planning, flush and close the store (the ports are closed)."""
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
