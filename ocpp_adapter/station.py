"""One station's OCPP protocol state, without I/O.

`StationSession.receive` takes a text frame and returns what to do about it:

- `Handled`: an inbound CALL was understood. Store ``events`` first, then send
  ``reply`` and call ``commit()`` (state that must only change once the events
  are stored, e.g. TransactionEvent seqNo de-duplication).
- `Refused`: a bad frame; send ``reply`` (a CALLERROR) if there is one and
  count it against the station's bad-frame budget.
- `Answer`: the station's CALLRESULT/CALLERROR to our outstanding CALL.
- `Streamed`: a 2.1 SEND's events (a periodic event stream's readings): store
  them; nothing is answered.
- ``None``: nothing to do (a result for an id we are not waiting for; logged).

`StationSession.call` turns an outbound request into a frame and remembers it
as the single outstanding CALL. The session outlives a connection: a station
that reconnects keeps its transactions, capabilities and boot state.

Connector ids are ``STATION/CONNECTOR``; 2.0.1's EVSE id plays the connector.
"""

from __future__ import annotations

import itertools
import json
import logging
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from ocpp_adapter import v2x as bidirectional
from ocpp_adapter.capabilities import capability_request, read_capabilities, sampling_requests
from ocpp_adapter.dynamic import DynamicProfile, pull_reply
from ocpp_adapter.events import (
    ConnectorStatusChanged,
    DomainEvent,
    EvChargingNeeds,
    ExternalLimitNotified,
    PriorityChargingNotified,
    SessionEnded,
    SessionStarted,
    StationBooted,
    StationCapabilities,
)
from ocpp_adapter.meter import (
    BadReading,
    MeterParser,
    energy_register_wh,
    parse_timestamp,
)
from ocpp_adapter.rpc import (
    Call,
    CallErrorFrame,
    CallResult,
    Fault,
    Message,
    OcppVersion,
    RpcError,
    Send,
    encode_call,
    encode_result,
    parse_frame,
    validate_request,
    validate_response,
    validate_send,
)
from ocpp_adapter.settings import DEFAULT_HEARTBEAT_INTERVAL_S, DEFAULT_METER_INTERVAL_S
from ocpp_adapter.streams import Ask, BadStream, StreamBook, transaction_on

log = logging.getLogger(__name__)

V16, V201, V21 = OcppVersion.V16, OcppVersion.V201, OcppVersion.V21


@dataclass(frozen=True)
class SessionSettings:
    heartbeat_interval_s: int = DEFAULT_HEARTBEAT_INTERVAL_S
    meter_interval_s: int | None = DEFAULT_METER_INTERVAL_S
    """Sample interval we configure after boot; None leaves the station's own."""
    measurands: tuple[str, ...] = (
        "Energy.Active.Import.Register",
        "Current.Import",
        "Power.Active.Import",
        "Current.Offered",
        "SoC",
    )
    authorize_id_tags: frozenset[str] | None = None
    """None accepts every idTag."""
    validate_replies: bool = False
    """Check our own CALLRESULT payloads against the schemas (tests turn it on)."""
    backdate_s: float = 5.0
    """As `AdapterSettings.backdate_s`: for the schedule a dynamic pull is answered from."""


class TransactionIds:
    """1.6 transaction ids (and 2.0.1 remoteStartIds), unique across stations.

    The session only takes them, it never asks anyone for one: the central
    system, which has the store's sequence (committed before it answers),
    reserves one before it hands a 1.6 StartTransaction to the session, so
    they are unique for the life of the database, restarts included. Without a
    reserved one (tools and tests without a store) they count up from
    ``first`` in memory.
    """

    def __init__(self, first: int = 1) -> None:
        self._next = itertools.count(first)
        self._reserved: int | None = None

    def reserve(self, tx: int) -> None:
        """``tx`` is the next id handed out (one reserved and not taken is dropped)."""
        self._reserved = tx

    def next(self) -> int:
        tx, self._reserved = self._reserved, None
        return tx if tx is not None else next(self._next) & 0x7FFFFFFF


@dataclass(slots=True)
class Handled:
    reply: str
    events: list[DomainEvent]
    commit: Callable[[], None] | None = None
    boot_accepted: bool = False
    action: str = ""
    unique_id: str = ""
    ask: Ask | None = None
    """A CALL to send the station once this one is answered."""


@dataclass(slots=True)
class Refused:
    reply: str | None
    reason: str


