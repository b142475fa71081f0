"""One simulated OCPP-J station (1.6 or 2.0.1) without I/O: frames in, frames out.

`StationProtocol` keeps the station's OCPP state: the CALLs it queues (one
outstanding at a time, BootNotification first), its timers (heartbeat, meter
sample, physics tick, call timeout) as deadlines on the event loop's clock, and
the flows of plugging in, authorising, starting and stopping transactions.
Inbound CALLs go to `station_handlers.CallHandlers`; payloads come from
`station_messages`; the connectors and profiles are a `connectors.ConnectorBank`.
The socket loop (`station.SimStation`) asks it for the next frame to send, hands
it each frame read and runs its timers at its deadline.

Time: the simulated clock gives UTC time (EV physics, timestamps); intervals
configured in simulated seconds (meter samples) run ``speed`` times faster in
wall time. Protocol timers (heartbeat, call timeout) run in wall time.

Connectors are named ``STATION/N`` (N is the 1.6 connector id or the 2.0.1
EVSE id; each EVSE has one connector). Phases in meter values are the
connector's lines as configured (a site's lines when built from a site).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import math
import uuid
from collections import deque
from collections.abc import Callable
from datetime import datetime
from typing import Any

from gridshare.peers import v2x
from gridshare.peers.connectors import PHYSICS_TICK_S, Connector, ConnectorBank
from gridshare.peers.dynamic_pulls import pull_deadline, send_due_pulls
from gridshare.peers.ev import Ev, EvSpec
from gridshare.peers.specs import SimStationSpec
from gridshare.peers.station_handlers import CallHandlers
from gridshare.peers.station_messages import (
    CONNECTOR_STATUS_201,
    MESSAGES,
    charging_needs,
    sampled_values,
    transaction_event,
)
from gridshare.peers.station_settings import StationSettings
from gridshare.peers.wire import (
    NO_ANSWER,
    CallError,
    FleetStats,
    Outgoing,
    Payload,
    ResultHook,
    iso,
)

log = logging.getLogger(__name__)

OUTBOX_LIMIT = 2000
CLOSE = object()
"""`next_frame`'s answer when the station closes its connection (after a Reset)."""


def _loop_time() -> float:
    return asyncio.get_running_loop().time()


class CallChannel:
    """The station's CALLs: a bounded queue, one outstanding at a time, its timeout."""

    def __init__(
        self,
        station_id: str,
        stats: FleetStats,
        call_timeout_s: float,
        monotonic: Callable[[], float],
    ) -> None:
        self.station_id = station_id
        self.stats = stats
        self.call_timeout_s = call_timeout_s
        self.monotonic = monotonic
        self.outbox: deque[Outgoing] = deque(maxlen=OUTBOX_LIMIT)
        self.pending: tuple[str, Outgoing, float] | None = None
        self._ids = itertools.count(1)
        self.wake: Callable[[], None] = lambda: None
        """Called when a CALL is queued: the socket loop should send it now."""

    def send_later(
        self,
        action: str,
        payload: Payload | Callable[[], Payload | None],
        on_result: ResultHook | None = None,
    ) -> None:
        self.outbox.append(Outgoing(action, payload, on_result))
        self.wake()

    def deadline(self) -> float:
        return math.inf if self.pending is None else self.pending[2] + self.call_timeout_s

    def start(self, item: Outgoing, now: float) -> list[Any] | None:
        """The CALL frame of item, now outstanding; None if its payload is dropped."""
        payload = item.payload() if callable(item.payload) else item.payload
        if payload is None:
            return None
        msg_id = str(next(self._ids))
        self.pending = (msg_id, item, now)
        self.stats.calls_sent += 1
        self.stats.by_action[item.action] += 1
        return [2, msg_id, item.action, payload]

    def expire(self, now: float) -> None:
        """Give up on the outstanding CALL if its time is up."""
        if self.pending is not None and now >= self.pending[2] + self.call_timeout_s:
            self.stats.call_timeouts += 1
            log.info("%s: %s timed out", self.station_id, self.pending[1].action)
            if self.pending[1].on_error is not None:
                self.pending[1].on_error(now)
            self.pending = None

    def take_result(self, kind: int, msg_id: Any, frame: list[Any]) -> None:
        """A CALLRESULT (3) or CALLERROR (4) for msg_id."""
        pending = self.pending
        if pending is None or pending[0] != msg_id:
            log.info("%s: result for unknown id %r", self.station_id, msg_id)
            return
        self.pending = None
        self.stats.record_latency(self.monotonic() - pending[2])
        if kind == 3:
            self.stats.call_results += 1
            result = frame[2] if len(frame) > 2 else None
            if pending[1].on_result is not None and isinstance(result, dict):
                try:
                    pending[1].on_result(result)
                except (KeyError, TypeError, ValueError) as e:
                    log.warning("%s: bad %s result: %s", self.station_id, pending[1].action, e)
        else:
            self.stats.call_errors += 1
            log.info("%s: %s → CALLERROR %s", self.station_id, pending[1].action, frame[2:4])
            if pending[1].on_error is not None:
                pending[1].on_error(self.monotonic())


