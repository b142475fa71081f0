"""Simulated OCPP-J charging stations (1.6 and 2.0.1): the other side of the adapter.

Each station is a real websocket client with connectors, stored charging
profiles (`limits.ProfileStore`) and plugged-in EVs (`ev.Ev`). One asyncio task
per station runs its connection: it waits for the next frame with a deadline
set by the next timer (heartbeat, meter sample, physics tick, call timeout),
and is woken early by rescheduling that deadline, so thousands of stations
share one loop without extra tasks or threads.

Time: ``clock()`` gives simulated UTC time (EV physics, timestamps); intervals
configured in simulated seconds (meter samples) run ``speed`` times faster in
wall time. Protocol timers (heartbeat, call timeout) run in wall time.

Connectors are named ``STATION/N`` (N is the 1.6 connector id or the 2.0.1
EVSE id; each EVSE has one connector). Phases in meter values are the
connector's lines as configured (a site's lines when built from a site).

A station-wide max profile is shared equally among the connectors with a
running transaction. A limit below the connector's minimum current is offered
as 0 (the pilot signal cannot go lower; the car pauses, SuspendedEVSE).

CALLERRORs follow OCPP-J for both versions: an action the version does not
define → NotImplemented, one it defines that we do not handle → NotSupported,
a malformed payload → FormationViolation (1.6) / FormatViolation (2.0.1).

Misbehaviour for tests (`SimStationSpec`): ``never_answers_profiles``,
``rejects_profiles``, ``ignores_limits``, ``power_unit_only``.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import json
import logging
import math
import ssl
import time
import uuid
from collections import Counter, deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import Any
from urllib.parse import quote

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI

from gridshare.peers.ev import Ev, EvSpec
from gridshare.peers.limits import (
    ConnectorContext,
    Profile,
    ProfileError,
    ProfileStore,
    Purpose,
    profile_from_v16,
    profile_from_v201,
    purpose_from_ocpp,
)

log = logging.getLogger(__name__)

FrameTap = Callable[[str, str, str | bytes], None]
"""(station id, "in" or "out", frame): sees a simulated station's frames."""

SUBPROTOCOL: dict[str, str] = {"1.6": "ocpp1.6", "2.0.1": "ocpp2.0.1"}
ALL_MEASURANDS = (
    "Current.Import",
    "Power.Active.Import",
    "Energy.Active.Import.Register",
    "SoC",
    "Current.Offered",
)
# Simulated seconds between physics updates while an EV charges (status changes
# such as "battery full" are noticed at this pace).
PHYSICS_TICK_S = 10.0
OUTBOX_LIMIT = 2000
_CONNECTOR_STATUS = {"Available": "Available", "Unavailable": "Unavailable"}


@dataclass(frozen=True)
class SimConnectorSpec:
    id: int
    max_current_a: float = 32.0
    min_current_a: float = 6.0
    phases: tuple[str, ...] = ("L1", "L2", "L3")
    voltage_v: float = 230.0


@dataclass(frozen=True)
class SimStationSpec:
    id: str
    connectors: tuple[SimConnectorSpec, ...] = (SimConnectorSpec(1),)
    version: str = "1.6"
    password: str | None = None
    client_cert: str | None = None
    """Certificate (PEM) the station presents over wss (security profile 3), with
    ``client_key``."""
    client_key: str | None = None
    vendor: str = "gridshare"
    model: str = "SimStation"
    meter_interval_s: float = 60.0
    """Simulated seconds between meter samples until the server configures it."""
    max_stack_level: int = 8
    max_periods: int = 48
    power_unit_only: bool = False
    """Accept only W profiles (some DC and older AC stations)."""
    never_answers_profiles: bool = False
    rejects_profiles: bool = False
    ignores_limits: bool = False

    def __post_init__(self) -> None:
        if self.version not in SUBPROTOCOL:
            raise ValueError(f"version must be one of {sorted(SUBPROTOCOL)}, not {self.version!r}")
        if (self.client_cert is None) != (self.client_key is None):
            raise ValueError("client_cert and client_key go together")


@dataclass
class FleetStats:
    connects: int = 0
    connect_failures: int = 0
    disconnects: int = 0
    boots_accepted: int = 0
    frames_sent: int = 0
    frames_received: int = 0
    calls_sent: int = 0
    call_results: int = 0
    call_errors: int = 0
    call_timeouts: int = 0
    calls_received: int = 0
    by_action: Counter[str] = field(default_factory=Counter)
    latencies_s: list[float] = field(default_factory=list)
    max_latencies: int = 2_000_000

    def record_latency(self, seconds: float) -> None:
        if len(self.latencies_s) < self.max_latencies:
            self.latencies_s.append(seconds)

    def percentile_s(self, q: float) -> float | None:
        if not self.latencies_s:
            return None
        s = sorted(self.latencies_s)
        return s[min(len(s) - 1, max(0, math.ceil(q / 100 * len(s)) - 1))]


class CallError(Exception):
    """An inbound CALL we answer with a CALLERROR."""

    def __init__(self, code: str, description: str = "") -> None:
        super().__init__(description)
        self.code = code
        self.description = description


_NO_ANSWER = object()


@cache
def _known_actions(version: str) -> frozenset[str]:
    """Actions the version defines (from the `ocpp` package's schemas if installed)."""
    try:
        from importlib.resources import files

        folder = files("ocpp") / ("v16" if version == "1.6" else "v201") / "schemas"
        names = [p.name.removesuffix(".json") for p in folder.iterdir()]
    except (ImportError, OSError):
        return frozenset()
    return frozenset(
        n.removesuffix("Request") for n in names if not n.endswith("Response") and n != "schemas"
    )


def _iso(t: datetime) -> str:
    return t.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _one_decimal(x: float) -> float:
    return math.floor(x * 10 + 1e-9) / 10


@dataclass
class _Outgoing:
    action: str
    payload: dict[str, Any] | Callable[[], dict[str, Any] | None]
    on_result: Callable[[dict[str, Any]], None] | None = None