@dataclass(slots=True)
class Answer:
    unique_id: str
    action: str
    payload: dict[str, Any] | None
    """The CALLRESULT payload, or None when ``error`` is set."""
    error: str | None = None
    """CALLERROR code (or our own validation fault) with its description."""
    error_code: str | None = None


@dataclass(slots=True)
class Streamed:
    events: list[DomainEvent]
    ask: Ask | None = None


Outcome = Handled | Refused | Answer | Streamed | None

# Actions a station may send that we acknowledge with an empty result.
_ACK_ONLY = {
    V16: frozenset(
        {
            "DiagnosticsStatusNotification",
            "FirmwareStatusNotification",
            "SecurityEventNotification",
            "LogStatusNotification",
            "SignedFirmwareStatusNotification",
        }
    ),
    V201: frozenset(
        {
            "ReportChargingProfiles",
            "SecurityEventNotification",
            "NotifyEvent",
            "NotifyReport",
            "FirmwareStatusNotification",
            "LogStatusNotification",
            "NotifyMonitoringReport",
            "NotifyDisplayMessages",
            "NotifyCustomerInformation",
            "PublishFirmwareStatusNotification",
        }
    ),
}
# 2.1 keeps 2.0.1's and adds reports whose answers carry nothing.
_ACK_ONLY[V21] = _ACK_ONLY[V201] | {"NotifyDERAlarm", "NotifyDERStartStop", "ReportDERControl"}
_ENDED_MEMORY = 64


def _compact(seqs: set[int]) -> range | frozenset[int]:
    """An ended transaction's sequence numbers, remembered for its resends: a
    range when they run without a gap (as they do), a few bytes instead of a set
    of every message of the session."""
    lo, hi = min(seqs), max(seqs)
    return range(lo, hi + 1) if hi - lo + 1 == len(seqs) else frozenset(seqs)


@dataclass
class StationState:
    """What we know of a station beyond one connection."""

    vendor: str = ""
    model: str = ""
    firmware: str | None = None
    booted: bool = False
    capabilities: StationCapabilities | None = None
    tx_connector: dict[str, int] = field(default_factory=dict)
    """Running transaction → connector (EVSE)."""
    dynamic: dict[int, DynamicProfile] = field(default_factory=dict)
    """2.1: our Dynamic TxProfiles at the station, by profile id."""
    dynamic_refused: bool = False
    """2.1: the station refused a Dynamic profile; it gets Absolute ones."""
    streams: StreamBook = field(default_factory=StreamBook)
    """2.1: its periodic event streams and the monitors behind them."""


