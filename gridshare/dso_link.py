"""The DSO link: the site's side of OSCP, between the Flexibility Provider and the site.

    DSO forecast   → capacity book (stored) → the controller re-plans
    DSO heartbeat  → capacity book (offline-mode time), liveness
    DSO offline    → its fallback forecast applies → re-plan
    meter values   → energy counter (measurements sent to the DSO)
                   → compliance watch (a group over its capacity is reported)

The capacity book lives in the store under ``capacity_book`` and forgets the
blocks that ended longer ago than the operator's views look back
(`CAPACITY_HISTORY`), on every forecast, heartbeat and plan. It is saved whole
when its content changed, at most every `CAPACITY_BOOK_SAVE_GAP` (a change
within the gap is saved when the gap is over) and always on stop: a DSO that
sends forecasts and heartbeats every few seconds does not rewrite it each time.

`DsoListener` is what the link tells of the DSO (the operator API's change feed).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from fastapi import APIRouter

from forecasts.capacity_book import CapacityBook
from forecasts.model import Block, Forecast, ForecastType
from gridshare.api.metrics import MetricsRecorder
from gridshare.config import GridshareConfig
from gridshare.dso_reports import ComplianceWatch, EnergyCounter
from gridshare.logs import fields
from gridshare.rollout import RolloutReport
from gridshare.store import Store
from ocpp_adapter.events import DomainEvent, MeterReading
from optimizer.plan import Plan
from optimizer.problem import Capacity, TimeGrid
from oscp.http import FP_PREFIX, create_router
from oscp.provider import FlexibilityProvider
from oscp.tokens import JsonFileTokenStore, MemoryTokenStore, TokenStore

log = logging.getLogger(__name__)

CAPACITY_HISTORY = timedelta(hours=48)
"""How long the capacity book keeps a block after it ended: a group's timeline
shows the capacity as it stood over up to this much history."""

CAPACITY_BOOK_STATE = "capacity_book"
"""The store's state key of the capacity book's export."""

CAPACITY_BOOK_SAVE_GAP = timedelta(seconds=30)
"""Least time (on the service's clock) between two saves of the capacity book."""


class DsoListener(Protocol):
    """Who hears of the DSO's messages and of what is reported to it."""

    def dso_heard(self, kind: str) -> None:
        """A message from the DSO arrived (``UpdateGroupCapacityForecast``, ``Heartbeat``)."""
        ...

    def publish_dso(self, subject: str) -> None:
        """The DSO's state changed for a provider or an OSCP group."""
        ...


class SitePlanning(Protocol):
    """What the link asks of the controller."""

    def request_replan(self, reason: str) -> None: ...

    def capacity(self, grid: TimeGrid, now: datetime) -> Capacity: ...

    def limit_now(self, cid: str, at: datetime | None = None) -> float | None: ...


def load_capacity_book(store: Store) -> CapacityBook:
    """The DSO's forecasts as the store kept them (an empty book at first)."""
    saved = store.get_state(CAPACITY_BOOK_STATE)
    return CapacityBook.from_export(saved) if saved else CapacityBook()


def provider_online(status: Mapping[str, Any]) -> bool:
    """Whether a capacity provider (one row of `FlexibilityProvider.status`) is live."""
    return status.get("state") in ("REGISTERED", "HANDSHAKEN") and not status.get("offline")


@dataclass(frozen=True)
class ProviderState:
    """One capacity provider as the operator sees it."""

    id: str
    state: str
    """Its registration state (``REGISTERED``, ``HANDSHAKEN``, …)."""
    online: bool
    delivered: int
    """Messages delivered to it so far."""
    heartbeats_sent: int

    @classmethod
    def of(cls, status: Mapping[str, Any]) -> ProviderState:
        return cls(
            id=str(status["id"]),
            state=str(status["state"]),
            online=provider_online(status),
            delivered=int(status.get("delivered", 0)),
            heartbeats_sent=int(status.get("heartbeats_sent", 0)),
        )


class DsoLink:
    """See the module docstring. Built once the controller exists; `router` builds
    the Flexibility Provider once the HTTP port (our base URL) is known."""

    def __init__(
        self,
        config: GridshareConfig,
        store: Store,
        book: CapacityBook,
        planning: SitePlanning,
        *,
        clock: Callable[[], datetime],
        metrics: MetricsRecorder,
        listener: DsoListener,
        measurement_interval_s: float,
        compliance_grace_s: float,
    ) -> None:
        self.config = config
        self.store = store
        self.capacity_book = book
        self.planning = planning
        self.clock = clock
        self.metrics = metrics
        self.listener = listener
        self.measurement_interval_s = measurement_interval_s
        """How often each OSCP group's cumulative energy goes to its capacity provider."""
        self.compliance_grace_s = compliance_grace_s
        self.provider: FlexibilityProvider | None = None
        """The OSCP Flexibility Provider, once `router` built it."""
        self.heartbeats: dict[str, datetime] = {}
        """Capacity provider → when its last heartbeat came."""
        self.energy: EnergyCounter | None = None
        """Cumulative energy per connector, while OSCP groups are configured."""
        self.compliance: ComplianceWatch | None = None
        self._compliance_checked: datetime | None = None
        self.not_following: Callable[[], Mapping[str, str]] = dict
        """Connector → why it ignores its limit: named as such in a compliance error."""
        self.book_save_gap = CAPACITY_BOOK_SAVE_GAP
        """Least time between two saves of the capacity book."""
        self._book_saved_at: datetime | None = None
        self._book_unsaved = False
        self._book_flush: asyncio.TimerHandle | None = None

    # --- the capacity book -------------------------------------------------------------

    def save_capacity_book(self) -> None:
        """Save the book now (what changed since the last save included)."""
        if self._book_flush is not None:
            self._book_flush.cancel()
            self._book_flush = None
        self.store.put_state(CAPACITY_BOOK_STATE, self.capacity_book.export())
        self._book_saved_at = self.clock()
        self._book_unsaved = False

    def capacity_book_changed(self) -> None:
        """Save the book now, or once `book_save_gap` since the last save is over."""
        self._book_unsaved = True
        last = self._book_saved_at
        wait_s = 0.0 if last is None else (last + self.book_save_gap - self.clock()).total_seconds()
        if wait_s <= 0:
            self.save_capacity_book()
        elif self._book_flush is None:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:  # no loop to wait on: saved on the next change or on stop
                return
            self._book_flush = loop.call_later(wait_s, self._flush_capacity_book)

    def _flush_capacity_book(self) -> None:
        self._book_flush = None
        if self._book_unsaved:
            try:
                self.save_capacity_book()
            except Exception:
                log.exception("saving the capacity book")

    def flush_capacity_book(self) -> None:
        """Save what changed and is not saved yet (the service stopping)."""
        if self._book_unsaved:
            self.save_capacity_book()
        elif self._book_flush is not None:
            self._book_flush.cancel()
            self._book_flush = None

    def prune_capacity_book(self) -> bool:
        """Forget the blocks that ended longer ago than the operator's views look back
        (and the oldest that ended, past `forecasts.capacity_book.MAX_ENDED`)."""
        now = self.clock()
        return self.capacity_book.prune(now - CAPACITY_HISTORY, now=now) > 0

    def after_plan(self, plan: Plan, report: RolloutReport) -> None:
        if self.prune_capacity_book() or self._book_unsaved:
            self.capacity_book_changed()

    # --- what the operator reads ---------------------------------------------------------

    @property
    def configured(self) -> bool:
        """Whether a capacity provider (DSO) is configured."""
        return bool(self.config.oscp.capacity_providers)

    def provider_status(self) -> list[ProviderState]:
        """Per capacity provider: state, counters (none before the provider exists)."""
        if self.provider is None:
            return []
        return [ProviderState.of(p) for p in self.provider.status()]

    def last_heartbeat(self) -> datetime | None:
        return max(self.heartbeats.values()) if self.heartbeats else None

    def request_adjustment(self, oscp_group_id: str, blocks: list[Block]) -> int | None:
        """Ask the group's providers for a capacity; how many it went to (None: no provider)."""
        if self.provider is None or not self.configured:
            return None
        return int(self.provider.request_adjustment(oscp_group_id, blocks))

    # --- the Flexibility Provider ------------------------------------------------------

    def router(self, our_base_url: str) -> tuple[APIRouter, str]:
        """Build the Flexibility Provider; its router and the prefix it is served under."""
        cfg = self.config
        tokens: TokenStore = (
            JsonFileTokenStore(cfg.path.with_suffix(".oscp-tokens.json"))
            if cfg.path is not None
            else MemoryTokenStore()
        )
        groups = [g.oscp_group_id for g in cfg.site.groups if g.oscp_group_id]
        self.provider = FlexibilityProvider(
            cfg.oscp,
            our_base_url=f"{our_base_url}{FP_PREFIX}",
            groups=groups,
            token_store=tokens,
            on_forecast=self.on_forecast,
            on_heartbeat=self.on_heartbeat,
            on_offline=self.on_offline,
            measurements=self.group_energy if self.energy is not None else None,
            measurement_interval_s=self.measurement_interval_s,
            clock=self.clock,
        )
        return create_router(self.provider), FP_PREFIX

    async def start(self) -> None:
        if self.provider is not None:
            await self.provider.start()

    async def stop(self) -> None:
        """Stop the provider (never fails) and save what the book holds unsaved."""
        try:
            self.flush_capacity_book()
        except Exception:
            log.exception("saving the capacity book")
        if self.provider is not None:
            try:
                await self.provider.stop()
            except Exception:
                log.exception("stopping the OSCP Flexibility Provider")
            self.provider = None

    def save_energy(self) -> None:
        if self.energy is not None:
            try:
                self.energy.save()
            except Exception:
                log.exception("saving the energy counter")
        self.energy = self.compliance = None

    async def on_forecast(self, provider_group: str, forecast: Forecast) -> None:
        """The forecast stored before the DSO gets its 204 (the book at once, or
        within `CAPACITY_BOOK_SAVE_GAP` of the last save)."""
        self.prune_capacity_book()
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
        self.capacity_book_changed()
        blocks = forecast.blocks
        log.info(
            "dso forecast received %s",
            fields(
                provider=forecast.source,
                group=forecast.group_id,
                type=forecast.type,
                blocks=len(blocks),
                first=blocks[0].start if blocks else None,
                last=blocks[-1].end if blocks else None,
            ),
        )
        self.listener.dso_heard("UpdateGroupCapacityForecast")
        self.planning.request_replan("dso forecast")

    async def on_heartbeat(self, provider: str, offline_mode_at: datetime) -> None:
        line = fields(provider=provider, offline_mode_at=offline_mode_at)
        link = self.provider.links.get(provider) if self.provider is not None else None
        if link is not None and link.offline_reported:
            log.info("dso heartbeat back %s", line)
        elif provider not in self.heartbeats:
            log.info("dso heartbeat first %s", line)
        pruned = self.prune_capacity_book()
        known = self.capacity_book.offline_mode_at(provider)
        self.capacity_book.heartbeat(provider, offline_mode_at)
        if pruned or self.capacity_book.offline_mode_at(provider) != known:
            self.capacity_book_changed()
        self.heartbeats[provider] = self.clock()
        self.listener.dso_heard("Heartbeat")

    async def on_offline(self, provider: str) -> None:
        # no heartbeat by the time it set: offline mode, its fallback forecast applies
        line = fields(provider=provider, mode="offline", capacity="fallback forecast")
        log.warning("dso heartbeat lost %s", line)
        self.metrics.set_dso_online(provider, False)
        self.listener.publish_dso(provider)
        self.planning.request_replan("dso offline")

    # --- reports to the DSO ------------------------------------------------------------

    def start_reports(self) -> None:
        """Energy counter and compliance watch, when a DSO and an OSCP group are configured
        (before the stations connect, so no reading is missed)."""
        site = self.config.site
        if not self.configured or not any(g.oscp_group_id for g in site.groups):
            return
        self.energy = EnergyCounter(site, self.store)
        self.energy.recover()
        meter_s = float(self.config.server.meter_interval_s)
        self.compliance = ComplianceWatch(
            site,
            grace_s=self.compliance_grace_s,
            stale_s=max(3 * meter_s, self.compliance_grace_s + meter_s),
        )

    def observe(self, event: DomainEvent) -> None:
        """Feed the counter and the watch; never fails the event (it is stored already)."""
        if self.energy is None or self.compliance is None:
            return
        try:
            self.energy.observe(event)
            self.compliance.observe(event, self.clock())
            if isinstance(event, MeterReading):
                self.check_compliance()
        except Exception:
            log.exception("OSCP reports: %s not counted", type(event).__name__)

    async def group_energy(self, provider_group: str) -> float | None:
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

    def check_compliance(self) -> None:
        """Compare the OSCP groups' measured load with the capacity in force (at most
        a few times per meter interval, however many stations report)."""
        watch, provider, planning = self.compliance, self.provider, self.planning
        if watch is None or provider is None:
            return
        now = self.clock()
        gap = min(1.0, self.config.server.meter_interval_s / 4)
        last = self._compliance_checked
        if last is not None and (now - last).total_seconds() < gap:
            return
        self._compliance_checked = now
        # the slots just before and after now: the larger counts while stations follow a step
        grid = TimeGrid(start=now - timedelta(minutes=1), slot_minutes=1, slots=2)
        capacity = planning.capacity(grid, now)
        for f in watch.check(now, capacity, lambda cid: planning.limit_now(cid, now)):
            message = ignoring_named(f.message, f.connectors, self.not_following())
            sent = provider.report_compliance_error(
                f.oscp_group_id, message, self.blocks_now(f.oscp_group_id, now)
            )
            if not sent:
                continue  # no capacity provider registered yet: tried again next check
            watch.reported(f.group_id)
            log.warning("compliance error sent to the DSO: %s", message)
            self.store.audit(
                now,
                "compliance_error",
                f.group_id,
                {
                    "oscp_group_id": f.oscp_group_id,
                    "message": message,
                    "connectors": list(f.connectors),
                    "source": "gridshare",
                },
            )
            self.listener.publish_dso(f.oscp_group_id)

    def blocks_now(self, provider_group: str, now: datetime) -> list[Block]:
        """The DSO's CONSUMPTION blocks in force now (the capacity we cannot keep)."""
        return [
            p.block
            for p in self.capacity_book.pieces(provider_group, ForecastType.CONSUMPTION)
            if p.block.start <= now < p.block.end
        ]


def ignoring_named(message: str, offenders: Sequence[str], flagged: Mapping[str, str]) -> str:
    """The compliance error's message, naming the offenders whose station ignores
    its profile (accepted, then not followed)."""
    named = [cid for cid in offenders if cid in flagged]
    if not named:
        return message
    return f"{message}; ignoring their profile: {', '.join(named)}"