@dataclass
class _Connector:
    spec: SimConnectorSpec
    last_t: datetime
    ev: Ev | None = None
    in_tx: bool = False
    tx_id: str | None = None
    tx_start: datetime | None = None
    id_tag: str = "SIMTAG"
    meter_start_wh: float = 0.0
    energy_wh: float = 0.0
    seq_no: int = 0
    reported: str | None = None
    available: bool = True
    finishing: bool = False
    remote_tag: str | None = None
    departure: datetime | None = None
    energy_need_wh: float | None = None
    limit_a: float = 0.0
    tx_cell: list[str | None] = field(default_factory=lambda: [None])
    """1.6 transaction id as the server assigns it, shared with queued messages."""

    @property
    def phases_used(self) -> int:
        wired = len(self.spec.phases)
        return wired if self.ev is None else min(wired, self.ev.spec.phases)

    @property
    def power_phases(self) -> int:
        """Phases in power terms: 3, or 1 for one line or a line pair (V is then L-L)."""
        return 3 if self.phases_used == 3 else 1

    def draw(self) -> dict[str, float]:
        amps = self.ev.current_a if self.ev is not None and self.in_tx else 0.0
        used = self.phases_used
        return {line: (amps if i < used else 0.0) for i, line in enumerate(self.spec.phases)}