class StationSession:
    def __init__(
        self,
        station_id: str,
        version: OcppVersion,
        settings: SessionSettings,
        tx_ids: TransactionIds,
        clock: Callable[[], datetime],
    ) -> None:
        self.station_id = station_id
        self.version = version
        self.settings = settings
        self.state = StationState()
        self.meter = MeterParser(station_id)
        self._tx_ids = tx_ids
        self._clock = clock
        self._ids = (f"{i:x}" for i in itertools.count(1))
        self.pending: tuple[str, str] | None = None
        """(message id, action) of our outstanding CALL."""
        self._seen_seq: dict[str, set[int] | range | frozenset[int]] = {}
        self._ended: deque[str] = deque()
        self._starts_16: dict[tuple[Any, ...], int] = {}
        # Class-level functions, not bound methods kept on self: those would be
        # ~12 GC-tracked objects per station, each a reference cycle back to it.
        self._handlers = _HANDLERS[version]

    # --- frames in ------------------------------------------------------------------------

    def receive(self, text: str | bytes) -> Outcome:
        """`parse` then `handle`: the whole inbound path in one step."""
        msg = self.parse(text)
        return msg if isinstance(msg, Refused) else self.handle(msg)

    def parse(self, text: str | bytes) -> Message | Refused:
        try:
            msg = parse_frame(text, v21=self.version is V21)
            if isinstance(msg, Send):
                validate_send(self.version, msg)
            return msg
        except RpcError as e:
            if self.version is V21 and e.fault is not Fault.MESSAGE_TYPE and _is_send(text):
                return Refused(None, str(e))  # a SEND is never answered, not even a bad one
            return Refused(e.frame(self.version), str(e))

    def handle(self, msg: Message) -> Outcome:
        if isinstance(msg, Call):
            return self._call(msg)
        if isinstance(msg, Send):
            return _v21_send(self, msg, self._clock())
        if isinstance(msg, CallErrorFrame) and msg.after_result:
            why = f"{msg.code} {msg.description}"
            log.warning("%r: our answer to %r refused: %s", self.station_id, msg.unique_id, why)
            return None
        if self.pending is None or msg.unique_id != self.pending[0]:
            log.warning(
                "%r: result for unknown message id %r ignored", self.station_id, msg.unique_id
            )
            return None
        action = self.pending[1]
        self.pending = None
        if isinstance(msg, CallErrorFrame):
            return Answer(msg.unique_id, action, None, f"{msg.code}: {msg.description}", msg.code)
        assert isinstance(msg, CallResult)
        try:
            validate_response(self.version, action, msg.payload, msg.unique_id)
        except RpcError as e:
            log.warning("%r: invalid %s result: %r", self.station_id, action, str(e))
            return Answer(msg.unique_id, action, None, str(e), "InvalidResult")
        return Answer(msg.unique_id, action, msg.payload)

    def _call(self, call: Call) -> Handled | Refused:
        try:
            validate_request(self.version, call)
            handler = self._handlers.get(call.action)
            if handler is None:
                if call.action in _ACK_ONLY[self.version]:
                    handled = Handled(encode_result(call.unique_id, {}), [])
                else:
                    raise RpcError(
                        Fault.NOT_SUPPORTED,
                        f"{call.action} is not accepted by a central system",
                        call.unique_id,
                    )
            else:
                try:
                    handled = handler(self, call, self._clock())
                except BadReading as e:
                    # The payload parses and fits its schema; one of its values cannot be.
                    raise RpcError(Fault.PROPERTY, f"{call.action}: {e}", call.unique_id) from None
        except RpcError as e:
            return Refused(e.frame(self.version), str(e))
        if call.action != "BootNotification":
            # Only a station we accepted before sends anything else (reconnect, our restart).
            self.state.booted = True
        handled.action, handled.unique_id = call.action, call.unique_id
        if self.settings.validate_replies:
            validate_response(self.version, call.action, json.loads(handled.reply)[2])
        return handled

    # --- frames out -----------------------------------------------------------------------

    def call(self, action: str, payload: dict[str, Any]) -> tuple[str, str]:
        """A CALL frame for ``action``; it becomes the outstanding CALL.

        Raises `RpcError` if our own payload breaks the schema (a bug on our side).
        """
        unique_id = next(self._ids)
        validate_request(self.version, Call(unique_id, action, payload))
        self.pending = (unique_id, action)
        return unique_id, encode_call(unique_id, action, payload)

    def forget(self, unique_id: str) -> None:
        """The CALL timed out or the connection went: a late answer is then ignored."""
        if self.pending is not None and self.pending[0] == unique_id:
            self.pending = None

    # --- helpers --------------------------------------------------------------------------

    def connector_id(self, connector: int) -> str:
        return f"{self.station_id}/{connector}"

    def _register(self, call: Call, key: str) -> float | None:
        """1.6 ``meterStart``/``meterStop``; one below zero is unknown."""
        wh = float(call.payload[key])
        if wh < 0:
            log.warning(
                "%r: %s %s %r is below zero; read as unknown", self.station_id, call.action, key, wh
            )
            return None
        return wh

    def _authorized(self, id_tag: str | None) -> str:
        allowed = self.settings.authorize_id_tags
        return "Accepted" if allowed is None or id_tag in allowed else "Invalid"

    def _boot(self, call: Call, now: datetime, vendor: str, model: str, fw: Any) -> Handled:
        self.state.vendor, self.state.model = vendor, model
        self.state.firmware = fw if isinstance(fw, str) else None
        reply = {
            "status": "Accepted",
            "currentTime": _iso(now),
            "interval": self.settings.heartbeat_interval_s,
        }
        event = StationBooted(self.station_id, vendor, model, now, self.state.firmware)

        def commit() -> None:
            self.state.booted = True

        return Handled(encode_result(call.unique_id, reply), [event], commit, boot_accepted=True)

    def _ack(self, call: Call, payload: dict[str, Any] | None = None) -> Handled:
        return Handled(encode_result(call.unique_id, payload or {}), [])

    # --- OCPP 1.6 -------------------------------------------------------------------------

    def _v16_BootNotification(self, call: Call, now: datetime) -> Handled:
        p = call.payload
        return self._boot(
            call, now, p["chargePointVendor"], p["chargePointModel"], p.get("firmwareVersion")
        )

    def _v16_Heartbeat(self, call: Call, now: datetime) -> Handled:
        return self._ack(call, {"currentTime": _iso(now)})

    def _v16_StatusNotification(self, call: Call, now: datetime) -> Handled:
        p = call.payload
        error = p.get("errorCode")
        event = ConnectorStatusChanged(
            self.connector_id(p["connectorId"]),
            p["status"],
            parse_timestamp(p.get("timestamp"), now),
            None if error == "NoError" else error,
        )
        return Handled(encode_result(call.unique_id, {}), [event])

    def _v16_Authorize(self, call: Call, now: datetime) -> Handled:
        status = self._authorized(call.payload["idTag"])
        return self._ack(call, {"idTagInfo": {"status": status}})

    def _v16_StartTransaction(self, call: Call, now: datetime) -> Handled:
        p = call.payload
        connector = p["connectorId"]
        # A station that retries a StartTransaction it got no answer to gets the same id.
        key = (connector, p["idTag"], p["meterStart"], p["timestamp"])
        reply_status = self._authorized(p["idTag"])
        repeat = self._starts_16.get(key)
        if repeat is not None:
            reply = {"transactionId": repeat, "idTagInfo": {"status": reply_status}}
            return Handled(encode_result(call.unique_id, reply), [])
        tx = self._tx_ids.next()
        meter_start = self._register(call, "meterStart")
        event = SessionStarted(
            self.connector_id(connector),
            str(tx),
            p["idTag"],
            meter_start,
            parse_timestamp(p["timestamp"], now),
        )

        def commit() -> None:
            self.state.tx_connector[str(tx)] = connector
            self.meter.reset_register(self.connector_id(connector), meter_start)
            if len(self._starts_16) > _ENDED_MEMORY:
                self._starts_16.clear()
            self._starts_16[key] = tx

        reply = {"transactionId": tx, "idTagInfo": {"status": reply_status}}
        return Handled(encode_result(call.unique_id, reply), [event], commit)

    def _v16_StopTransaction(self, call: Call, now: datetime) -> Handled:
        p = call.payload
        tx = str(p["transactionId"])
        connector = self.state.tx_connector.get(tx)
        events: list[DomainEvent] = []
        if p.get("transactionData") and connector is not None:
            events += self.meter.parse(connector, p["transactionData"], tx, now)
        events.append(
            SessionEnded(
                tx,
                self._register(call, "meterStop"),
                parse_timestamp(p["timestamp"], now),
                p.get("reason", "Local"),
                self.connector_id(connector) if connector is not None else None,
                self.station_id,
            )
        )
        reply: dict[str, Any] = {}
        if "idTag" in p:
            reply["idTagInfo"] = {"status": self._authorized(p["idTag"])}

        def commit() -> None:
            self.state.tx_connector.pop(tx, None)

        return Handled(encode_result(call.unique_id, reply), events, commit)

    def _v16_MeterValues(self, call: Call, now: datetime) -> Handled:
        p = call.payload
        tx = p.get("transactionId")
        readings = self.meter.parse(
            p["connectorId"], p["meterValue"], None if tx is None else str(tx), now, strict=True
        )
        return Handled(encode_result(call.unique_id, {}), list(readings))

    def _v16_DataTransfer(self, call: Call, now: datetime) -> Handled:
        return self._ack(call, {"status": "UnknownVendorId"})

    # --- OCPP 2.0.1 -----------------------------------------------------------------------

    def _v201_BootNotification(self, call: Call, now: datetime) -> Handled:
        cs = call.payload["chargingStation"]
        return self._boot(call, now, cs["vendorName"], cs["model"], cs.get("firmwareVersion"))

    def _v201_Heartbeat(self, call: Call, now: datetime) -> Handled:
        return self._ack(call, {"currentTime": _iso(now)})

    def _v201_StatusNotification(self, call: Call, now: datetime) -> Handled:
        p = call.payload
        event = ConnectorStatusChanged(
            self.connector_id(p["evseId"]),
            p["connectorStatus"],
            parse_timestamp(p["timestamp"], now),
        )
        return Handled(encode_result(call.unique_id, {}), [event])

    def _v201_Authorize(self, call: Call, now: datetime) -> Handled:
        status = self._authorized(call.payload["idToken"]["idToken"])
        return self._ack(call, {"idTokenInfo": {"status": status}})

    def _v201_TransactionEvent(self, call: Call, now: datetime) -> Handled:
        p = call.payload
        info = p["transactionInfo"]
        tx = info["transactionId"]
        seq = p["seqNo"]
        reply: dict[str, Any] = {}
        id_token = (p.get("idToken") or {}).get("idToken")
        if id_token is not None:
            reply["idTokenInfo"] = {"status": self._authorized(id_token)}
        encoded = encode_result(call.unique_id, reply)
        seen = self._seen_seq.get(tx)
        if seen is not None and seq in seen:
            return Handled(encoded, [])  # a resend after a lost answer: already stored
        evse = (p.get("evse") or {}).get("id")
        connector = evse if evse is not None else self.state.tx_connector.get(tx)
        at = parse_timestamp(p["timestamp"], now)
        kind = p["eventType"]
        events: list[DomainEvent] = []
        meter_values = p.get("meterValue") or []
        if kind == "Started" and connector is not None:
            events.append(
                SessionStarted(
                    self.connector_id(connector),
                    tx,
                    id_token,
                    energy_register_wh(meter_values),
                    at,
                    offline=bool(p.get("offline", False)),
                )
            )
        if connector is not None:
            if kind == "Started":
                self.meter.reset_register(
                    self.connector_id(connector), energy_register_wh(meter_values)
                )
            # A start or end is taken without its impossible values, an update is refused.
            events += self.meter.parse(connector, meter_values, tx, now, strict=kind == "Updated")
            state = info.get("chargingState")
            if state is not None:
                events.append(ConnectorStatusChanged(self.connector_id(connector), state, at))
        if kind == "Ended":
            events.append(
                SessionEnded(
                    tx,
                    energy_register_wh(meter_values),
                    at,
                    info.get("stoppedReason", "Local"),
                    self.connector_id(connector) if connector is not None else None,
                    self.station_id,
                )
            )

        def commit() -> None:
            seen = self._seen_seq.get(tx)
            if not isinstance(seen, set):
                seen = self._seen_seq[tx] = set(seen or ())
            seen.add(seq)
            if connector is not None and kind != "Ended":
                self.state.tx_connector[tx] = connector
            if kind == "Ended":
                self.state.tx_connector.pop(tx, None)
                self._seen_seq[tx] = _compact(seen)
                self._ended.append(tx)
                while len(self._ended) > _ENDED_MEMORY:
                    self._seen_seq.pop(self._ended.popleft(), None)

        return Handled(encoded, events, commit)

    def _v201_MeterValues(self, call: Call, now: datetime) -> Handled:
        p = call.payload
        evse = p["evseId"]
        tx = transaction_on(self.state.tx_connector, evse)
        readings = self.meter.parse(evse, p["meterValue"], tx if evse else None, now, strict=True)
        return Handled(encode_result(call.unique_id, {}), list(readings))

    def _v201_NotifyEVChargingNeeds(self, call: Call, now: datetime) -> Handled:
        needs = call.payload["chargingNeeds"]
        params = needs.get("acChargingParameters") or needs.get("dcChargingParameters") or {}
        # 2.1, ISO 15118-20: the same figures may come only in v2xChargingParameters
        v2x = needs.get("v2xChargingParameters") or {}
        departure = needs.get("departureTime")
        energy = params.get("energyAmount", v2x.get("evTargetEnergyRequest"))
        event = EvChargingNeeds(
            self.connector_id(call.payload["evseId"]),
            now,
            parse_timestamp(departure, now) if departure else None,
            float(energy) if energy is not None else None,
            _float(params.get("evMaxCurrent", v2x.get("maxChargeCurrent"))),
            _float(params.get("evMinCurrent", v2x.get("minChargeCurrent"))),
            bidirectional.read_needs(needs),  # BPT modes exist only in 2.1
        )
        return Handled(encode_result(call.unique_id, {"status": "Accepted"}), [event])

    def _v201_NotifyChargingLimit(self, call: Call, now: datetime) -> Handled:
        p = call.payload
        evse = p.get("evseId")
        limits = [
            period["limit"]
            for schedule in p.get("chargingSchedule") or ()
            if schedule.get("chargingRateUnit") == "A"
            for period in schedule.get("chargingSchedulePeriod", ())[:1]
        ]
        event = ExternalLimitNotified(
            self.station_id,
            now,
            p["chargingLimit"]["chargingLimitSource"],
            self.connector_id(evse) if evse is not None else None,
            min(limits) if limits else None,
        )
        return Handled(encode_result(call.unique_id, {}), [event])

    def _v201_DataTransfer(self, call: Call, now: datetime) -> Handled:
        return self._ack(call, {"status": "UnknownVendorId"})

    # --- after boot -----------------------------------------------------------------------

    def capability_request(self) -> tuple[str, dict[str, Any]]:
        """The CALL that asks the station what it can do (`ocpp_adapter.capabilities`)."""
        return capability_request(self.version)

    def apply_capabilities(self, payload: dict[str, Any] | None) -> StationCapabilities:
        """The capability answer (None: the station would not say) → remembered capabilities."""
        caps = read_capabilities(self.station_id, self.version, payload, self._clock())
        self.state.capabilities = caps
        return caps

    def sampling_requests(self) -> Iterator[tuple[str, dict[str, Any]]]:
        """The CALLs that configure the station's meter sampling (none if we leave it)."""
        s = self.settings
        return sampling_requests(self.version, s.meter_interval_s, s.measurands)


