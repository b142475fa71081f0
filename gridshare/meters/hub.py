"""The meters' asyncio layer: readers, the staleness watch, the safety check.

    Modbus poll / MQTT message / HTTP post ──► checked ──► BuildingLoad
                                                   │ (refused: logged, counted)
    staleness watch (a meter falls silent) ────────┤
                                                   ▼
                                  safety.enforce: over a limit? lower at once,
                                  then re-plan; else re-plan when the headroom moved

A check runs at most once at a time; readings that come in meanwhile give one
more check after it, not one each. Each accepted reading and the group samples
it gives go to the store once the check is on its way (`restore` reads them
back on a restart; the building forecast learns from their roll-ups).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
import time
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import Any

import numpy as np

from gridshare.controller import Controller
from gridshare.meters.building import (
    EV_RESPONSE_S,
    HISTORY,
    BuildingLoad,
    GroupSample,
    NonEvForecast,
    hold_latest,
)
from gridshare.meters.config import MeterConfig
from gridshare.meters.metrics import MeterMetrics
from gridshare.meters.modbus import ModbusMeter, ModbusReadError
from gridshare.meters.readings import Reading, ReadingRefused, checked
from gridshare.meters.safety import Lowering, enforce
from gridshare.meters.views import meters_view
from gridshare.rollout.load import LoadModel
from gridshare.site.readings import site_lines
from gridshare.store import Store, StoreError
from gridshare.store.meter_readings import (
    DEFAULT_INTERVAL,
    StoredReading,
    StoredSample,
    per_line,
)
from ocpp_adapter.events import DomainEvent, MeterReading, SessionEnded
from optimizer.problem import TimeGrid
from optimizer.site import LINES, Site

log = logging.getLogger(__name__)

REPLAN_STEP_A = 1.0
"""A change of a group's non-EV load on a line at least this large re-plans."""
RETRY_MAX_S = 30.0


