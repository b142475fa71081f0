"""The service: one asyncio process serving one site.

`Service` is a `gridshare.deployment.Deployment` of one site: the site's parts
(`gridshare.site_runtime.SiteRuntime`: store, controller, meters, DSO link,
operator backend) behind the node's OCPP port and HTTP port. The site's parts
are reached as the service's own (``service.controller``, ``service.store``…).

    start: store → controller (recover state, scheduler) → OCPP → HTTP → OSCP
    stop:  live streams → OSCP → HTTP → OCPP (stations closed with "going away")
           → controller → energy counter → store

so that no event arrives without a place to be stored, and the store is the
last thing to close.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from forecasts.capacity_book import CapacityBook
from gridshare.api import MetricsRecorder
from gridshare.config import GridshareConfig, database_url
from gridshare.controller import (
    CapacityProvider,
    Controller,
    ControllerSettings,
    static_capacity,
)
from gridshare.deployment import (
    Deployment,
    EventSink,
    Gateway,
    GatewayFactory,
    RuntimeOptions,
    ServiceError,
    SiteSpec,
    central_system_factory,
    ocpp_server_settings,
    redact_url,
)
from gridshare.dso_link import DsoLink
from gridshare.dso_reports import ComplianceWatch, EnergyCounter
from gridshare.in_force import InForceWatch
from gridshare.meters.hub import MeterHub
from gridshare.meters.metrics import MeterMetrics
from gridshare.operator import ServiceBackend
from gridshare.site.compliance import ComplianceSettings
from gridshare.site_runtime import SiteRuntime, controller_settings
from gridshare.store import Store
from gridshare.tariff.live import SiteCosts
from ocpp_adapter.events import DomainEvent
from ocpp_adapter.ports import StationInfo as StationInfo  # the operator's view and fakes use it
from oscp.provider import FlexibilityProvider

__all__ = [
    "EventSink",
    "Gateway",
    "GatewayFactory",
    "Service",
    "ServiceError",
    "StationInfo",
    "central_system_factory",
    "controller_settings",
    "ocpp_server_settings",
    "redact_url",
]


def site_id_of(config: GridshareConfig) -> str:
    """The site's id: ``[site] id``, else the config file's stem, else ``site``."""
    if config.site.site.id:
        return config.site.site.id
    return config.path.stem if config.path is not None else "site"


class Service(Deployment):
    """One site behind the node's ports (see the module)."""

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
        super().__init__(
            [SiteSpec(site_id_of(config), config, self.db_url)],
            config,
            host=host,
            ocpp_port=ocpp_port,
            http_port=http_port,
            gateway_factory=gateway_factory,
            clock=clock,
            options=RuntimeOptions(
                capacity=capacity,
                settings=settings,
                scheduler=scheduler,
                oscp_measurement_interval_s=oscp_measurement_interval_s,
                compliance_grace_s=compliance_grace_s,
                in_force=in_force,
            ),
        )
        self.runtime: SiteRuntime = next(iter(self.runtimes.values()))

    # the site's parts, as the service's callers know them

    @property
    def store(self) -> Store | None:
        return self.runtime.store

    @property
    def controller(self) -> Controller | None:
        return self.runtime.controller

    @property
    def meters(self) -> MeterHub | None:
        return self.runtime.meters

    @property
    def costs(self) -> SiteCosts | None:
        return self.runtime.costs

    @property
    def dso(self) -> DsoLink | None:
        return self.runtime.dso

    @property
    def operator(self) -> ServiceBackend | None:
        return self.runtime.operator

    @property
    def in_force(self) -> InForceWatch | None:
        return self.runtime.in_force

    @property
    def metrics(self) -> MetricsRecorder:
        return self.runtime.metrics

    @property
    def meter_metrics(self) -> MeterMetrics | None:
        return self.runtime.meter_metrics

    @property
    def capacity(self) -> CapacityProvider:
        return self.runtime.capacity

    @property
    def settings(self) -> ControllerSettings:
        return self.runtime.settings

    @property
    def compliance_grace_s(self) -> float:
        return self.runtime.compliance_grace_s

    @property
    def oscp(self) -> FlexibilityProvider | None:
        """The OSCP Flexibility Provider, once the HTTP port serves it."""
        return self.runtime.oscp

    @property
    def capacity_book(self) -> CapacityBook:
        """The DSO's forecasts as the planner reads them (while the service runs)."""
        return self.runtime.capacity_book

    @capacity_book.setter
    def capacity_book(self, book: CapacityBook) -> None:
        self.runtime.capacity_book = book

    @property
    def energy(self) -> EnergyCounter | None:
        return self.runtime.energy

    @property
    def compliance(self) -> ComplianceWatch | None:
        return self.runtime.compliance

    async def on_event(self, event: DomainEvent) -> None:
        await self.runtime.on_event(event)

    def status(self) -> dict[str, Any]:
        return self.runtime.status()
