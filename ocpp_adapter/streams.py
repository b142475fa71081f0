"""OCPP 2.1 periodic event streams as a meter feed. Pure: payloads in, readings out.

A station streams the values of one monitored variable: it opens a stream
(``OpenPeriodicEventStream``: stream id, the monitor's ``variableMonitoringId``),
then sends ``NotifyPeriodicEventStream`` SEND frames of ``{t, v}`` elements,
each value at ``basetime + t`` seconds. Which variable a monitor watches we
learn from the station's ``NotifyMonitoringReport``; a stream of a monitor we do
not know yet makes us ask for the report (``GetMonitoringReport``, only EVSE
currents and powers), and data of a stream we never saw opened (our restart)
for its streams (``GetPeriodicEventStream``): once each per `ASK_AGAIN_S`.

Read, as `MeterReading`s through the same path as MeterValues: an EVSE's
(component ``EVSE`` with its ``evse.id``) ``Current.Import`` and
``Power.Active.Import``, per phase (variable ``instance`` L1, L2, L3) or not.
One phase alone would look like a car loading one line, so the values of an
EVSE's phase streams of one measurand are joined by time (within
`JOIN_TOLERANCE_S`) and a reading goes out once every open phase stream gave
its value; one left incomplete is dropped once a later time is complete.
Other variables' streams are accepted and their values dropped.

A value that is not a number, or an import current below zero, drops the whole
message (`BadStream`): a SEND is never answered, so it is logged and counted
as a bad frame, and nothing of it counts.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from ocpp_adapter.datetimes import parse_datetime
from ocpp_adapter.events import MeterReading
from ocpp_adapter.meter import CURRENT, POWER

JOIN_TOLERANCE_S = 0.5
"""Values of an EVSE's phase streams this close in time are one reading."""
ASK_AGAIN_S = 600.0
"""How long before we ask a station again what its streams or monitors are."""
MAX_PENDING = 32
"""Times kept waiting for a phase's value, per EVSE and measurand."""
MAX_STREAMS = 64
"""Streams a station may have open with us; more are refused (TooManyStreams)."""
MAX_MONITORS = 1024
"""Monitors remembered per station (a report beyond that is not read further)."""

_READ = (CURRENT, POWER)
_PHASES = {"L1": "L1", "L2": "L2", "L3": "L3", "L1-N": "L1", "L2-N": "L2", "L3-N": "L3"}


class BadStream(ValueError):
    """A stream's data no meter can give; the whole message is dropped."""


@dataclass(frozen=True)
class StreamTarget:
    """What a monitor watches, as far as we read it."""

    evse: int
    measurand: str
    phase: str | None
    """L1, L2, L3; None: the EVSE's single figure."""


@dataclass(frozen=True)
class Ask:
    """A CALL to send the station after a message was handled, and where its answer goes."""

    action: str
    payload: dict[str, Any]
    on_answer: Callable[[dict[str, Any] | None], None] | None = None