class MeterHub:
    """The site's meters while the service runs."""

    def __init__(
        self,
        site: Site,
        meters: tuple[MeterConfig, ...],
        clock: Callable[[], datetime],
        forecast: NonEvForecast = hold_latest,
        metrics: MeterMetrics | None = None,
        store: Store | None = None,
        rollup_interval: timedelta = DEFAULT_INTERVAL,
        ev_response_s: float = EV_RESPONSE_S,
    ) -> None:
        self.site = site
        self.store = store
        """Where every accepted reading and the group samples it gives are kept."""
        self.rollup_interval = rollup_interval
        self.config = {m.id: m for m in meters}
        self.clock = clock
        self.building = BuildingLoad(site, meters, forecast, ev_response_s)
        self.metrics = metrics
        self.controller: Controller | None = None
        self.tasks: list[asyncio.Task[Any]] = []
        self.lowerings: list[tuple[float, Lowering, float]] = []
        """(monotonic time of the first reading it answers, what was lowered, when
        every station had answered) of every fast-path lowering (benchmarks, tests)."""
        self._unanswered: float | None = None
        """Monotonic time of the first reading no check has started on yet."""
        self._checking = False
        self._again: str | None = None
        self._main_meters = {
            m.source.station: m.id for m in meters if m.source.type == "ocpp" and m.source.station
        }
        """Station → the meter id of its main meter (connector/EVSE 0)."""
        self._planned: dict[str, dict[str, float]] = {}
        """Group → line → the non-EV load the last re-plan request saw."""

    # --- wiring ----------------------------------------------------------------------------

    def attach(self, controller: Controller) -> None:
        """Before the controller starts: its fallbacks leave the worst case free."""
        self.controller = controller
        self.building.limit_at = controller.limit_now
        # each profile from when it goes out: what a car drew around a change
        controller.book.on_sending.append(
            lambda cid, schedule: self.building.limit_sent(cid, self.clock(), schedule)
        )

        def live_capacity(model: LoadModel, grid: TimeGrid) -> Callable[[], np.ndarray]:
            # what a plan's raisings must fit under: the building as read by then
            return lambda: model.capacity(
                controller.site, controller.capacity(grid, controller.clock()), grid
            )

        controller.live_capacity = live_capacity
        # a plan's raisings were admitted against the building it knew: look again
        controller.on_plan.append(lambda plan, report: self.check("after a rollout"))
        controller.fallback.assume_building(self.building.worst_all())

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        for m in self.config.values():
            if m.source.type == "modbus":
                self.tasks.append(loop.create_task(self._poll_modbus(m), name=f"meter {m.id}"))
            elif m.source.type == "mqtt":
                self.tasks.append(loop.create_task(self._follow_mqtt(m), name=f"meter {m.id}"))
        if self.config:
            self.tasks.append(loop.create_task(self._watch_staleness(), name="meters stale"))

    async def stop(self) -> None:
        for t in self.tasks:
            t.cancel()
        for t in self.tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
        self.tasks.clear()

    # --- readings in ----------------------------------------------------------------------------

    def offer(
        self, meter_id: str, values: Mapping[str, object], at: datetime | None = None
    ) -> None:
        """A reading from any source: checked, counted, then the safety check.
        Raises `ReadingRefused` (after logging it) for what cannot count."""
        meter = self.config[meter_id]
        now = self.clock()
        try:
            reading = checked(meter, at or now, values, now)
        except ReadingRefused as e:
            self._refused(meter_id, e)
            raise
        samples = self.building.accept(reading)
        if self._unanswered is None:
            self._unanswered = time.monotonic()
        self.check(f"meter {meter_id}")
        if samples:
            self._keep(reading, samples)

    def _keep(self, reading: Reading, samples: list[tuple[str, GroupSample]]) -> None:
        """Into the store (after the check is on its way: safety does not wait for it)."""
        if self.store is None:
            return
        try:
            self.store.record_site_meter(
                StoredReading(
                    reading.meter_id, reading.at, reading.received_at, per_line(reading.current_a)
                ),
                [
                    StoredSample(g, s.at, per_line(s.non_ev_a), per_line(s.generation_a))
                    for g, s in samples
                ],
                self.rollup_interval,
            )
        except (StoreError, sqlite3.Error) as e:  # the reading still counts; its history waits
            log.warning("meter %s: reading not stored: %s", reading.meter_id, e)

    def restore(self) -> None:
        """Before `start`: the readings and group samples kept before a restart."""
        if self.store is None:
            return
        readings = [
            Reading(r.meter_id, r.at, dict(zip(LINES, r.amps, strict=True)), r.received_at)
            for mid in self.config
            for r in self.store.site_meter_readings(mid, HISTORY)
        ]
        samples = {
            gid: [
                GroupSample(s.at, dict(zip(LINES, s.amps, strict=True)))
                for s in self.store.group_non_ev_samples(gid, HISTORY)
            ]
            for gid in self.building.metered
        }
        self.building.restore(readings, samples)
        kept = sum(len(v) for v in samples.values())
        if readings or kept:
            log.info("meters: %d readings and %d group samples restored", len(readings), kept)

    def observe(self, event: DomainEvent) -> None:
        """The chargers' own readings (aligned in time with the meters')."""
        if isinstance(event, MeterReading):
            station, _, connector = event.connector_id.rpartition("/")
            if connector == "0":
                self._main_meter(station, event)
                return
            info = self.site.connectors.get(event.connector_id)
            if info is not None:
                by_line = site_lines(event.current_a, info.lines)
                if by_line:
                    # a station's clock may run ahead: never later than our own
                    at = min(event.at, self.clock())
                    self.building.observe_charger(event.connector_id, at, by_line)
        elif isinstance(event, SessionEnded) and event.connector_id is not None:
            self.building.charger_stopped(event.connector_id, min(event.at, self.clock()))

    def _main_meter(self, station: str, event: MeterReading) -> None:
        """A station's main meter (connector/EVSE 0), if it is one of the site's
        meters: its values at location Inlet only. A value without a location
        is at the station's outlets (OCPP's default location is Outlet), which
        leave the building out: refused, so the meter goes stale rather than
        count the chargers alone as the connection."""
        meter_id = self._main_meters.get(station)
        if meter_id is None:
            return
        values: dict[str, object] = {}
        for phase, amps in event.inlet_current_a.items():
            name = phase.upper()[:2]
            if name in ("L1", "L2", "L3"):
                values[name] = amps
        if not values and "total" in event.inlet_current_a:
            values = dict.fromkeys(("L1", "L2", "L3"), event.inlet_current_a["total"])
        if not values:
            if event.current_a:
                self._refused(
                    meter_id,
                    ReadingRefused(
                        "MeterValues on connector 0 without location Inlet: the station's "
                        "outlets (OCPP's default location is Outlet), not its connection"
                    ),
                )
            return
        with contextlib.suppress(ReadingRefused):  # logged and counted by `offer`
            self.offer(meter_id, values, event.at)

    def _refused(self, meter_id: str, error: ReadingRefused) -> None:
        self.building.refuse(meter_id, error)
        if self.metrics is not None:
            self.metrics.refused.labels(meter_id).inc()

    # --- the check --------------------------------------------------------------------------

    def check(self, reason: str) -> None:
        """Run the safety check soon (coalesced)."""
        if self.controller is None:
            return
        if self._checking:
            self._again = reason
            return
        self._checking = True
        task = asyncio.get_running_loop().create_task(self._check(reason))
        self.tasks = [t for t in self.tasks if not t.done()]
        self.tasks.append(task)

    async def _check(self, reason: str) -> None:
        assert self.controller is not None
        try:
            while True:
                now = self.clock()
                since, self._unanswered = self._unanswered, None
                found = await enforce(self.controller, now, reason)
                if found:
                    start = since if since is not None else time.monotonic()
                    self.lowerings.append((start, found, time.monotonic()))
                    if self.metrics is not None:
                        self.metrics.lowerings.inc()
                    self._planned = self._non_ev_now(now)
                elif self._moved(now):
                    self.controller.request_replan("meter values")
                self._update_metrics(now)
                if self._again is None:
                    return
                reason, self._again = self._again, None
        except Exception:
            log.exception("meters: safety check failed")
        finally:
            self._checking = False

    def _non_ev_now(self, now: datetime) -> dict[str, dict[str, float]]:
        return {
            g: {line.value: a for line, a in self.building.non_ev(g, now).items()}
            for g in self.building.metered
        }

    def _moved(self, now: datetime) -> bool:
        current = self._non_ev_now(now)
        moved = any(
            abs(a - self._planned.get(g, {}).get(line, float("inf"))) >= REPLAN_STEP_A
            for g, lines in current.items()
            for line, a in lines.items()
        )
        if moved:
            self._planned = current
        return moved

    def _update_metrics(self, now: datetime) -> None:
        if self.metrics is not None:
            self.metrics.update(self.view(now))

    def view(self, now: datetime) -> dict[str, Any]:
        """The meters and metered groups now (`gridshare.meters.views`)."""
        return meters_view(self.building, self.controller, now)

    # --- readers ------------------------------------------------------------------------------

    async def _poll_modbus(self, meter: MeterConfig) -> None:
        client = ModbusMeter(meter.source)
        failing: str | None = None
        loop = asyncio.get_running_loop()
        try:
            while True:
                started = loop.time()
                try:
                    values = await client.read()
                    failing = None
                    with contextlib.suppress(ReadingRefused):
                        self.offer(meter.id, values)
                except ReadingRefused as e:
                    self._refused(meter.id, e)
                except (ModbusReadError, OSError, TimeoutError) as e:
                    if failing != str(e):
                        log.warning("meter %s: no reading: %s", meter.id, e)
                    failing = str(e)
                await asyncio.sleep(max(0.0, meter.interval_s - (loop.time() - started)))
        finally:
            client.close()

    async def _follow_mqtt(self, meter: MeterConfig) -> None:
        from gridshare.meters.mqtt import MqttError, messages, parse_message

        delay = 0.5
        while True:
            try:
                async for payload in messages(meter.source):
                    delay = 0.5
                    with contextlib.suppress(ReadingRefused):
                        try:
                            at, values = parse_message(meter.source, payload)
                        except ReadingRefused as e:
                            self._refused(meter.id, e)
                            raise
                        self.offer(meter.id, values, at)
            except MqttError as e:
                log.warning("meter %s: MQTT broker: %s; again in %.1f s", meter.id, e, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, RETRY_MAX_S)

    async def _watch_staleness(self) -> None:
        period = min(0.5, min(m.stale_after_s for m in self.config.values()) / 4)
        while True:
            await asyncio.sleep(period)
            now = self.clock()
            newly = []
            for mid, state in self.building.meters.items():
                if not state.fresh(now) and not state.stale_logged:
                    state.stale_logged = True
                    newly.append(mid)
            for mid in newly:
                m = self.config[mid]
                worst = ", ".join(
                    f"{line} {a:g} A" for line, a in zip(LINES, m.max_non_ev_a, strict=True)
                )
                log.warning(
                    "meter %s stale (silent %g s): group %s counted at max_non_ev_a (%s)",
                    mid,
                    m.stale_after_s,
                    m.group,
                    worst,
                )
            if newly:
                self.check(f"meter {', '.join(newly)} stale")
            else:
                self._update_metrics(now)