class SimStation:
    """One simulated station: state, OCPP handlers and its connection loop."""

    def __init__(self, spec: SimStationSpec, fleet: StationFleet) -> None:
        self.spec = spec
        self.fleet = fleet
        self.v16 = spec.version == "1.6"
        now = fleet.clock()
        self.connectors = {c.id: _Connector(c, now) for c in spec.connectors}
        self.store = ProfileStore()
        self.ws: ClientConnection | None = None
        self.booted = False
        self.heartbeat_s = 300.0
        self.meter_interval_s = spec.meter_interval_s
        self.measurands = list(ALL_MEASURANDS)
        self._outbox: deque[_Outgoing] = deque(maxlen=OUTBOX_LIMIT)
        self._pending: tuple[str, _Outgoing, float] | None = None
        self._ids = itertools.count(1)
        self._timeout: asyncio.Timeout | None = None
        self._next_boot = 0.0
        self._next_heartbeat = math.inf
        self._next_sample = math.inf
        self._next_tick = math.inf
        self._last_sent = 0.0
        self._close_after_flush = False
        self._stopping = False
        self.task: asyncio.Task[None] | None = None
        self.booted_event = asyncio.Event()

    # --- helpers ----------------------------------------------------------------

    @property
    def _loop(self) -> asyncio.AbstractEventLoop:
        return asyncio.get_running_loop()

    def _wall(self, sim_s: float) -> float:
        return sim_s / self.fleet.speed

    def _wake(self) -> None:
        if self._timeout is not None:
            # already expiring: the loop wakes anyway
            with contextlib.suppress(RuntimeError):
                self._timeout.reschedule(self._loop.time())

    def _send_later(
        self,
        action: str,
        payload: dict[str, Any] | Callable[[], dict[str, Any] | None],
        on_result: Callable[[dict[str, Any]], None] | None = None,
    ) -> None:
        self._outbox.append(_Outgoing(action, payload, on_result))
        self._wake()

    def connector(self, n: int) -> _Connector:
        try:
            return self.connectors[n]
        except KeyError:
            raise KeyError(f"{self.spec.id} has no connector {n}") from None

    # --- physics and limits -----------------------------------------------------

    def _context(self, c: _Connector) -> ConnectorContext:
        tx = (c.tx_id or "local") if c.in_tx else None
        return ConnectorContext(c.spec.voltage_v, c.power_phases, tx, c.tx_start)

    def limit_at(self, c: _Connector, t: datetime) -> float:
        """Per-phase limit offered to connector c at t (A)."""
        if self.spec.ignores_limits:
            return c.spec.max_current_a
        ctx = self._context(c)
        lim = c.spec.max_current_a
        own = self.store.connector_limit_a(c.spec.id, t, ctx)
        if own is not None:
            lim = min(lim, own)
        station = self.store.station_limit_a(t, ctx)
        if station is not None:
            sharing = max(1, sum(1 for k in self.connectors.values() if k.in_tx))
            lim = min(lim, station / sharing)
        # below the connector's minimum the pilot signal pauses the car
        return lim if lim >= c.spec.min_current_a - 1e-9 else 0.0

    def advance(self, now: datetime | None = None) -> None:
        now = now or self.fleet.clock()
        for c in self.connectors.values():
            t = c.last_t
            while t < now:
                step = min((now - t).total_seconds(), PHYSICS_TICK_S)
                c.limit_a = self.limit_at(c, t)
                if c.ev is not None and c.in_tx:
                    vxp = c.spec.voltage_v * c.power_phases
                    c.energy_wh += c.ev.step(step, c.limit_a, vxp)
                t = min(now, t + timedelta(seconds=step))
            c.last_t = max(c.last_t, now)
            c.limit_a = self.limit_at(c, now)

    def _status(self, c: _Connector) -> str:
        if not c.available:
            return "Unavailable"
        if c.ev is None:
            return "Available"
        if not c.in_tx:
            return "Finishing" if c.finishing else "Preparing"
        if c.ev.full:
            return "SuspendedEV"
        if c.limit_a < c.ev.spec.min_current_a or c.limit_a <= 0:
            return "SuspendedEVSE"
        return "Charging"

    def _refresh(self) -> None:
        """Advance physics and report status changes."""
        self.advance()
        for c in self.connectors.values():
            st = self._status(c)
            if st != c.reported:
                old, c.reported = c.reported, st
                if self.booted or c.in_tx:
                    self._notify_status(c, st, old)

    def _notify_status(self, c: _Connector, st: str, old: str | None = None) -> None:
        now = _iso(self.fleet.clock())
        if self.v16:
            payload = {"connectorId": c.spec.id, "errorCode": "NoError", "status": st}
            payload["timestamp"] = now
            self._send_later("StatusNotification", payload)
            return
        connector_status = _CONNECTOR_STATUS.get(st, "Occupied")
        # 2.0.1 StatusNotification carries only the connector's own status
        if old is None or _CONNECTOR_STATUS.get(old, "Occupied") != connector_status:
            self._send_later(
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

    # --- meter values -------------------------------------------------------------

    def _sampled(self, c: _Connector, context: str) -> list[dict[str, Any]]:
        draw = c.draw()
        out: list[dict[str, Any]] = []

        def add(measurand: str, value: float, unit: str, **extra: str) -> None:
            sv: dict[str, Any] = {"measurand": measurand, "context": context, **extra}
            if self.v16:
                sv["value"] = f"{value:.1f}" if unit != "Percent" else f"{value:.0f}"
                sv["unit"] = unit
            else:
                sv["value"] = round(value, 1)
                sv["unitOfMeasure"] = {"unit": unit}
            out.append(sv)

        for m in self.measurands:
            if m == "Current.Import":
                for line, amps in draw.items():
                    add(m, amps, "A", phase=line, location="Outlet")
            elif m == "Power.Active.Import":
                amps = next(iter(draw.values()), 0.0)
                add(m, amps * c.spec.voltage_v * c.power_phases, "W", location="Outlet")
            elif m == "Energy.Active.Import.Register":
                add(m, _one_decimal(c.energy_wh), "Wh", location="Outlet")
            elif m == "SoC" and c.ev is not None:
                add(m, c.ev.soc * 100, "Percent", location="EV")
            elif m == "Current.Offered":
                add(m, c.limit_a, "A", location="Outlet")
        return out

    def _meter_value(self, c: _Connector, context: str) -> list[dict[str, Any]]:
        return [{"timestamp": _iso(self.fleet.clock()), "sampledValue": self._sampled(c, context)}]

    def _send_samples(self, context: str = "Sample.Periodic", only: int | None = None) -> None:
        self._refresh()
        for c in self.connectors.values():
            if only is not None and c.spec.id != only:
                continue
            if context == "Sample.Periodic" and not c.in_tx:
                continue
            mv = self._meter_value(c, context)
            if not self.v16 and c.in_tx and context == "Sample.Periodic":
                self._tx_event(c, "Updated", "MeterValuePeriodic", meter_value=mv)
            elif self.v16:
                payload: dict[str, Any] = {"connectorId": c.spec.id, "meterValue": mv}
                if c.in_tx:
                    self._send_later("MeterValues", self._with_tx16(c, payload))
                else:
                    self._send_later("MeterValues", payload)
            else:
                self._send_later("MeterValues", {"evseId": c.spec.id, "meterValue": mv})

    def _with_tx16(
        self, c: _Connector, payload: dict[str, Any]
    ) -> Callable[[], dict[str, Any] | None]:
        """Payload whose transactionId is filled in when sent (StartTransaction may be queued)."""
        cell = c.tx_cell

        def build() -> dict[str, Any] | None:
            tx = cell[0]
            if tx is not None and tx.lstrip("-").isdigit():
                return {**payload, "transactionId": int(tx)}
            # never acknowledged: MeterValues go without it, StopTransaction cannot
            return None if "meterStop" in payload else payload

        return build

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
        self._refresh()
        if not c.available:
            return
        if c.remote_tag is not None or not self.booted:
            # remote start already authorised, or offline: authorise locally
            self._start_tx(c, c.remote_tag or id_tag, remote=c.remote_tag is not None)
            return
        self._send_later("Authorize", self._authorize_payload(id_tag), self._authorized(c))

    def _authorize_payload(self, id_tag: str) -> dict[str, Any]:
        if self.v16:
            return {"idTag": id_tag}
        return {"idToken": {"idToken": id_tag, "type": "ISO14443"}}

    def _authorized(self, c: _Connector) -> Callable[[dict[str, Any]], None]:
        def done(result: dict[str, Any]) -> None:
            info = result.get("idTagInfo") or result.get("idTokenInfo") or {}
            if info.get("status") == "Accepted" and c.ev is not None and not c.in_tx:
                self._start_tx(c, c.id_tag)

        return done

    def _start_tx(self, c: _Connector, id_tag: str, remote: bool = False) -> None:
        now = self.fleet.clock()
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
                "timestamp": _iso(now),
            }
            self._send_later("StartTransaction", payload, self._started16(c))
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
            if c.departure is not None or c.energy_need_wh is not None:
                self._send_later("NotifyEVChargingNeeds", self._needs(c))
        self._refresh()
        self._arm_sampling()

    def _started16(self, c: _Connector) -> Callable[[dict[str, Any]], None]:
        cell = c.tx_cell

        def done(result: dict[str, Any]) -> None:
            cell[0] = str(result["transactionId"])
            if c.tx_cell is not cell or not c.in_tx:
                return
            c.tx_id = cell[0]
            if result.get("idTagInfo", {}).get("status") not in (None, "Accepted"):
                self._stop_tx(c, "DeAuthorized")

        return done

    def _needs(self, c: _Connector) -> dict[str, Any]:
        assert c.ev is not None
        ev = c.ev.spec
        mode = {3: "AC_three_phase", 2: "AC_two_phase"}.get(c.phases_used, "AC_single_phase")
        needs: dict[str, Any] = {"requestedEnergyTransfer": mode}
        if c.departure is not None:
            needs["departureTime"] = _iso(c.departure)
        room = max(ev.soc_target - c.ev.soc, 0.0) * ev.battery_kwh * 1000
        needs["acChargingParameters"] = {
            "energyAmount": round(c.energy_need_wh if c.energy_need_wh is not None else room),
            "evMinCurrent": round(ev.min_current_a),
            "evMaxCurrent": round(ev.max_current_a),
            "evMaxVoltage": round(c.spec.voltage_v * 1.1),
        }
        return {"evseId": c.spec.id, "chargingNeeds": needs}

    def _tx_event(
        self,
        c: _Connector,
        event: str,
        trigger: str,
        charging_state: str | None = None,
        meter_value: list[dict[str, Any]] | None = None,
        id_tag: str | None = None,
        stopped_reason: str | None = None,
    ) -> None:
        info: dict[str, Any] = {"transactionId": c.tx_id}
        if charging_state is not None:
            info["chargingState"] = charging_state
        if stopped_reason is not None:
            info["stoppedReason"] = stopped_reason
        payload: dict[str, Any] = {
            "eventType": event,
            "timestamp": _iso(self.fleet.clock()),
            "triggerReason": trigger,
            "seqNo": c.seq_no,
            "transactionInfo": info,
        }
        c.seq_no += 1
        if event == "Started":
            payload["evse"] = {"id": c.spec.id, "connectorId": 1}
        if id_tag is not None:
            payload["idToken"] = {"idToken": id_tag, "type": "ISO14443"}
        if meter_value:
            payload["meterValue"] = meter_value
        if not self.booted:
            payload["offline"] = True
        self._send_later("TransactionEvent", payload)

    def _stop_tx(
        self,
        c: _Connector,
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
                "timestamp": _iso(self.fleet.clock()),
                "idTag": c.id_tag,
                "reason": reason,
                "transactionData": end_mv,
            }
            self._send_later("StopTransaction", self._with_tx16(c, base))
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
        self.store.end_transaction(c.spec.id)
        self._refresh()

    def unplug(self, n: int) -> None:
        c = self.connector(n)
        if c.ev is None:
            raise ValueError(f"{self.spec.id}/{n} has no EV")
        self.advance()
        self._stop_tx(c, "EVDisconnected", trigger="EVCommunicationLost", unplugged=True)
        c.ev = None
        c.finishing = False
        c.remote_tag = None
        self._refresh()

    # --- inbound CALLs ------------------------------------------------------------

    def handle_call(self, action: str, payload: dict[str, Any]) -> Any:
        """Answer one CALL: a response payload, `_NO_ANSWER`, or raise `CallError`."""
        log.debug("%s <- %s %s", self.spec.id, action, payload)
        handler = getattr(self, f"_on_{action}", None)
        if handler is None:
            if action in _known_actions(self.spec.version):
                raise CallError("NotSupported", f"{action} is not supported")
            raise CallError("NotImplemented", f"unknown action {action}")
        try:
            return handler(payload)
        except (KeyError, TypeError, ValueError, AttributeError) as e:
            code = "FormationViolation" if self.v16 else "FormatViolation"
            raise CallError(code, f"bad {action} payload: {e}") from None

    def _config16(self) -> dict[str, tuple[str, bool]]:
        units = "Power" if self.spec.power_unit_only else "Current,Power"
        return {
            "HeartbeatInterval": (str(int(self.heartbeat_s)), False),
            "MeterValueSampleInterval": (str(int(self.meter_interval_s)), False),
            "MeterValuesSampledData": (",".join(self.measurands), False),
            "ChargingScheduleAllowedChargingRateUnit": (units, True),
            "ChargingScheduleMaxPeriods": (str(self.spec.max_periods), True),
            "ChargeProfileMaxStackLevel": (str(self.spec.max_stack_level), True),
            "MaxChargingProfilesInstalled": ("32", True),
            "ConnectorSwitch3to1PhaseSupported": ("false", True),
            "NumberOfConnectors": (str(len(self.connectors)), True),
            "SupportedFeatureProfiles": ("Core,SmartCharging,RemoteTrigger", True),
        }

    def _set_measurands(self, value: str) -> bool:
        items = [m.strip() for m in value.split(",") if m.strip()]
        if not items or any(m not in ALL_MEASURANDS for m in items):
            return False
        self.measurands = items
        return True

    def _set_interval(self, value: str) -> bool:
        s = float(value)
        if s < 0:
            return False
        self.meter_interval_s = s
        self._arm_sampling(reset=True)
        return True

    def _on_GetConfiguration(self, p: dict[str, Any]) -> dict[str, Any]:
        conf = self._config16()
        keys = p.get("key") or list(conf)
        known = [{"key": k, "readonly": conf[k][1], "value": conf[k][0]} for k in keys if k in conf]
        out: dict[str, Any] = {"configurationKey": known}
        unknown = [k for k in keys if k not in conf]
        if unknown:
            out["unknownKey"] = unknown
        return out

    def _on_ChangeConfiguration(self, p: dict[str, Any]) -> dict[str, Any]:
        key, value = p["key"], str(p["value"])
        conf = self._config16()
        if key not in conf:
            return {"status": "NotSupported"}
        if conf[key][1]:
            return {"status": "Rejected"}
        try:
            if key == "MeterValueSampleInterval":
                ok = self._set_interval(value)
            elif key == "MeterValuesSampledData":
                ok = self._set_measurands(value)
            else:
                self.heartbeat_s = float(value) or self.heartbeat_s
                self._next_heartbeat = self._loop.time() + self.heartbeat_s
                ok = True
        except ValueError:
            ok = False
        return {"status": "Accepted" if ok else "Rejected"}

    def _variables(self) -> dict[tuple[str, str], tuple[str, bool]]:
        return {
            ("SmartChargingCtrlr", "Enabled"): ("true", True),
            ("SmartChargingCtrlr", "Available"): ("true", True),
            ("SmartChargingCtrlr", "ProfileStackLevel"): (str(self.spec.max_stack_level), True),
            ("SmartChargingCtrlr", "PeriodsPerSchedule"): (str(self.spec.max_periods), True),
            ("SmartChargingCtrlr", "RateUnit"): ("W" if self.spec.power_unit_only else "A,W", True),
            ("SmartChargingCtrlr", "Entries"): ("32", True),
            ("SmartChargingCtrlr", "ACPhaseSwitchingSupported"): ("false", True),
            ("SampledDataCtrlr", "TxUpdatedInterval"): (str(int(self.meter_interval_s)), False),
            ("SampledDataCtrlr", "TxUpdatedMeasurands"): (",".join(self.measurands), False),
            ("SampledDataCtrlr", "TxEndedMeasurands"): (",".join(self.measurands), True),
            ("OCPPCommCtrlr", "HeartbeatInterval"): (str(int(self.heartbeat_s)), False),
        }

    def _variable_status(self, item: Mapping[str, Any]) -> tuple[str, tuple[str, bool] | None]:
        comp, var = item["component"]["name"], item["variable"]["name"]
        table = self._variables()
        if item.get("attributeType", "Actual") != "Actual":
            return "NotSupportedAttributeType", None
        if not any(k[0] == comp for k in table):
            return "UnknownComponent", None
        if (comp, var) not in table:
            return "UnknownVariable", None
        return "Accepted", table[(comp, var)]

    def _on_GetVariables(self, p: dict[str, Any]) -> dict[str, Any]:
        results = []
        for item in p["getVariableData"]:
            status, found = self._variable_status(item)
            r: dict[str, Any] = {
                "attributeStatus": status,
                "component": item["component"],
                "variable": item["variable"],
            }
            if found is not None:
                r["attributeValue"] = found[0]
            results.append(r)
        return {"getVariableResult": results}

    def _on_SetVariables(self, p: dict[str, Any]) -> dict[str, Any]:
        results = []
        for item in p["setVariableData"]:
            status, found = self._variable_status(item)
            if found is not None:
                var, value = item["variable"]["name"], str(item["attributeValue"])
                ok = not found[1]
                try:
                    if ok and var == "TxUpdatedInterval":
                        ok = self._set_interval(value)
                    elif ok and var == "TxUpdatedMeasurands":
                        ok = self._set_measurands(value)
                    elif ok and var == "HeartbeatInterval":
                        self.heartbeat_s = float(value) or self.heartbeat_s
                except ValueError:
                    ok = False
                status = "Accepted" if ok else "Rejected"
            results.append(
                {
                    "attributeStatus": status,
                    "component": item["component"],
                    "variable": item["variable"],
                }
            )
        return {"setVariableResult": results}

    def _install(self, connector: int, raw: dict[str, Any]) -> str | None:
        """Install a profile; return None when accepted, else why not."""
        if self.spec.rejects_profiles:
            return "station configured to reject"
        try:
            profile = (
                profile_from_v16(connector, raw) if self.v16 else profile_from_v201(connector, raw)
            )
            if profile.stack_level > self.spec.max_stack_level:
                raise ProfileError("stackLevel above the maximum")
            if len(profile.schedule.periods) > self.spec.max_periods:
                raise ProfileError("too many periods")
            if self.spec.power_unit_only and profile.schedule.rate_unit != "W":
                raise ProfileError("only W schedules are supported")
            c = self.connectors.get(connector)
            active = None if c is None or not c.in_tx else (c.tx_id or "local")
            if profile.purpose is Purpose.TX and c is not None and c.in_tx and c.tx_id is None:
                profile = _without_tx(profile)
            self.advance()
            self.store.install(
                profile, active_tx=active, max_connector=max(self.connectors), v201=not self.v16
            )
        except ProfileError as e:
            return str(e)
        except (ValueError, KeyError) as e:
            return f"bad profile: {e}"
        self._refresh()
        return None

    def _on_SetChargingProfile(self, p: dict[str, Any]) -> Any:
        if self.spec.never_answers_profiles:
            return _NO_ANSWER
        why: str | None
        if self.v16:
            why = self._install(int(p["connectorId"]), p["csChargingProfiles"])
            return {"status": "Accepted" if why is None else "Rejected"}
        raw = p["chargingProfile"]
        if raw.get("chargingProfilePurpose") == "ChargingStationExternalConstraints":
            why = "ChargingStationExternalConstraints is set by the station only"
        else:
            why = self._install(int(p["evseId"]), raw)
        if why is None:
            return {"status": "Accepted"}
        return {"status": "Rejected", "statusInfo": {"reasonCode": "InvalidValue"}}

    def _on_ClearChargingProfile(self, p: dict[str, Any]) -> dict[str, Any]:
        self.advance()
        if self.v16:
            purpose = p.get("chargingProfilePurpose")
            found = self.store.clear(
                profile_id=p.get("id"),
                connector=p.get("connectorId"),
                purpose=purpose_from_ocpp(purpose) if purpose else None,
                stack_level=p.get("stackLevel"),
            )
        else:
            crit = p.get("chargingProfileCriteria") or {}
            purpose = crit.get("chargingProfilePurpose")
            found = self.store.clear(
                profile_id=p.get("chargingProfileId"),
                connector=crit.get("evseId"),
                purpose=purpose_from_ocpp(purpose) if purpose else None,
                stack_level=crit.get("stackLevel"),
            )
        self._refresh()
        return {"status": "Accepted" if found else "Unknown"}

    def composite_schedule(
        self, n: int, duration_s: int, unit: str = "A"
    ) -> tuple[datetime, list[dict[str, Any]]]:
        now = self.fleet.clock().replace(microsecond=0)
        if n == 0:
            spec = self.spec.connectors[0]
            ctx = ConnectorContext(spec.voltage_v, 3 if len(spec.phases) == 3 else 1)
            maximum = sum(c.max_current_a for c in self.spec.connectors)
        else:
            c = self.connector(n)
            ctx = self._context(c)
            maximum = c.spec.max_current_a
        if self.spec.ignores_limits:
            periods = [{"startPeriod": 0, "limit": _one_decimal(maximum)}]
            return now, periods
        sched = self.store.composite(n, now, duration_s, ctx, maximum, unit)
        return now, [
            {"startPeriod": q.start_s, "limit": q.limit, "numberPhases": q.number_phases or 3}
            for q in sched
        ]

    def _on_GetCompositeSchedule(self, p: dict[str, Any]) -> dict[str, Any]:
        n = int(p["connectorId"] if self.v16 else p["evseId"])
        if n != 0 and n not in self.connectors:
            return {"status": "Rejected"}
        unit = p.get("chargingRateUnit") or ("W" if self.spec.power_unit_only else "A")
        duration = int(p["duration"])
        start, periods = self.composite_schedule(n, duration, unit)
        if self.v16:
            return {
                "status": "Accepted",
                "connectorId": n,
                "scheduleStart": _iso(start),
                "chargingSchedule": {
                    "duration": duration,
                    "startSchedule": _iso(start),
                    "chargingRateUnit": unit,
                    "chargingSchedulePeriod": periods,
                },
            }
        return {
            "status": "Accepted",
            "schedule": {
                "evseId": n,
                "duration": duration,
                "scheduleStart": _iso(start),
                "chargingRateUnit": unit,
                "chargingSchedulePeriod": periods,
            },
        }

    def _remote_start(self, n: int | None, tag: str, profile: dict[str, Any] | None) -> bool:
        candidates = [self.connectors[n]] if n in self.connectors else []
        if n is None:
            candidates = sorted(
                (c for c in self.connectors.values() if not c.in_tx and c.available),
                key=lambda c: c.ev is None,
            )
        if not candidates or candidates[0].in_tx or not candidates[0].available:
            return False
        c = candidates[0]
        if c.ev is None:
            c.remote_tag = tag
        else:
            self._start_tx(c, tag, remote=True)
            if profile is not None:
                self._install(c.spec.id, profile)
        return True

    def _on_RemoteStartTransaction(self, p: dict[str, Any]) -> dict[str, Any]:
        ok = self._remote_start(p.get("connectorId"), p["idTag"], p.get("chargingProfile"))
        return {"status": "Accepted" if ok else "Rejected"}

    def _on_RequestStartTransaction(self, p: dict[str, Any]) -> dict[str, Any]:
        ok = self._remote_start(p.get("evseId"), p["idToken"]["idToken"], p.get("chargingProfile"))
        return {"status": "Accepted" if ok else "Rejected"}

    def _remote_stop(self, tx: str) -> bool:
        for c in self.connectors.values():
            if c.in_tx and c.tx_id == tx:
                self._stop_tx(c, "Remote", trigger="RemoteStop")
                return True
        return False

    def _on_RemoteStopTransaction(self, p: dict[str, Any]) -> dict[str, Any]:
        return {"status": "Accepted" if self._remote_stop(str(p["transactionId"])) else "Rejected"}

    def _on_RequestStopTransaction(self, p: dict[str, Any]) -> dict[str, Any]:
        return {"status": "Accepted" if self._remote_stop(str(p["transactionId"])) else "Rejected"}

    def _on_TriggerMessage(self, p: dict[str, Any]) -> dict[str, Any]:
        what = p["requestedMessage"]
        n = p.get("connectorId") if self.v16 else (p.get("evse") or {}).get("id")
        if n is not None and n != 0 and n not in self.connectors:
            return {"status": "Rejected"}
        only = n or None
        if what == "MeterValues":
            self._send_samples("Trigger", only=only)
        elif what == "StatusNotification":
            self._refresh()
            for c in self.connectors.values():
                if only is None or c.spec.id == only:
                    self._notify_status(c, self._status(c))
        elif what == "Heartbeat":
            self._send_later("Heartbeat", {})
        elif what == "BootNotification":
            self.booted = False
            self._next_boot = 0.0
        else:
            return {"status": "NotImplemented"}
        return {"status": "Accepted"}

    def _on_Reset(self, p: dict[str, Any]) -> dict[str, Any]:
        kind = p["type"]
        reason = {"Hard": "HardReset", "Soft": "SoftReset"}.get(kind, "ImmediateReset")
        if not self.v16 and kind == "OnIdle" and any(c.in_tx for c in self.connectors.values()):
            return {"status": "Scheduled"}
        for c in self.connectors.values():
            self._stop_tx(c, reason, trigger="ResetCommand")
        self._close_after_flush = True
        return {"status": "Accepted"}

    def _on_ChangeAvailability(self, p: dict[str, Any]) -> dict[str, Any]:
        if self.v16:
            n, up = int(p["connectorId"]), p["type"] == "Operative"
        else:
            n, up = int((p.get("evse") or {}).get("id", 0)), p["operationalStatus"] == "Operative"
        targets = list(self.connectors.values()) if n == 0 else [self.connector(n)]
        busy = any(c.in_tx for c in targets) and not up
        for c in targets:
            if not c.in_tx:
                c.available = up
        self._refresh()
        return {"status": "Scheduled" if busy else "Accepted"}

    # --- connection loop ----------------------------------------------------------

    def _boot_payload(self) -> dict[str, Any]:
        if self.v16:
            return {
                "chargePointVendor": self.spec.vendor,
                "chargePointModel": self.spec.model,
                "chargePointSerialNumber": self.spec.id[:25],
                "firmwareVersion": "sim-1",
            }
        return {
            "reason": "PowerUp",
            "chargingStation": {
                "vendorName": self.spec.vendor,
                "model": self.spec.model,
                "serialNumber": self.spec.id[:25],
                "firmwareVersion": "sim-1",
            },
        }

    def _on_boot(self, result: dict[str, Any]) -> None:
        interval = float(result.get("interval") or 0)
        now = self._loop.time()
        if result.get("status") == "Accepted":
            self.booted = True
            self.fleet.stats.boots_accepted += 1
            self.heartbeat_s = interval or self.heartbeat_s
            self._next_heartbeat = now + self.heartbeat_s
            self.advance()
            for c in self.connectors.values():
                c.reported = self._status(c)
                self._notify_status(c, c.reported)
            self._arm_sampling()
            self.booted_event.set()
        else:
            self._next_boot = now + (interval or 10.0)

    def _arm_sampling(self, reset: bool = False) -> None:
        now = self._loop.time()
        busy = any(c.in_tx for c in self.connectors.values())
        if busy and self.meter_interval_s > 0 and (reset or self._next_sample == math.inf):
            self._next_sample = now + self._wall(self.meter_interval_s)
        elif not busy or self.meter_interval_s <= 0:
            self._next_sample = math.inf
        charging = any(c.ev is not None and c.in_tx for c in self.connectors.values())
        if charging and (reset or self._next_tick == math.inf):
            self._next_tick = now + self._wall(PHYSICS_TICK_S)
        elif not charging:
            self._next_tick = math.inf

    def _next_deadline(self) -> float:
        times = [self._next_heartbeat, self._next_sample, self._next_tick]
        if self._pending is not None:
            times.append(self._pending[2] + self.fleet.call_timeout_s)
        if not self.booted and self._pending is None:
            times.append(self._next_boot)
        return min(times)

    def _run_timers(self) -> None:
        now = self._loop.time()
        if self._pending is not None and now >= self._pending[2] + self.fleet.call_timeout_s:
            self.fleet.stats.call_timeouts += 1
            log.info("%s: %s timed out", self.spec.id, self._pending[1].action)
            if self._pending[1].action == "BootNotification":
                self._next_boot = now + 10.0
            self._pending = None
        if now >= self._next_sample:
            self._next_sample = now + self._wall(self.meter_interval_s)
            self._send_samples()
            self._arm_sampling()
        if now >= self._next_tick:
            self._next_tick = now + self._wall(PHYSICS_TICK_S)
            self._refresh()
            self._arm_sampling()
        if self.booted and now >= self._next_heartbeat:
            self._next_heartbeat = now + self.heartbeat_s
            if now - self._last_sent >= self.heartbeat_s * 0.5 or not self._outbox:
                self._send_later("Heartbeat", {})

    async def _send_frame(self, ws: ClientConnection, frame: list[Any]) -> None:
        text = json.dumps(frame, separators=(",", ":"))
        await ws.send(text)
        for tap in self.fleet.frame_taps:
            tap(self.spec.id, "out", text)
        self.fleet.stats.frames_sent += 1
        self._last_sent = self._loop.time()

    async def _flush(self, ws: ClientConnection) -> None:
        """Send the next CALL if none is outstanding (one at a time, boot first)."""
        while self._pending is None:
            now = self._loop.time()
            if not self.booted:
                if now < self._next_boot:
                    return
                item = _Outgoing("BootNotification", self._boot_payload(), self._on_boot)
                self._next_boot = math.inf
            elif self._outbox:
                item = self._outbox.popleft()
            else:
                if self._close_after_flush:
                    self._close_after_flush = False
                    await ws.close()
                return
            payload = item.payload() if callable(item.payload) else item.payload
            if payload is None:
                continue
            msg_id = str(next(self._ids))
            self._pending = (msg_id, item, now)
            self.fleet.stats.calls_sent += 1
            self.fleet.stats.by_action[item.action] += 1
            await self._send_frame(ws, [2, msg_id, item.action, payload])

    async def _on_frame(self, ws: ClientConnection, raw: str | bytes) -> None:
        for tap in self.fleet.frame_taps:
            tap(self.spec.id, "in", raw)
        self.fleet.stats.frames_received += 1
        try:
            frame = json.loads(raw)
            kind, msg_id = frame[0], frame[1]
        except (ValueError, TypeError, IndexError, KeyError):
            log.warning("%s: unreadable frame %.80r", self.spec.id, raw)
            return
        if kind == 2:
            await self._answer(ws, frame)
        elif kind in (3, 4):
            pending = self._pending
            if pending is None or pending[0] != msg_id:
                log.info("%s: result for unknown id %r", self.spec.id, msg_id)
                return
            self._pending = None
            self.fleet.stats.record_latency(self._loop.time() - pending[2])
            if kind == 3:
                self.fleet.stats.call_results += 1
                result = frame[2] if len(frame) > 2 else None
                if pending[1].on_result is not None and isinstance(result, dict):
                    try:
                        pending[1].on_result(result)
                    except (KeyError, TypeError, ValueError) as e:
                        log.warning("%s: bad %s result: %s", self.spec.id, pending[1].action, e)
            else:
                self.fleet.stats.call_errors += 1
                log.info("%s: %s → CALLERROR %s", self.spec.id, pending[1].action, frame[2:4])
                if pending[1].action == "BootNotification":
                    self._next_boot = self._loop.time() + 10.0

    async def _answer(self, ws: ClientConnection, frame: list[Any]) -> None:
        self.fleet.stats.calls_received += 1
        msg_id = frame[1]
        try:
            if len(frame) != 4 or not isinstance(frame[2], str) or not isinstance(frame[3], dict):
                code = "FormationViolation" if self.v16 else "FormatViolation"
                raise CallError(code, "a CALL is [2, id, action, {payload}]")
            reply = self.handle_call(frame[2], frame[3])
        except CallError as e:
            await self._send_frame(ws, [4, msg_id, e.code, e.description, {}])
            return
        except Exception:
            # a bug in a handler must not kill the station: answer as a station would
            log.exception("%s: %s failed", self.spec.id, frame[2])
            await self._send_frame(ws, [4, msg_id, "InternalError", "handler failed", {}])
            return
        if reply is not _NO_ANSWER:
            await self._send_frame(ws, [3, msg_id, reply])

    async def _session(self, ws: ClientConnection) -> None:
        self.booted = False
        self._pending = None
        self._next_boot = 0.0
        self._next_heartbeat = math.inf
        while True:
            await self._flush(ws)
            deadline = self._next_deadline()
            try:
                async with asyncio.timeout_at(None if math.isinf(deadline) else deadline) as cm:
                    self._timeout = cm
                    raw: str | bytes | None = await ws.recv()
            except TimeoutError:
                raw = None
            finally:
                self._timeout = None
            if raw is not None:
                await self._on_frame(ws, raw)
            self._run_timers()

    async def run(self) -> None:
        """Connect, boot and serve until stopped; reconnect with backoff on loss."""
        fleet = self.fleet
        url = f"{fleet.url.rstrip('/')}/{quote(self.spec.id, safe='')}"
        headers = {}
        if self.spec.password is not None:
            token = base64.b64encode(f"{self.spec.id}:{self.spec.password}".encode()).decode()
            headers["Authorization"] = f"Basic {token}"
        tls = fleet.tls_for(self.spec)
        backoff = 1.0
        while not self._stopping:
            try:
                async with fleet.connect_slots:
                    ws = await connect(
                        url,
                        ssl=tls,
                        subprotocols=[SUBPROTOCOL[self.spec.version]],  # type: ignore[list-item]
                        additional_headers=headers,
                        compression=None,
                        ping_interval=fleet.ping_interval_s,
                        proxy=None,
                        open_timeout=fleet.open_timeout_s,
                        max_queue=4,
                    )
            except (OSError, InvalidHandshake, InvalidURI, TimeoutError) as e:
                fleet.stats.connect_failures += 1
                self.last_error = f"{type(e).__name__}: {e}"
                await asyncio.sleep(backoff * (0.5 + fleet.jitter()))
                backoff = min(backoff * 2, fleet.max_backoff_s)
                continue
            if ws.subprotocol != SUBPROTOCOL[self.spec.version]:
                fleet.stats.connect_failures += 1
                self.last_error = f"server chose sub-protocol {ws.subprotocol!r}"
                await ws.close()
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, fleet.max_backoff_s)
                continue
            fleet.stats.connects += 1
            backoff = 1.0
            self.ws = ws
            try:
                await self._session(ws)
            except ConnectionClosed:
                pass
            finally:
                self.ws = None
                self.booted = False
                self._pending = None
                self._timeout = None
                fleet.stats.disconnects += 1
                if self._stopping:
                    ws.transport.abort()  # cancelled mid-session: drop the socket now
            if not self._stopping:
                await asyncio.sleep(backoff * (0.5 + fleet.jitter()))

    last_error: str | None = None