@dataclass
class StreamBook:
    """One station's streams and monitors, and the phase values waiting for their peers."""

    monitors: dict[int, StreamTarget | None] = field(default_factory=dict)
    """Monitor id → what it watches (None: a variable we do not read)."""
    streams: dict[int, int] = field(default_factory=dict)
    """Stream id → its monitor id."""
    pending: dict[tuple[int, str], dict[datetime, dict[str, float]]] = field(default_factory=dict)
    asked: dict[str, datetime] = field(default_factory=dict)
    """Action → when we last asked it."""
    _request_ids: int = 0

    # --- what the station tells -------------------------------------------------------

    def monitors_reported(self, payload: dict[str, Any]) -> None:
        """``NotifyMonitoringReport``: the monitors of each component and variable."""
        for item in payload.get("monitor") or ():
            target = _target(item.get("component") or {}, item.get("variable") or {})
            for m in item.get("variableMonitoring") or ():
                mid = int(m["id"])
                if mid in self.monitors or len(self.monitors) < MAX_MONITORS:
                    self.monitors[mid] = target

    def opened(self, stream: dict[str, Any], now: datetime) -> tuple[dict[str, Any], Ask | None]:
        """``OpenPeriodicEventStream``'s ``constantStreamData``: our answer (one
        too many is refused), and the question to ask if its monitor is unknown."""
        sid, monitor = int(stream["id"]), int(stream["variableMonitoringId"])
        if sid not in self.streams and len(self.streams) >= MAX_STREAMS:
            return {"status": "Rejected", "statusInfo": {"reasonCode": "TooManyStreams"}}, None
        self.streams[sid] = monitor
        ask = None if monitor in self.monitors else self._ask_monitors(now)
        return {"status": "Accepted"}, ask

    def listed(self, answer: dict[str, Any] | None, now: datetime) -> None:
        """``GetPeriodicEventStream``'s answer (an unknown monitor is asked for
        at the stream's next data)."""
        for stream in (answer or {}).get("constantStreamData") or ():
            sid = int(stream["id"])
            if sid in self.streams or len(self.streams) < MAX_STREAMS:
                self.streams[sid] = int(stream["variableMonitoringId"])

    # --- data -------------------------------------------------------------------------

    def data(
        self,
        station_id: str,
        payload: dict[str, Any],
        now: datetime,
        transaction_of: Callable[[int], str | None],
    ) -> tuple[list[MeterReading], Ask | None]:
        """``NotifyPeriodicEventStream`` → the readings it completes, and a question
        to ask when the stream or its monitor is unknown. Raises `BadStream`."""
        values = _values(payload)
        sid = int(payload["id"])
        monitor = self.streams.get(sid)
        if monitor is None:
            return [], self._ask("GetPeriodicEventStream", {}, now, self.listed)
        if monitor not in self.monitors:
            return [], self._ask_monitors(now)
        target = self.monitors[monitor]
        if target is None:
            return [], None
        if target.measurand == CURRENT and any(v < 0 for _, v in values):
            raise BadStream(f"{CURRENT} below zero")
        readings = []
        for at, value in values:
            for t, phases in self._join(target, at, value):
                tx = transaction_of(target.evse)
                readings.append(_reading(station_id, target, t, phases, tx))
        return readings, None

    def _phases_open(self, evse: int, measurand: str) -> set[str]:
        out = set()
        for monitor in self.streams.values():
            t = self.monitors.get(monitor)
            if t is not None and t.evse == evse and t.measurand == measurand and t.phase:
                out.add(t.phase)
        return out

    def _join(
        self, target: StreamTarget, at: datetime, value: float
    ) -> Iterable[tuple[datetime, dict[str, float]]]:
        """The (time, phase → value) sets this value completes."""
        if target.phase is None:
            return [(at, {"total": value})]
        key = (target.evse, target.measurand)
        waiting = self.pending.setdefault(key, {})
        tol = timedelta(seconds=JOIN_TOLERANCE_S)
        slot = next(
            (t for t in waiting if abs(t - at) <= tol and target.phase not in waiting[t]), at
        )
        waiting.setdefault(slot, {})[target.phase] = value
        wanted = self._phases_open(*key)
        if not wanted <= waiting[slot].keys():
            while len(waiting) > MAX_PENDING:
                del waiting[min(waiting)]
            return []
        done = waiting.pop(slot)
        for t in [t for t in waiting if t < slot]:  # a phase's value never came: dropped
            del waiting[t]
        return [(slot, done)]

    # --- questions --------------------------------------------------------------------

    def _ask_monitors(self, now: datetime) -> Ask | None:
        self._request_ids += 1
        wanted = [
            {"component": {"name": "EVSE"}, "variable": {"name": measurand}} for measurand in _READ
        ]
        payload = {"requestId": self._request_ids, "componentVariable": wanted}
        return self._ask("GetMonitoringReport", payload, now, None)

    def _ask(
        self,
        action: str,
        payload: dict[str, Any],
        now: datetime,
        on_answer: Callable[[dict[str, Any] | None, datetime], None] | None,
    ) -> Ask | None:
        last = self.asked.get(action)
        if last is not None and (now - last).total_seconds() < ASK_AGAIN_S:
            return None
        self.asked[action] = now
        if on_answer is None:
            return Ask(action, payload)
        answer = on_answer
        return Ask(action, payload, lambda reply: answer(reply, now))


def transaction_on(tx_connector: Mapping[str, int], evse: int) -> str | None:
    """The transaction running on ``evse`` (transaction → EVSE), if any."""
    return next((t for t, c in tx_connector.items() if c == evse), None)


def _target(component: dict[str, Any], variable: dict[str, Any]) -> StreamTarget | None:
    evse = (component.get("evse") or {}).get("id")
    measurand = variable.get("name")
    if component.get("name") != "EVSE" or not isinstance(evse, int) or measurand not in _READ:
        return None
    instance = variable.get("instance")
    phase = _PHASES.get(instance) if instance is not None else None
    if instance is not None and phase is None:
        return None  # line-to-line or neutral: not a line current we plan with
    return StreamTarget(evse, measurand, phase)


def _values(payload: dict[str, Any]) -> list[tuple[datetime, float]]:
    base = parse_datetime(payload["basetime"], zone_required=True)
    if base is None:
        raise BadStream(f"basetime {payload['basetime']!r} is not a time")
    out = []
    for element in payload["data"]:
        raw, t = element["v"], element["t"]
        try:
            value = float(raw.strip())
        except ValueError:
            raise BadStream(f"value {raw!r} is not a number") from None
        if not math.isfinite(value) or not math.isfinite(t):
            raise BadStream(f"value {raw!r} at t={t!r} is not a finite number")
        out.append((base + timedelta(seconds=t), value))
    return out


def _reading(
    station_id: str,
    target: StreamTarget,
    at: datetime,
    phases: dict[str, float],
    transaction_id: str | None,
) -> MeterReading:
    connector_id = f"{station_id}/{target.evse}"
    if target.measurand == CURRENT:
        return MeterReading(connector_id, at, transaction_id, current_a=phases)
    total = phases.get("total")
    power = {} if total is not None else phases
    return MeterReading(connector_id, at, transaction_id, power_w=power, total_power_w=total)
