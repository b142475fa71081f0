"""The service: one asyncio process holding the site's state.

Wires the configuration, the store, the controller, the OCPP central system,
the HTTP app (operator API, dashboard, metrics, OSCP endpoints) and the
scheduler, and takes them down in the right order:

    start: store → controller (recover state, scheduler) → OCPP → HTTP
    stop:  live streams → HTTP → OCPP (stations closed with "going away")
           → controller → store

so that no event arrives without a place to be stored, and the store is the
last thing to close.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import signal
import socket
import ssl
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import uvicorn

from gridshare.api import MetricsRecorder, create_api
from gridshare.api.auth import is_loopback
from gridshare.api.security import LOCAL_HOSTS
from gridshare.config import GridshareConfig, database_url
from gridshare.controller import (
    CapacityProvider,
    Controller,
    ControllerSettings,
    static_capacity,
)
from gridshare.dso_reports import ComplianceWatch, EnergyCounter
from gridshare.operator import CAPACITY_HISTORY, ServiceBackend
from gridshare.rollout import RolloutReport
from gridshare.store import Store, open_store
from ocpp_adapter.events import (
    DomainEvent,
    MeterReading,
)
from ocpp_adapter.ports import OcppGateway
from ocpp_adapter.ports import StationInfo as StationInfo  # the operator's view and fakes use it
from ocpp_adapter.settings import ServerSettings
from ocpp_adapter.tls import server_tls_context
from optimizer.plan import Plan
from optimizer.problem import TimeGrid
from oscp.loopback import listen_socket

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


class ServiceError(Exception):
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


class _Uvicorn(uvicorn.Server):
    """uvicorn without its own signal handling: the service owns SIGINT/SIGTERM."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def _is_wildcard(host: str) -> bool:
    return host in ("", "0.0.0.0", "::")


def http_allowed_hosts(config: GridshareConfig, host: str) -> list[str]:
    """The Host names the HTTP port answers to: ``[server] allowed_hosts``, else the
    loopback names, the bind address and the host of ``[oscp] base_url``."""
    if config.server.allowed_hosts is not None:
        return list(config.server.allowed_hosts)
    names = list(LOCAL_HOSTS)
    if not _is_wildcard(host):
        names.append(host)
    if config.oscp.base_url:
        advertised = urlsplit(config.oscp.base_url).hostname
        if advertised:
            names.append(advertised)
    return names


def _tls_context(config: uvicorn.Config, default: Callable[[], ssl.SSLContext]) -> ssl.SSLContext:
    """The same TLS policy as the OCPP port (TLS 1.2+, AEAD suites only), not uvicorn's."""
    assert config.ssl_certfile is not None and config.ssl_keyfile is not None
    return server_tls_context(config.ssl_certfile, config.ssl_keyfile)


def http_server_config(app: Any, config: GridshareConfig, **kw: Any) -> uvicorn.Config:
    """uvicorn's settings for the HTTP port: TLS from `ServerConfig.http_tls`, and
    ``X-Forwarded-*`` believed only from ``[server] trusted_proxies``."""
    server = config.server
    tls = server.http_tls()
    proxies = list(server.trusted_proxies)
    return uvicorn.Config(
        app,
        log_level="warning",
        lifespan="off",
        access_log=False,
        timeout_graceful_shutdown=2,
        log_config=None,  # uvicorn's records go to the app's root handler (gridshare.logs)
        server_header=False,
        proxy_headers=bool(proxies),
        forwarded_allow_ips=proxies or None,
        ssl_certfile=str(tls[0]) if tls else None,
        ssl_keyfile=str(tls[1]) if tls else None,
        ssl_context_factory=_tls_context if tls else None,
        **kw,
    )


def security_warnings(config: GridshareConfig, host: str) -> list[str]:
    """What the startup log warns of: secrets in clear, stations without credentials,
    a public HTTP port answering only loopback names."""
    s = config.server
    out = []
    if s.tls_cert is None:
        out.append("OCPP without TLS (ws://): station passwords and traffic travel in clear")
    if not s.station_passwords and s.tls_client_ca is None:
        out.append(
            "OCPP without station authentication: no [server] station_passwords or tls_client_ca"
        )
    loopback = host == "localhost" or is_loopback(host)
    if s.http_tls() is None and not loopback:
        out.append(
            f"HTTP on {host} without TLS: API and OSCP tokens travel in clear"
            " (set [server] http_tls_cert and http_tls_key)"
        )
    if _is_wildcard(host) and s.allowed_hosts is None:
        out.append(
            f"HTTP bound to {host or 'every address'} answers only the Host names "
            + ", ".join(http_allowed_hosts(config, host))
            + ": list the names clients use in [server] allowed_hosts"
        )
    if _is_wildcard(host) and config.oscp.capacity_providers and not config.oscp.base_url:
        out.append(
            f"OSCP: the base URL sent to the DSO names {host or 'no host'}: set [oscp] base_url"
        )
    return out


