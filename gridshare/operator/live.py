"""Change hints for the live stream, and the metrics that follow the same events.

`LiveFeed.observe` hears every station event the service accepted, `on_plan`
every plan the controller made, `dso_heard`/`publish_dso` the DSO link; each
publishes a `Change` to the stream's subscribers. `close` (the service
stopping) ends every stream.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import datetime

from gridshare.api.metrics import MetricsRecorder
from gridshare.api.schemas import Change, ChangeKind
from gridshare.operator.views import DsoView, OperatorStore, SiteState
from gridshare.rollout import RolloutReport
from ocpp_adapter.events import (
    ConnectorStatusChanged,
    DomainEvent,
    MeterReading,
    SessionEnded,
    SessionStarted,
    StationCapabilities,
    StationConnected,
    StationDisconnected,
)
from optimizer.plan import Plan
from optimizer.site import station_of


class Changes:
    """Fan-out of change hints to the live stream's subscribers (bounded queues)."""

    def __init__(self) -> None:
        self._subscribers: set[asyncio.Queue[Change | None]] = set()
        self._closed = False

    def publish(self, change: Change) -> None:
        for q in self._subscribers:
            # a subscriber that is behind only needs to know that something changed
            if q.qsize() < 64:
                q.put_nowait(change)

    async def subscribe(self) -> AsyncIterator[Change]:
        q: asyncio.Queue[Change | None] = asyncio.Queue()
        if self._closed:
            return
        self._subscribers.add(q)
        try:
            while (item := await q.get()) is not None:
                yield item
        finally:
            self._subscribers.discard(q)

    def close(self) -> None:
        self._closed = True
        for q in self._subscribers:
            q.put_nowait(None)

    def __len__(self) -> int:
        return len(self._subscribers)


@dataclass
class Sightings:
    """What the station events told of each station, beyond the controller's state."""

    last_seen: dict[str, datetime] = field(default_factory=dict)
    capabilities: dict[str, StationCapabilities] = field(default_factory=dict)


class LiveFeed:
    """See the module docstring."""

    def __init__(
        self,
        state: SiteState,
        store: OperatorStore,
        metrics: MetricsRecorder,
        clock: Callable[[], datetime],
    ) -> None:
        self.state = state
        self.store = store
        self.metrics = metrics
        self.clock = clock
        self.sightings = Sightings()
        self._changes = Changes()
        self._oscp_seen: dict[str, tuple[int, int]] = {}

    def publish(self, kind: ChangeKind, subject: str = "") -> None:
        self._changes.publish(Change(kind=kind, at=self.clock(), subject=subject))

    def changes(self) -> AsyncIterator[Change]:
        return self._changes.subscribe()

    @property
    def subscribers(self) -> int:
        return len(self._changes)

    def close(self) -> None:
        """End every live subscription (the service is stopping)."""
        self._changes.close()

    def observe(self, event: DomainEvent) -> None:
        """An event the service accepted (stored and applied)."""
        station = getattr(event, "station_id", None)
        cid = getattr(event, "connector_id", None)
        if station is None and isinstance(cid, str):
            station = station_of(cid)
        if isinstance(station, str):
            self.sightings.last_seen[station] = self.clock()
        match event:
            case StationCapabilities():
                self.sightings.capabilities[event.station_id] = event
            case StationConnected() | StationDisconnected():
                self.publish(ChangeKind.STATION, event.station_id)
                self._count_stations()
            case SessionStarted() | SessionEnded():
                self.publish(ChangeKind.SESSION, self._session_id(event.transaction_id, station))
                self._count_stations()
            case MeterReading():
                self.publish(ChangeKind.MEASUREMENT, event.connector_id)
            case ConnectorStatusChanged():
                self.publish(ChangeKind.STATION, event.connector_id)

    def _session_id(self, transaction_id: str, station: str | None) -> str:
        """The API's id of a station's session (``TX@STATION`` where another station's
        session already has the transaction id)."""
        # without a station (an end that named none) the transaction id is the best guess
        stored = (
            self.store.session(station, transaction_id)
            if station is not None
            else self.store.session_by_id(transaction_id)
        )
        return stored.session_id if stored is not None else transaction_id

    def _count_stations(self) -> None:
        self.metrics.set_stations_connected(len(self.state.connected))
        self.metrics.set_sessions_active(len(self.state.sessions))

    def on_plan(self, plan: Plan, report: RolloutReport) -> None:
        """The controller's plan observer: replan metrics and a PLAN hint."""
        state = self.state
        since = state.plan_requested_at
        seconds = time.perf_counter() - since if since is not None else plan.solve_ms / 1000
        reason = state.plan_reason.split(", ", 1)[0]
        self.metrics.record_replan(seconds=seconds, status=plan.status.value, reason=reason)
        self.metrics.record_profile("sent", report.sent)
        self.metrics.record_profile("accepted", report.accepted)
        for outcome in report.failed.values():
            self.metrics.record_profile(outcome.value)
        self.publish(ChangeKind.PLAN, state.plan_reason)

    def publish_dso(self, subject: str) -> None:
        self.publish(ChangeKind.DSO, subject)

    def dso_heard(self, kind: str) -> None:
        """A message from the DSO arrived (a forecast, a heartbeat)."""
        self.metrics.record_oscp_message("in", kind)
        self.publish(ChangeKind.DSO, kind)

    def refresh_oscp_metrics(self, dso: DsoView) -> None:
        """Outgoing OSCP messages and DSO liveness, read from the provider's counters."""
        for p in dso.provider_status():
            pid = p.id
            sent = (p.delivered, p.heartbeats_sent)
            seen = self._oscp_seen.get(pid, (0, 0))
            for kind, new, old in (("message", sent[0], seen[0]), ("Heartbeat", sent[1], seen[1])):
                for _ in range(max(0, new - old)):
                    self.metrics.record_oscp_message("out", kind)
            self._oscp_seen[pid] = sent
            self.metrics.set_dso_online(pid, p.online)