_Handler = Callable[[StationSession, Call, datetime], Handled]


def _handlers(prefix: str) -> dict[str, _Handler]:
    return {
        name.removeprefix(prefix): getattr(StationSession, name)
        for name in dir(StationSession)
        if name.startswith(prefix)
    }


# --- OCPP 2.1's own (out of the class: it holds the two versions all share) --------------------


def _v21_notify_priority_charging(session: StationSession, call: Call, now: datetime) -> Handled:
    # We install no PriorityCharging profile: the plan serves the session first
    # instead, within every limit (the application weighs it).
    p = call.payload
    event = PriorityChargingNotified(session.station_id, p["transactionId"], p["activated"], now)
    return Handled(encode_result(call.unique_id, {}), [event])


def _v21_pull_dynamic_schedule_update(
    session: StationSession, call: Call, now: datetime
) -> Handled:
    st, s = session.state, session.settings
    pid = int(call.payload["chargingProfileId"])
    reply = pull_reply(st.dynamic, pid, st.capabilities, now, s.backdate_s)
    return Handled(encode_result(call.unique_id, reply), [])


def _v21_send(session: StationSession, msg: Send, now: datetime) -> Streamed | Refused | None:
    """A SEND: a periodic event stream's data feeds readings; others are taken, not used."""
    if msg.action != "NotifyPeriodicEventStream":
        log.info("%r: %s SEND taken, not used", session.station_id, msg.action)
        return None
    st = session.state
    try:
        readings, ask = st.streams.data(
            session.station_id, msg.payload, now, lambda evse: transaction_on(st.tx_connector, evse)
        )
    except BadStream as e:
        return Refused(None, f"{msg.action}: {e}")  # never answered
    return Streamed(list(readings), ask)