def _without_tx(profile: Profile) -> Profile:
    """A TxProfile for a transaction whose id the server has not given yet."""
    return replace(profile, transaction_id=None)


class _SimClock:
    """Simulated UTC time running ``speed`` times faster than the wall clock."""

    def __init__(self, speed: float, start: datetime | None = None) -> None:
        self.speed = speed
        self.start = start or datetime.now(UTC)
        self.t0 = time.monotonic()

    def __call__(self) -> datetime:
        return self.start + timedelta(seconds=(time.monotonic() - self.t0) * self.speed)


class StationFleet:
    """Many simulated stations in one event loop.

    ``url`` is the central system's OCPP endpoint (``ws://host:port/ocpp``);
    each station connects to ``{url}/{station_id}``.
    """

    def __init__(
        self,
        url: str,
        stations: Sequence[SimStationSpec],
        *,
        clock: Callable[[], datetime] | None = None,
        speed: float = 1.0,
        connect_concurrency: int = 100,
        call_timeout_s: float = 30.0,
        ping_interval_s: float | None = None,
        open_timeout_s: float = 10.0,
        max_backoff_s: float = 30.0,
        server_ca: str | None = None,
    ) -> None:
        """``server_ca``: the certificate (PEM) that signed the central system's,
        for a ``wss://`` url (default: the system's trusted CAs)."""
        if speed <= 0:
            raise ValueError("speed must be > 0")
        ids = [s.id for s in stations]
        if len(set(ids)) != len(ids):
            raise ValueError("station ids repeat")
        self.url = url
        self.speed = speed
        self.clock: Callable[[], datetime] = clock or _SimClock(speed)
        self.call_timeout_s = call_timeout_s
        self.ping_interval_s = ping_interval_s
        self.open_timeout_s = open_timeout_s
        self.max_backoff_s = max_backoff_s
        self.stats = FleetStats()
        self.server_ca = server_ca
        self.frame_taps: list[FrameTap] = []
        """Called on every frame of every station: (station id, "in" or "out",
        frame), when read (before it is handled) and after it is written."""
        self._concurrency = connect_concurrency
        self.connect_slots = asyncio.Semaphore(connect_concurrency)
        self._jitter = itertools.cycle([i / 16 for i in range(16)])
        self.stations: dict[str, SimStation] = {s.id: SimStation(s, self) for s in stations}

    def tls_for(self, spec: SimStationSpec) -> ssl.SSLContext | None:
        """The station's TLS context on a ``wss://`` url (its certificate, if any)."""
        if not self.url.startswith("wss://"):
            return None
        ctx = ssl.create_default_context(cafile=self.server_ca)
        if spec.client_cert is not None and spec.client_key is not None:
            ctx.load_cert_chain(spec.client_cert, spec.client_key)
        return ctx

    def jitter(self) -> float:
        return next(self._jitter)

    async def start(self) -> None:
        """Start every station's task (connections open in waves of ``connect_concurrency``)."""
        for st in self.stations.values():
            if st.task is None:
                st._stopping = False
                st.task = asyncio.create_task(st.run(), name=f"station {st.spec.id}")

    async def wait_booted(self, timeout_s: float = 30.0) -> int:
        """Wait until every station booted (or the timeout); return how many did."""
        waits = [st.booted_event.wait() for st in self.stations.values()]
        try:
            async with asyncio.timeout(timeout_s):
                await asyncio.gather(*waits)
        except TimeoutError:
            pass
        return sum(1 for st in self.stations.values() if st.booted)

    async def stop(self, timeout_s: float = 10.0) -> None:
        """Close every connection (close handshake), then end the tasks."""
        for st in self.stations.values():
            st._stopping = True
        closing = [st.ws.close() for st in self.stations.values() if st.ws is not None]
        await asyncio.gather(*closing, return_exceptions=True)
        tasks = [st.task for st in self.stations.values() if st.task is not None]
        if tasks:
            # those still connecting or waiting to reconnect are cancelled
            _, pending = await asyncio.wait(tasks, timeout=min(timeout_s, 0.5))
            for t in pending:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        for st in self.stations.values():
            st.task = None

    async def __aenter__(self) -> StationFleet:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # --- per connector ------------------------------------------------------------

    def _find(self, connector_id: str) -> tuple[SimStation, int]:
        station_id, _, n = connector_id.rpartition("/")
        if station_id not in self.stations or not n.isdigit():
            raise KeyError(f"unknown connector {connector_id!r}")
        return self.stations[station_id], int(n)

    def station(self, station_id: str) -> SimStation:
        return self.stations[station_id]

    def plug_in(
        self,
        connector_id: str,
        ev: EvSpec,
        departure: datetime | None = None,
        energy_wh: float | None = None,
        id_tag: str = "SIMTAG",
    ) -> None:
        st, n = self._find(connector_id)
        st.plug_in(n, ev, departure=departure, energy_wh=energy_wh, id_tag=id_tag)

    def unplug(self, connector_id: str) -> None:
        st, n = self._find(connector_id)
        st.unplug(n)

    def set_ev_max_current(self, connector_id: str, amps: float) -> None:
        """The plugged-in EV now takes at most ``amps`` per phase (e.g. its BMS limits it)."""
        st, n = self._find(connector_id)
        c = st.connector(n)
        if c.ev is None:
            raise ValueError(f"{connector_id} has no EV")
        st.advance()  # the time so far at the old acceptance
        c.ev.spec = replace(c.ev.spec, max_current_a=amps)
        st.advance()

    def send_meter_values_now(self, connector_id: str) -> None:
        """Sample the connector now and queue its MeterValues as a periodic sample
        (sent only during a transaction, as periodic samples are)."""
        st, n = self._find(connector_id)
        st.connector(n)  # KeyError for a connector the station does not have
        st._send_samples(only=n)

    def limit_in_force(self, connector_id: str) -> float:
        """Per-phase current the station offers the connector now (A)."""
        st, n = self._find(connector_id)
        st.advance()
        return st.connector(n).limit_a

    def draw(self, connector_id: str) -> dict[str, float]:
        """Current drawn now per line (A)."""
        st, n = self._find(connector_id)
        st.advance()
        return st.connector(n).draw()

    def energy_wh(self, connector_id: str) -> float:
        """The connector's energy register (Wh, only grows)."""
        st, n = self._find(connector_id)
        st.advance()
        return st.connector(n).energy_wh

    def soc(self, connector_id: str) -> float | None:
        st, n = self._find(connector_id)
        st.advance()
        ev = st.connector(n).ev
        return None if ev is None else ev.soc

    def status(self, connector_id: str) -> str:
        st, n = self._find(connector_id)
        st.advance()
        return st._status(st.connector(n))

    def transaction_id(self, connector_id: str) -> str | None:
        st, n = self._find(connector_id)
        return st.connector(n).tx_id if st.connector(n).in_tx else None

    def composite_schedule(
        self, connector_id: str, duration_s: int, unit: str = "A"
    ) -> tuple[datetime, list[dict[str, Any]]]:
        st, n = self._find(connector_id)
        return st.composite_schedule(n, duration_s, unit)

    def latency_summary(self) -> dict[str, float | None]:
        s = self.stats
        return {"p50_s": s.percentile_s(50), "p99_s": s.percentile_s(99)}


