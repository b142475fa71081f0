"""The service's tariff, carbon signal and the billing period's peak so far.

The connection's import is sampled on every meter value a charger sends: the
chargers' latest power (their own meter values) plus the non-EV load of the
root group where the site's meters know it (a connection meter's reading less
the chargers, or its load and generation meters; `gridshare.meters`). The
peak so far (`PeakTracker`) is written to the store whenever it rises or a
new period begins, and read back on a restart. `/api/tariff` shows it, and
``gridshare_peak_so_far_kw`` on /metrics. An OPTIMUM forecast of the DSO for
the connection (the root group) is a soft target of the plan (`oscp.optimum`,
`optimizer.costs.optimum_term`)."""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Callable
from datetime import datetime
from typing import Any
from weakref import WeakKeyDictionary

import numpy as np
from fastapi import APIRouter
from prometheus_client import CollectorRegistry, Gauge

from forecasts.capacity_book import CapacityBook
from forecasts.carbon import STEP, CarbonSignal, read_carbon
from forecasts.model import ForecastType
from gridshare.api.routes.common import READ_ERRORS, Reader
from gridshare.store import Store, StoreError
from gridshare.tariff import TariffError
from gridshare.tariff.peak import STATE_KEY, PeakTracker
from gridshare.tariff.tariff import SignalInputs, Tariff, cost_signal
from ocpp_adapter.events import DomainEvent, MeterReading, SessionEnded
from optimizer import TimeGrid
from optimizer.cost_signal import CostSignal
from optimizer.site import Site
from oscp.optimum import optimum_kw

log = logging.getLogger(__name__)


class SiteCosts:
    def __init__(
        self,
        site: Site,
        tariff: Tariff | None,
        carbon: CarbonSignal | None,
        store: Store | None,
        clock: Callable[[], datetime],
        registry: CollectorRegistry | None = None,
    ) -> None:
        self.site, self.tariff, self.carbon = site, tariff, carbon
        self.store, self.clock = store, clock
        state = store.get_state(STATE_KEY) if store is not None and tariff is not None else None
        self.tracker = PeakTracker.of_state(tariff, state) if tariff is not None else None
        self.ev_kw: dict[str, float] = {}
        """Connector → its latest power (kW), from its own meter values."""
        self.non_ev_kw: Callable[[datetime], float] = lambda _now: 0.0
        """The root group's non-EV load now (the meters plug in here)."""
        self.optimum: Callable[[TimeGrid], np.ndarray | None] = lambda _grid: None
        """The DSO's OPTIMUM for the connection per slot (`book_optimum`)."""
        self._saved: tuple[object, float] | None = None
        self.gauge = _gauge(registry) if registry is not None and tariff is not None else None
        if self.gauge is not None and self.tracker is not None:
            self.gauge.set(self.tracker.so_far(clock()))

    def observe(self, event: DomainEvent) -> None:
        """A charger's meter value (or the end of its session) moves the import."""
        if isinstance(event, SessionEnded):
            if event.connector_id is not None:
                self.ev_kw.pop(event.connector_id, None)
            return
        if not isinstance(event, MeterReading) or event.connector_id not in self.site.connectors:
            return
        kw = _power_kw(event, self.site)
        if kw is None:
            return
        self.ev_kw[event.connector_id] = kw
        self.sample(event.at)

    def sample(self, at: datetime) -> None:
        if self.tracker is None:
            return
        total = sum(self.ev_kw.values()) + max(self.non_ev_kw(at), 0.0)
        self.tracker.observe(at, total)
        key = (self.tracker.period_start, self.tracker.peak_kw)
        if self._saved != key:
            self._save()
            self._saved = key
        if self.gauge is not None:
            self.gauge.set(self.tracker.so_far(at))

    def _save(self) -> None:
        if self.store is None or self.tracker is None:
            return
        try:
            self.store.put_state(STATE_KEY, self.tracker.to_state())
        except (StoreError, sqlite3.Error) as e:  # the peak still counts; kept at the next rise
            log.warning("tariff: peak so far not stored: %s", e)

    def signal(self, grid: TimeGrid, now: datetime) -> CostSignal | None:
        """What the planner is told at ``now`` (`ProblemBuilder.costs`)."""
        optimum = self.optimum(grid)
        if optimum is not None and not np.any(np.isfinite(optimum)):
            optimum = None
        inputs = SignalInputs(optimum_kw=optimum)
        if self.tracker is not None:
            inputs = SignalInputs(
                self.tracker.so_far(now), self.tracker.elapsed_kwh(now), optimum_kw=optimum
            )
        return cost_signal(self.tariff, self.carbon, grid, now, inputs)

    def view(self, now: datetime) -> dict[str, Any]:
        out: dict[str, Any] = {"tariff": None, "carbon": None}
        if self.tracker is not None:
            out["tariff"] = self.tracker.view(now)
        if self.carbon is not None:
            row = self.carbon.published(now)
            out["carbon"] = {
                "forecast_published": (
                    None if row is None else (self.carbon.start + row * STEP).isoformat()
                ),
                "signal_ends": self.carbon.end.isoformat(),
            }
        return out

    def router(self) -> APIRouter:
        api = APIRouter(prefix="/api")

        @api.get("/tariff", responses=READ_ERRORS, tags=["read"])
        async def get_tariff(_: Reader) -> dict[str, Any]:
            return self.view(self.clock())

        return api