def controller_settings(config: GridshareConfig) -> ControllerSettings:
    c = config.controller
    return ControllerSettings(
        coalesce_s=c.coalesce_s,
        replan_interval_s=c.replan_interval_s,
        pin_s=c.pin_s,
        min_change_a=c.min_change_a,
        reserve_for_arrivals=c.reserve_for_arrivals,
        solve_time_limit_s=c.solve_time_limit_s,
    )


class Service:
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
    ) -> None:
        self.config = config
        self.db_url = database_url(config, db)
        self.host = host or config.server.host
        self._ocpp_port = config.server.ocpp_port if ocpp_port is None else ocpp_port
        self._http_port = config.server.http_port if http_port is None else http_port
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
        self._http: _Uvicorn | None = None
        self._http_task: asyncio.Task[None] | None = None
        self._http_socket: socket.socket | None = None
        self.started_at: datetime | None = None
        self.oscp: Any = None
        """The OSCP Flexibility Provider, when the ``oscp`` package is present."""
        self.capacity_book: Any = None
        self.metrics = MetricsRecorder()
        self.operator: ServiceBackend | None = None
        """The operator API's view of this service (while it runs)."""
        self.dso_heartbeats: dict[str, datetime] = {}
        """Capacity provider → when its last heartbeat came."""
        self.oscp_measurement_interval_s = oscp_measurement_interval_s
        """How often each OSCP group's cumulative energy goes to its capacity provider."""
        meter_s = float(config.server.meter_interval_s)
        self.compliance_grace_s = 2 * meter_s if compliance_grace_s is None else compliance_grace_s
        """How long a group may stay over its capacity before the DSO is told (two
        meter intervals: a car takes a few seconds to follow a lowered limit)."""
        self.energy: EnergyCounter | None = None
        """Cumulative energy per connector, while OSCP groups are configured."""
        self.compliance: ComplianceWatch | None = None
        self._compliance_checked: datetime | None = None

    @property
    def ocpp_port(self) -> int:
        return self.gateway.port if self.gateway is not None else self._ocpp_port

    @property
    def http_port(self) -> int:
        if self._http_socket is not None:
            return int(self._http_socket.getsockname()[1])
        return self._http_port

    @property
    def http_url(self) -> str:
        """``http(s)://host:port`` of the HTTP port (IPv6 in brackets)."""
        scheme = "https" if self.config.server.http_tls() is not None else "http"
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{scheme}://{host}:{self.http_port}"

    def _next_transaction_id(self) -> int:
        assert self.store is not None
        return self.store.next_transaction_id()

    async def on_event(self, event: DomainEvent) -> None:
        assert self.controller is not None
        # as stored: what the controller refused of it counts nowhere else
        event = await self.controller.on_event(event)
        if self.operator is not None:
            self.operator.observe(event)
        if self.energy is not None:
            self._dso_observe(event)

    def status(self) -> dict[str, Any]:
        assert self.controller is not None
        out = self.controller.status()
        out["service"] = {
            "started_at": self.started_at.isoformat() if self.started_at else None,
            "ocpp_port": self.ocpp_port,
            "http_port": self.http_port,
            "database": redact_url(self.db_url),
        }
        return out

    async def start(self) -> None:
        self.started_at = self.clock()
        self.store = open_store(self.db_url)
        try:
            self._load_capacity_book()
            self.gateway = self.gateway_factory(
                self.config, self._ocpp_port, self.host, self.on_event
            )
            assert self.gateway is not None
            self.controller = Controller(
                self.config.site,
                self.store,
                self.gateway,
                defaults=self.config.defaults.demand_defaults(),
                capacity=self.capacity,
                settings=self.settings,
                clock=self.clock,
            )
            self.controller.on_plan.append(self._after_plan)
            self.operator = ServiceBackend(self, self.metrics)
            self.operator.attach(self.controller)
            # the controller's recovery first: it ends superseded sessions in the store,
            # which the energy counter's recovery then reads (its re-plan is only queued)
            await self.controller.start(scheduler=self.scheduler)
            self._start_dso_reports()
            await self.gateway.start()
            await self._start_http()
            if self.oscp is not None:
                await self.oscp.start()
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

    # --- OSCP and forecasts ---------------------------------------------------------

    def _load_capacity_book(self) -> None:
        """The DSO's forecasts (kept in the store) become the planner's capacity."""
        try:
            from forecasts.capacity_book import CapacityBook
        except ImportError:
            log.warning("forecasts package missing: static capacity only")
            return
        assert self.store is not None
        saved = self.store.get_state("capacity_book")
        self.capacity_book = CapacityBook.from_export(saved) if saved else CapacityBook()
        if self.capacity is static_capacity:
            self.capacity = self.capacity_book.capacity

    def _save_capacity_book(self) -> None:
        if self.store is not None and self.capacity_book is not None:
            self.store.put_state("capacity_book", self.capacity_book.export())

    def _prune_capacity_book(self) -> bool:
        """Forget the blocks that ended longer ago than the operator's views look
        back (on every forecast, heartbeat and plan: the book stays small)."""
        book = self.capacity_book
        return book is not None and book.prune(self.clock() - CAPACITY_HISTORY) > 0

    def _after_plan(self, plan: Plan, report: RolloutReport) -> None:
        if self._prune_capacity_book():
            self._save_capacity_book()

    def _oscp_router(self) -> Any:
        """Build the Flexibility Provider and its router (None without the package)."""
        try:
            from oscp.http import FP_PREFIX, create_router
            from oscp.provider import FlexibilityProvider
            from oscp.tokens import JsonFileTokenStore, MemoryTokenStore
        except ImportError:
            log.warning("oscp package missing: no OSCP endpoints")
            return None
        if self.capacity_book is None:
            return None
        cfg = self.config
        tokens: Any = (
            JsonFileTokenStore(cfg.path.with_suffix(".oscp-tokens.json"))
            if cfg.path is not None
            else MemoryTokenStore()
        )
        groups = [g.oscp_group_id for g in cfg.site.groups if g.oscp_group_id]
        self.oscp = FlexibilityProvider(
            cfg.oscp,
            our_base_url=f"{self.http_url}{FP_PREFIX}",
            groups=groups,
            token_store=tokens,
            on_forecast=self._on_forecast,
            on_heartbeat=self._on_dso_heartbeat,
            on_offline=self._on_dso_offline,
            measurements=self._group_energy if self.energy is not None else None,
            measurement_interval_s=self.oscp_measurement_interval_s,
            clock=self.clock,
        )
        return create_router(self.oscp), FP_PREFIX

    async def _on_forecast(self, provider_group: str, forecast: Any) -> None:
        """Stored (forecast and capacity book) before the DSO gets its 204."""
        assert self.store is not None and self.controller is not None
        self._prune_capacity_book()
        self.capacity_book.add(forecast)
        self.store.save_forecast(
            forecast.group_id,
            str(forecast.type),
            forecast.source,
            forecast.received_at,
            [
                {
                    "capacity": b.capacity,
                    "unit": str(b.unit),
                    "phase": str(b.phase),
                    "start": b.start.isoformat(),
                    "end": b.end.isoformat(),
                }
                for b in forecast.blocks
            ],
        )
        self._save_capacity_book()
        if self.operator is not None:
            self.operator.dso_heard("UpdateGroupCapacityForecast")
        self.controller.request_replan("dso forecast")

    async def _on_dso_heartbeat(self, provider: str, offline_mode_at: datetime) -> None:
        self._prune_capacity_book()
        self.capacity_book.heartbeat(provider, offline_mode_at)
        self._save_capacity_book()
        self.dso_heartbeats[provider] = self.clock()
        if self.operator is not None:
            self.operator.dso_heard("Heartbeat")

    async def _on_dso_offline(self, provider: str) -> None:
        assert self.controller is not None
        log.warning("capacity provider %s went offline: its fallback forecast applies", provider)
        self.metrics.set_dso_online(provider, False)
        if self.operator is not None:
            self.operator.publish_dso(provider)
        self.controller.request_replan("dso offline")

    def _start_dso_reports(self) -> None:
        """Energy counter and compliance watch, when a DSO and an OSCP group are configured
        (before the stations connect, so no reading is missed)."""
        assert self.store is not None
        site = self.config.site
        if not self.config.oscp.capacity_providers or not any(g.oscp_group_id for g in site.groups):
            return
        self.energy = EnergyCounter(site, self.store)
        self.energy.recover()
        meter_s = float(self.config.server.meter_interval_s)
        self.compliance = ComplianceWatch(
            site,
            grace_s=self.compliance_grace_s,
            stale_s=max(3 * meter_s, self.compliance_grace_s + meter_s),
        )

    def _dso_observe(self, event: DomainEvent) -> None:
        """Feed the counter and the watch; never fails the event (it is stored already)."""
        assert self.energy is not None and self.compliance is not None
        try:
            self.energy.observe(event)
            self.compliance.observe(event, self.clock())
            if isinstance(event, MeterReading):
                self._check_compliance()
        except Exception:
            log.exception("OSCP reports: %s not counted", type(event).__name__)

    async def _group_energy(self, provider_group: str) -> float | None:
        """MeasurementSource: the site group's cumulative imported energy (kWh)."""
        if self.energy is None:
            return None
        group = next(
            (g for g in self.config.site.groups if g.oscp_group_id == provider_group), None
        )
        if group is None:
            return None
        self.energy.save(if_changed=True)  # what is reported survives a restart
        return round(self.energy.group_kwh(group.id), 6)

    def _check_compliance(self) -> None:
        """Compare the OSCP groups' measured load with the capacity in force (at most
        a few times per meter interval, however many stations report)."""
        ctl, watch = self.controller, self.compliance
        if ctl is None or watch is None or self.oscp is None:
            return
        now = self.clock()
        gap = min(1.0, self.config.server.meter_interval_s / 4)
        last = self._compliance_checked
        if last is not None and (now - last).total_seconds() < gap:
            return
        self._compliance_checked = now
        # the slots just before and after now: the larger counts while stations follow a step
        grid = TimeGrid(start=now - timedelta(minutes=1), slot_minutes=1, slots=2)
        capacity = ctl.capacity(grid, now)
        for f in watch.check(now, capacity, lambda cid: ctl.limit_now(cid, now)):
            sent = self.oscp.report_compliance_error(
                f.oscp_group_id, f.message, self._blocks_now(f.oscp_group_id, now)
            )
            if not sent:
                continue  # no capacity provider registered yet: tried again next check
            watch.reported(f.group_id)
            log.warning("compliance error sent to the DSO: %s", f.message)
            assert self.store is not None
            self.store.audit(
                now,
                "compliance_error",
                f.group_id,
                {
                    "oscp_group_id": f.oscp_group_id,
                    "message": f.message,
                    "connectors": list(f.connectors),
                    "source": "gridshare",
                },
            )
            if self.operator is not None:
                self.operator.publish_dso(f.oscp_group_id)

    def _blocks_now(self, provider_group: str, now: datetime) -> list[Any]:
        """The DSO's CONSUMPTION blocks in force now (the capacity we cannot keep)."""
        if self.capacity_book is None:
            return []
        from forecasts.model import ForecastType

        return [
            p.block
            for p in self.capacity_book.pieces(provider_group, ForecastType.CONSUMPTION)
            if p.block.start <= now < p.block.end
        ]

    # --- HTTP ------------------------------------------------------------------------

    async def _start_http(self) -> None:
        sock = listen_socket(self.host, self._http_port, "HTTP")
        sock.setblocking(False)
        self._http_socket = sock
        oscp = self._oscp_router()
        assert self.operator is not None
        app = create_api(
            self.operator,
            self.config.api,
            metrics=self.metrics,
            allowed_hosts=http_allowed_hosts(self.config, self.host),
            trusted_proxies=self.config.server.trusted_proxies,
        )
        if oscp is not None:
            router, prefix = oscp
            app.include_router(router, prefix=prefix)
        self._http = _Uvicorn(http_server_config(app, self.config))
        self._http_task = asyncio.get_running_loop().create_task(self._http.serve([sock]))
        for _ in range(500):
            if self._http.started or self._http_task.done():
                break
            await asyncio.sleep(0.01)
        if self._http_task.done():
            self._http_task.result()
            raise ServiceError("the HTTP server stopped at start")

    async def stop(self) -> None:
        """Stop accepting, close stations, stop planning, flush and close the store."""
        if self.operator is not None:
            self.operator.close()  # live streams end, so the HTTP server can stop at once
        if self.oscp is not None:
            try:
                await self.oscp.stop()
            except Exception:
                log.exception("stopping the OSCP Flexibility Provider")
            self.oscp = None
        if self._http is not None and self._http_task is not None:
            self._http.should_exit = True
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._http_task, 5)
            self._http = self._http_task = None
        if self._http_socket is not None:
            self._http_socket.close()
            self._http_socket = None
        if self.gateway is not None:
            try:
                await self.gateway.stop()
            except Exception:
                log.exception("stopping the OCPP central system")
            self.gateway = None
        if self.controller is not None:
            await self.controller.stop()
        if self.energy is not None and self.store is not None:
            try:
                self.energy.save()
            except Exception:
                log.exception("saving the energy counter")
        self.energy = self.compliance = None
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