def specs_from_site(
    site: Any,
    *,
    version: str = "1.6",
    passwords: Mapping[str, str] | None = None,
    **options: Any,
) -> list[SimStationSpec]:
    """One station per charger of an `optimizer.Site`, connectors as configured.

    ``options`` go to every `SimStationSpec` (e.g. ``meter_interval_s``).
    """
    out = []
    for ch in site.chargers:
        connectors = tuple(
            SimConnectorSpec(
                id=con.id,
                max_current_a=min(con.max_current_a, con.cable_max_current_a or math.inf),
                min_current_a=con.min_current_a,
                phases=tuple(str(p) for p in con.phases),
                voltage_v=site.connector_voltage(con),
            )
            for con in ch.connectors
        )
        pw = (passwords or {}).get(ch.id)
        out.append(SimStationSpec(ch.id, connectors, version=version, password=pw, **options))
    return out


def fleet_from_site(
    site: Any,
    url: str,
    *,
    version: str = "1.6",
    passwords: Mapping[str, str] | None = None,
    clock: Callable[[], datetime] | None = None,
    speed: float = 1.0,
    **options: Any,
) -> StationFleet:
    """A fleet with one simulated station per charger of the site."""
    specs = specs_from_site(site, version=version, passwords=passwords, **options)
    return StationFleet(url, specs, clock=clock, speed=speed)


def generated_specs(
    count: int,
    *,
    connectors: int = 2,
    version: str = "1.6",
    prefix: str = "SIM",
    **options: Any,
) -> list[SimStationSpec]:
    """``count`` identical stations named PREFIX00001… with ``connectors`` 32 A 3-phase each."""
    cons = tuple(SimConnectorSpec(i) for i in range(1, connectors + 1))
    width = max(5, len(str(count)))
    return [
        SimStationSpec(f"{prefix}{i:0{width}d}", cons, version=version, **options)
        for i in range(1, count + 1)
    ]


__all__ = [
    "CallError",
    "EvSpec",
    "FleetStats",
    "SimConnectorSpec",
    "SimStation",
    "SimStationSpec",
    "StationFleet",
    "fleet_from_site",
    "generated_specs",
    "specs_from_site",
]