_GAUGES: WeakKeyDictionary[CollectorRegistry, Gauge] = WeakKeyDictionary()


def _gauge(registry: CollectorRegistry) -> Gauge:
    """The peak gauge of a registry, registered once (a service restarts on one)."""
    if registry not in _GAUGES:
        _GAUGES[registry] = Gauge(
            "gridshare_peak_so_far_kw",
            "The billing period's peak so far (highest interval average import)",
            registry=registry,
        )
    return _GAUGES[registry]


def _power_kw(event: MeterReading, site: Site) -> float | None:
    """A charger's power from its meter value: its power, else its currents."""
    if event.total_power_w is not None:
        return max(event.total_power_w, 0.0) / 1000.0
    if event.power_w:
        return max(sum(event.power_w.values()), 0.0) / 1000.0
    if event.current_a:
        info = site.connectors[event.connector_id]
        per_line = [v for k, v in event.current_a.items() if k != "total"]
        amps = sum(per_line) if per_line else event.current_a["total"]  # unphased: one line
        return max(amps, 0.0) * info.kw_per_amp() / max(len(info.lines), 1)
    return None


def metered_non_ev_kw(building: Any, site: Site) -> Callable[[datetime], float]:
    """The root group's non-EV load now from the site's meters (kW; 0 while a
    meter is stale: its worst case guards the limits, it is no peak)."""
    root = site.root.id
    volts = site.site.voltage_v

    def kw(now: datetime) -> float:
        if building.stale(now):
            return 0.0
        return float(sum(building.non_ev(root, now).values())) * volts / 1000.0

    return kw


def site_costs(
    config: Any,
    store: Store | None,
    clock: Callable[[], datetime],
    registry: CollectorRegistry | None = None,
) -> SiteCosts | None:
    """The service's costs from ``[tariff]`` and ``[carbon]`` (None: neither);
    files are read from the site file's folder."""
    if config.tariff is None and config.carbon is None:
        return None
    folder = config.path.parent if config.path is not None else None
    zone = config.site.site.timezone
    tariff = Tariff.of(config.tariff, zone, folder) if config.tariff is not None else None
    carbon = None
    if config.carbon is not None:
        files = [p if p.is_absolute() or folder is None else folder / p for p in config.carbon.csv]
        try:
            carbon = read_carbon(files)
        except ValueError as e:
            raise TariffError(str(e)) from None
    return SiteCosts(config.site, tariff, carbon, store, clock, registry)


def book_optimum(book: CapacityBook, site: Site) -> Callable[[TimeGrid], np.ndarray | None]:
    """The OPTIMUM forecast the DSO sent for the connection (the root group's
    ``oscp_group_id``), per slot of a grid; None without one."""
    group = site.root.oscp_group_id

    def per_slot(grid: TimeGrid) -> np.ndarray | None:
        if group is None:
            return None
        pieces = book.window(group, ForecastType.OPTIMUM, grid.start, grid.end)
        if not pieces:
            return None
        blocks = [p.block for p in pieces]
        return optimum_kw(blocks, grid.start, grid.step, grid.slots, site.site.voltage_v)

    return per_slot