def _v21_open_periodic_event_stream(session: StationSession, call: Call, now: datetime) -> Handled:
    reply, ask = session.state.streams.opened(call.payload["constantStreamData"], now)
    return Handled(encode_result(call.unique_id, reply), [], ask=ask)


def _v21_notify_monitoring_report(session: StationSession, call: Call, now: datetime) -> Handled:
    session.state.streams.monitors_reported(call.payload)
    return Handled(encode_result(call.unique_id, {}), [])


_HANDLERS = {
    V16: _handlers("_v16_"),
    V201: _handlers("_v201_"),
    # 2.1: every 2.0.1 handler (same messages, optional fields added), then its own.
    V21: {
        **_handlers("_v201_"),
        "NotifyPriorityCharging": _v21_notify_priority_charging,
        "PullDynamicScheduleUpdate": _v21_pull_dynamic_schedule_update,
        "OpenPeriodicEventStream": _v21_open_periodic_event_stream,
        "NotifyMonitoringReport": _v21_notify_monitoring_report,
    },
}


def _is_send(text: str | bytes) -> bool:
    head = text[:16] if isinstance(text, str) else text[:16].decode("utf-8", "replace")
    return head.lstrip().startswith("[") and head.lstrip()[1:].lstrip().startswith("6")


def _iso(at: datetime) -> str:
    return at.isoformat(timespec="seconds").replace("+00:00", "Z")


def _float(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None
