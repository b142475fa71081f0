"""Profiles that are really in force: the service's watch on accepted-then-ignored limits.

    meter reading ──► ComplianceTracker.reading (draw vs limit in force)
    after a rollout ──► GetCompositeSchedule per running connector (at most one
                        read-back per station per ``readback_gap_s``) ──► .composite
    a change ──► WARNING log line, metric, audit entry, re-plan (the planner
                 counts a flagged connector at its draw: `reserved`)

The decisions are in `gridshare.site.compliance`; this is the asyncio shell.
A station that answers GetCompositeSchedule with a CALLERROR is not asked again.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any

from gridshare.api.metrics import MetricsRecorder
from gridshare.logs import fields
from gridshare.rollout import RolloutReport
from gridshare.site.compliance import (
    Change,
    ComplianceSettings,
    ComplianceTracker,
    composite_limit_a,
    highest_line_a,
)
from gridshare.site.state import SiteState
from gridshare.site.v2x import charging_part
from gridshare.store import Store
from ocpp_adapter.events import CommandOutcome, DomainEvent, MeterReading, SessionEnded
from ocpp_adapter.ports import CompositeSchedules
from optimizer import Plan

log = logging.getLogger(__name__)

READBACK_DURATION_S = 300
"""How far ahead a read-back asks for (only its first period is compared)."""


class InForceWatch:
    def __init__(
        self,
        state: SiteState,
        store: Store,
        reader: CompositeSchedules | None,
        request_replan: Callable[[str], None],
        metrics: MetricsRecorder,
        clock: Callable[[], datetime],
        monotonic: Callable[[], float],
        settings: ComplianceSettings | None = None,
    ) -> None:
        self.state = state
        self.site = state.site
        self.store = store
        self.reader = reader
        self.request_replan = request_replan
        self.metrics = metrics
        self.clock = clock
        self.monotonic = monotonic
        self.tracker = ComplianceTracker(settings)
        self.unsupported: set[str] = set()
        """Stations that answered GetCompositeSchedule with an error: not asked again."""
        self._asked: dict[str, float] = {}
        self._read_limit: dict[str, float | None] = {}
        """Connector → the limit in force at its last read-back."""
        self._later: dict[str, asyncio.TimerHandle] = {}
        self._tasks: set[asyncio.Task[Any]] = set()

    def reserved(self) -> dict[str, float]:
        """Connector → the current the planner must count it at (flagged ones)."""
        return self.tracker.reserved()

    def flagged(self) -> dict[str, str]:
        """Connector → why it is flagged as not following its limit."""
        return self.tracker.reasons()

    # --- meter values ------------------------------------------------------------------

    def observe(self, event: DomainEvent) -> None:
        """Feed a stored event; never fails it."""
        try:
            self._observe(event)
        except Exception:
            log.exception("profile compliance: %s not checked", type(event).__name__)

    def _observe(self, event: DomainEvent) -> None:
        now = self.clock()
        if isinstance(event, MeterReading) and event.connector_id in self.site.connectors:
            draw = highest_line_a(event.current_a)
            if draw is None:
                return
            cid = event.connector_id
            flag = self.tracker.flags.get(cid)
            before = flag.draw_a if flag is not None else None
            change = self.tracker.reading(
                cid, draw, charging_part(self.state.limit_now(cid, now)), now
            )
            if change is not None:
                self._changed(change, "meter", now)
            elif (
                flag is not None
                and before is not None
                and (flag.draw_a > before + self.tracker.settings.tolerance_a)
            ):
                self.request_replan("flagged connector draws more")
        elif isinstance(event, SessionEnded):
            for cid in [c for c in self._read_limit if c not in self.state.sessions]:
                del self._read_limit[cid]
            for cid in [c for c in self.tracker.flags if c not in self.state.sessions]:
                change = self.tracker.ended(cid)
                if change is not None:
                    self._changed(change, "", now)

    # --- read-back after a rollout -----------------------------------------------------

    def after_plan(self, plan: Plan, report: RolloutReport) -> None:
        """Controller observer: after a rollout that sent profiles, read back the
        composite schedules of the connectors whose limit changed since their last
        read-back (at most one read-back per station per ``readback_gap_s``; one
        within the gap is made when the gap ends)."""
        if self.reader is not None and report.sent:
            self._read_due()

    def _due(self, now: datetime) -> dict[str, list[str]]:
        """Station → its running connectors whose limit in force was not read back."""
        due: dict[str, list[str]] = {}
        for cid in sorted(self.state.sessions):
            info = self.site.connectors.get(cid)
            limit = charging_part(self.state.limit_now(cid, now))
            if info is None or limit is None or self._read_limit.get(cid) == limit:
                continue
            sid = info.station_id
            if sid not in self.unsupported and sid in self.state.connected:
                due.setdefault(sid, []).append(cid)
        return due

    def _read_due(self) -> None:
        loop = asyncio.get_running_loop()
        mono = self.monotonic()
        gap = self.tracker.settings.readback_gap_s
        for sid, cids in self._due(self.clock()).items():
            asked = self._asked.get(sid)
            wait = 0.0 if asked is None else gap - (mono - asked)
            if wait > 0:
                if sid not in self._later:
                    self._later[sid] = loop.call_later(wait, self._retry, sid)
                continue
            self._asked[sid] = mono
            task = loop.create_task(self.read_back(sid, cids))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    def _retry(self, station_id: str) -> None:
        self._later.pop(station_id, None)
        self._read_due()

    async def read_back(self, station_id: str, cids: list[str]) -> None:
        assert self.reader is not None
        for cid in cids:
            info = self.site.connectors[cid]
            try:
                result, payload = await self.reader.get_composite_schedule(
                    station_id, info.connector.id, READBACK_DURATION_S, "A"
                )
            except Exception:
                log.exception("composite schedule read-back %s", fields(station=station_id))
                return
            if result.outcome is CommandOutcome.ERROR:
                # NotImplemented / NotSupported: this station cannot tell us
                self.unsupported.add(station_id)
                log.info(
                    "composite schedule read-back not supported %s",
                    fields(station=station_id, detail=result.detail),
                )
                return
            if result.outcome is not CommandOutcome.ACCEPTED:
                continue
            now = self.clock()
            allowed = composite_limit_a(payload, info.voltage_v)
            sent = charging_part(self.state.limit_now(cid, now))
            self._read_limit[cid] = sent
            change = self.tracker.composite(cid, allowed, sent, now)
            if change is not None:
                self._changed(change, "composite", now)

    async def stop(self) -> None:
        for handle in self._later.values():
            handle.cancel()
        self._later.clear()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    # --- a connector flagged or following again ------------------------------------------

    def _changed(self, change: Change, evidence: str, now: datetime) -> None:
        cid = change.connector_id
        if change.flagged:
            log.warning(
                "profile not followed %s",
                fields(connector=cid, detail=change.detail, reserved="its draw"),
            )
        else:
            log.warning("profile followed again %s", fields(connector=cid, detail=change.detail))
        self.metrics.record_not_following(cid, change.flagged, evidence)
        try:
            kind = "profile_ignored" if change.flagged else "profile_followed"
            self.store.audit(now, kind, cid, {"detail": change.detail, "evidence": evidence})
        except Exception:
            log.exception("profile compliance: audit entry for %s not saved", cid)
        self.request_replan("profile ignored" if change.flagged else "profile followed")