class StationProtocol:
    """The OCPP side of one simulated station."""

    def __init__(
        self,
        spec: SimStationSpec,
        *,
        clock: Callable[[], datetime],
        speed: float,
        call_timeout_s: float,
        stats: FleetStats,
        monotonic: Callable[[], float] = _loop_time,
    ) -> None:
        self.spec = spec
        self.v16 = spec.version == "1.6"
        self.clock = clock
        self.speed = speed
        self.stats = stats
        self.monotonic = monotonic
        self.msgs = MESSAGES[spec.version]
        self.bank = ConnectorBank(spec, clock)
        self.connectors = self.bank.connectors
        self.settings = StationSettings(
            spec,
            len(self.connectors),
            on_interval=lambda: self.arm_sampling(reset=True),
            on_heartbeat=self._heartbeat_changed,
        )
        self.handlers = CallHandlers(self)
        self.booted = False
        self.calls = CallChannel(spec.id, stats, call_timeout_s, monotonic)
        self.on_booted: Callable[[], None] = lambda: None
        self._next_boot = 0.0
        self._next_heartbeat = self._next_sample = self._next_tick = math.inf
        self._last_sent = 0.0
        self.close_after_flush = False

    def _wall(self, sim_s: float) -> float:
        return sim_s / self.speed

    def send_later(
        self,
        action: str,
        payload: Payload | Callable[[], Payload | None],
        on_result: ResultHook | None = None,
    ) -> None:
        self.calls.send_later(action, payload, on_result)

    def connector(self, n: int) -> Connector:
        return self.bank.connector(n)

    def advance(self, now: datetime | None = None) -> None:
        self.bank.advance(now)

    def status(self, c: Connector) -> str:
        return self.bank.status(c)

    def install(self, connector: int, raw: Payload) -> str | None:
        """Install a profile; return None when accepted, else why not."""
        why = self.bank.install(connector, raw)
        if why is None:
            self.refresh()
        return why

    # --- status and meter values --------------------------------------------------

    def refresh(self) -> None:
        """Advance physics and report status changes."""
        self.advance()
        for c in self.connectors.values():
            st = self.status(c)
            if st != c.reported:
                old, c.reported = c.reported, st
                if self.booted or c.in_tx:
                    self.notify_status(c, st, old)

    def notify_status(self, c: Connector, st: str, old: str | None = None) -> None:
        now = iso(self.clock())
        if self.v16:
            payload = {"connectorId": c.spec.id, "errorCode": "NoError", "status": st}
            payload["timestamp"] = now
            self.send_later("StatusNotification", payload)
            return
        connector_status = CONNECTOR_STATUS_201.get(st, "Occupied")
        # 2.0.1 StatusNotification carries only the connector's own status
        if old is None or CONNECTOR_STATUS_201.get(old, "Occupied") != connector_status:
            self.send_later(
                "StatusNotification",
                {
                    "timestamp": now,
                    "connectorStatus": connector_status,
                    "evseId": c.spec.id,
                    "connectorId": 1,
                },
            )
        if c.in_tx and st in ("Charging", "SuspendedEV", "SuspendedEVSE"):
            self._tx_event(c, "Updated", "ChargingStateChanged", charging_state=st)

    def _meter_value(self, c: Connector, context: str) -> list[Payload]:
        sampled = sampled_values(self.msgs, c, self.settings.measurands, context)
        return [{"timestamp": iso(self.clock()), "sampledValue": sampled}]

    def send_samples(self, context: str = "Sample.Periodic", only: int | None = None) -> None:
        self.refresh()
        for c in self.connectors.values():
            if only is not None and c.spec.id != only:
                continue
            if context == "Sample.Periodic" and not c.in_tx:
                continue
            mv = self._meter_value(c, context)
            if not self.v16 and c.in_tx and context == "Sample.Periodic":
                self._tx_event(c, "Updated", "MeterValuePeriodic", meter_value=mv)
                if self.spec.version == "2.1" and v2x.discharging(c.ev):
                    self.send_later("NotifyEVChargingNeeds", v2x.needs(c))  # as they change
            elif self.v16:
                payload: dict[str, Any] = {"connectorId": c.spec.id, "meterValue": mv}
                if c.in_tx:
                    self.send_later("MeterValues", _with_tx16(c, payload))
                else:
                    self.send_later("MeterValues", payload)
            else:
                self.send_later("MeterValues", {"evseId": c.spec.id, "meterValue": mv})

    # --- transactions -------------------------------------------------------------

    def plug_in(
        self,
        n: int,
        ev: EvSpec,
        departure: datetime | None = None,
        energy_wh: float | None = None,
        id_tag: str = "SIMTAG",
    ) -> None:
        c = self.connector(n)
        if c.ev is not None:
            raise ValueError(f"{self.spec.id}/{n} already has an EV")
        self.advance()
        c.ev = Ev.plugged(ev)
        c.id_tag = id_tag
        c.finishing = False
        c.departure = departure
        c.energy_need_wh = energy_wh
        if not self.v16:
            c.tx_id = uuid.uuid4().hex
        self.refresh()
        if not c.available:
            return
        if c.remote_tag is not None or not self.booted:
            # remote start already authorised, or offline: authorise locally
            self.start_tx(c, c.remote_tag or id_tag, remote=c.remote_tag is not None)
            return
        self.send_later("Authorize", self.msgs.authorize(id_tag), self._authorized(c))

    def _authorized(self, c: Connector) -> ResultHook:
        def done(result: Payload) -> None:
            info = result.get("idTagInfo") or result.get("idTokenInfo") or {}
            if info.get("status") == "Accepted" and c.ev is not None and not c.in_tx:
                self.start_tx(c, c.id_tag)

        return done

    def start_tx(self, c: Connector, id_tag: str, remote: bool = False) -> None:
        now = self.clock()
        self.advance(now)
        c.in_tx, c.tx_start, c.id_tag, c.remote_tag = True, now, id_tag, None
        c.meter_start_wh = c.energy_wh
        c.seq_no = 0
        if self.v16:
            c.tx_id = None
            c.tx_cell = [None]
            payload = {
                "connectorId": c.spec.id,
                "idTag": id_tag,
                "meterStart": int(c.energy_wh),
                "timestamp": iso(now),
            }
            self.send_later("StartTransaction", payload, self._started16(c))
        else:
            c.tx_id = c.tx_id or uuid.uuid4().hex
            self._tx_event(
                c,
                "Started",
                "RemoteStart" if remote else "Authorized",
                charging_state="EVConnected",
                meter_value=self._meter_value(c, "Transaction.Begin"),
                id_tag=id_tag,
            )
            if c.departure is not None or c.energy_need_wh is not None or v2x.bidirectional(c.ev):
                self.send_later("NotifyEVChargingNeeds", charging_needs(c, self.spec.version))
        self.refresh()
        self.arm_sampling()

    def _started16(self, c: Connector) -> ResultHook:
        cell = c.tx_cell

        def done(result: Payload) -> None:
            cell[0] = str(result["transactionId"])
            if c.tx_cell is not cell or not c.in_tx:
                return
            c.tx_id = cell[0]
            if result.get("idTagInfo", {}).get("status") not in (None, "Accepted"):
                self.stop_tx(c, "DeAuthorized")

        return done

    def _tx_event(self, c: Connector, event: str, trigger: str, **fields: Any) -> None:
        payload = transaction_event(
            c, self.clock(), event, trigger, offline=not self.booted, **fields
        )
        self.send_later("TransactionEvent", payload)

    def stop_tx(
        self,
        c: Connector,
        reason: str,
        trigger: str = "EVCommunicationLost",
        unplugged: bool = False,
    ) -> None:
        if not c.in_tx:
            return
        self.advance()
        end_mv = self._meter_value(c, "Transaction.End")
        if self.v16:
            base = {
                "meterStop": int(c.energy_wh),
                "timestamp": iso(self.clock()),
                "idTag": c.id_tag,
                "reason": reason,
                "transactionData": end_mv,
            }
            self.send_later("StopTransaction", _with_tx16(c, base))
        else:
            state = "EVConnected" if c.ev is not None and reason != "EVDisconnected" else "Idle"
            self._tx_event(
                c, "Ended", trigger, charging_state=state, meter_value=end_mv, stopped_reason=reason
            )
        c.in_tx = False
        c.tx_id = None
        c.tx_start = None
        if unplugged:
            c.ev = None
        c.finishing = c.ev is not None
        self.bank.store.end_transaction(c.spec.id)
        self.refresh()

    def unplug(self, n: int) -> None:
        c = self.connector(n)
        if c.ev is None:
            raise ValueError(f"{self.spec.id}/{n} has no EV")
        self.advance()
        self.stop_tx(c, "EVDisconnected", trigger="EVCommunicationLost", unplugged=True)
        c.ev = None
        c.finishing = False
        c.remote_tag = None
        self.refresh()

    # --- boot and timers ----------------------------------------------------------

    def reboot(self) -> None:
        """Send a BootNotification again (TriggerMessage)."""
        self.booted = False
        self._next_boot = 0.0

    def _heartbeat_changed(self) -> None:
        self._next_heartbeat = self.monotonic() + self.settings.heartbeat_s

    def _retry_boot(self, now: float) -> None:
        self._next_boot = now + 10.0

    def _on_boot(self, result: Payload) -> None:
        interval = float(result.get("interval") or 0)
        now = self.monotonic()
        if result.get("status") == "Accepted":
            self.booted = True
            self.stats.boots_accepted += 1
            self.settings.heartbeat_s = interval or self.settings.heartbeat_s
            self._next_heartbeat = now + self.settings.heartbeat_s
            self.advance()
            for c in self.connectors.values():
                c.reported = self.status(c)
                self.notify_status(c, c.reported)
            self.arm_sampling()
            self.on_booted()
        else:
            self._next_boot = now + (interval or 10.0)

    def arm_sampling(self, reset: bool = False) -> None:
        now = self.monotonic()
        busy = self.bank.in_tx()
        interval = self.settings.meter_interval_s
        if busy and interval > 0 and (reset or self._next_sample == math.inf):
            self._next_sample = now + self._wall(interval)
        elif not busy or interval <= 0:
            self._next_sample = math.inf
        charging = self.bank.charging()
        if charging and (reset or self._next_tick == math.inf):
            self._next_tick = now + self._wall(PHYSICS_TICK_S)
        elif not charging:
            self._next_tick = math.inf

    def next_deadline(self) -> float:
        """When `run_timers` is next due, on the monotonic clock (inf: never)."""
        times = [self._next_heartbeat, self._next_sample, self._next_tick, self.calls.deadline()]
        times.append(pull_deadline(self) if self.booted else math.inf)
        if not self.booted and self.calls.pending is None:
            times.append(self._next_boot)
        return min(times)

    def run_timers(self) -> None:
        now = self.monotonic()
        self.calls.expire(now)
        if now >= self._next_sample:
            self._next_sample = now + self._wall(self.settings.meter_interval_s)
            self.send_samples()
            self.arm_sampling()
        if now >= self._next_tick:
            self._next_tick = now + self._wall(PHYSICS_TICK_S)
            self.refresh()
            self.arm_sampling()
        if self.booted:
            send_due_pulls(self)
        if self.booted and now >= self._next_heartbeat:
            self._next_heartbeat = now + self.settings.heartbeat_s
            if now - self._last_sent >= self.settings.heartbeat_s * 0.5 or not self.calls.outbox:
                self.send_later("Heartbeat", {})

    # --- frames -------------------------------------------------------------------

    def connected(self) -> None:
        """A new connection: boot before anything else."""
        self.bank.online()
        self.booted = False
        self.calls.pending = None
        self._next_boot = 0.0
        self._next_heartbeat = math.inf

    def disconnected(self) -> None:
        self.bank.offline()
        self.booted = False
        self.calls.pending = None

    def frame_sent(self) -> None:
        self._last_sent = self.monotonic()

    def next_frame(self) -> list[Any] | object | None:
        """The next CALL to send if none is outstanding (boot first), `CLOSE`, or None."""
        while self.calls.pending is None:
            now = self.monotonic()
            if not self.booted:
                if now < self._next_boot:
                    return None
                item = Outgoing(
                    "BootNotification", self.msgs.boot(self.spec), self._on_boot, self._retry_boot
                )
                self._next_boot = math.inf
            elif self.calls.outbox:
                item = self.calls.outbox.popleft()
            else:
                if self.close_after_flush:
                    self.close_after_flush = False
                    return CLOSE
                return None
            frame = self.calls.start(item, now)
            if frame is not None:
                return frame
        return None

    def receive(self, raw: str | bytes) -> list[Any] | None:
        """Take one frame read; return the answer to send, if any."""
        try:
            frame = json.loads(raw)
            kind, msg_id = frame[0], frame[1]
        except (ValueError, TypeError, IndexError, KeyError):
            log.warning("%s: unreadable frame %.80r", self.spec.id, raw)
            return None
        if kind == 2:
            return self._answer(frame)
        if kind in (3, 4):
            self.calls.take_result(kind, msg_id, frame)
        return None

    def _answer(self, frame: list[Any]) -> list[Any] | None:
        self.stats.calls_received += 1
        msg_id = frame[1]
        try:
            if len(frame) != 4 or not isinstance(frame[2], str) or not isinstance(frame[3], dict):
                code = "FormationViolation" if self.v16 else "FormatViolation"
                raise CallError(code, "a CALL is [2, id, action, {payload}]")
            reply = self.handlers.handle(frame[2], frame[3])
        except CallError as e:
            return [4, msg_id, e.code, e.description, {}]
        except Exception:
            # a bug in a handler must not kill the station: answer as a station would
            log.exception("%s: %s failed", self.spec.id, frame[2])
            return [4, msg_id, "InternalError", "handler failed", {}]
        if reply is NO_ANSWER:
            return None
        return [3, msg_id, reply]


def _with_tx16(c: Connector, payload: Payload) -> Callable[[], Payload | None]:
    """Payload whose transactionId is filled in when sent (StartTransaction may be queued)."""
    cell = c.tx_cell

    def build() -> Payload | None:
        tx = cell[0]
        if tx is not None and tx.lstrip("-").isdigit():
            return {**payload, "transactionId": int(tx)}
        # never acknowledged: MeterValues go without it, StopTransaction cannot
        return None if "meterStop" in payload else payload

    return build
