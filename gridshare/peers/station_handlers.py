"""A simulated station's answers to the central system's CALLs (1.6 and 2.0.1).

Each handler takes a CALL's payload and returns the reply payload (or
`wire.NO_ANSWER`); it changes the station through the flows of
`HandledStation` (which `station_protocol.StationProtocol` provides) and never
touches the socket.

CALLERRORs follow OCPP-J for both versions: an action the version does not
define → NotImplemented, one it defines that we do not handle → NotSupported,
a malformed payload → FormationViolation (1.6) / FormatViolation (2.0.1).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, Protocol

from gridshare.peers.connectors import Connector, ConnectorBank
from gridshare.peers.limits import purpose_from_ocpp
from gridshare.peers.specs import SimStationSpec
from gridshare.peers.station_messages import Messages
from gridshare.peers.station_settings import StationSettings
from gridshare.peers.wire import NO_ANSWER, CallError, Payload, ResultHook, known_actions

log = logging.getLogger(__name__)


class HandledStation(Protocol):
    """The station state and flows the handlers read and drive."""

    close_after_flush: bool

    @property
    def spec(self) -> SimStationSpec: ...
    @property
    def v16(self) -> bool: ...
    @property
    def msgs(self) -> Messages: ...
    @property
    def bank(self) -> ConnectorBank: ...
    @property
    def connectors(self) -> dict[int, Connector]: ...
    @property
    def settings(self) -> StationSettings: ...

    def connector(self, n: int) -> Connector: ...
    def status(self, c: Connector) -> str: ...
    def advance(self) -> None: ...
    def refresh(self) -> None: ...
    def install(self, connector: int, raw: Payload) -> str | None: ...
    def start_tx(self, c: Connector, id_tag: str, remote: bool = False) -> None: ...
    def stop_tx(self, c: Connector, reason: str, trigger: str) -> None: ...
    def notify_status(self, c: Connector, st: str) -> None: ...
    def send_samples(self, context: str, only: int | None = None) -> None: ...
    def send_later(
        self, action: str, payload: Payload, on_result: ResultHook | None = None
    ) -> None: ...
    def reboot(self) -> None: ...


class CallHandlers:
    """The inbound CALLs one station answers, by action."""

    def __init__(self, station: HandledStation) -> None:
        self.station = station
        settings = station.settings
        self.table: dict[str, Callable[[Payload], Any]] = {
            "GetConfiguration": settings.get_configuration,
            "ChangeConfiguration": settings.change_configuration,
            "GetVariables": settings.get_variables,
            "SetVariables": settings.set_variables,
            "SetChargingProfile": self.set_charging_profile,
            "ClearChargingProfile": self.clear_charging_profile,
            "GetCompositeSchedule": self.get_composite_schedule,
            "UpdateDynamicSchedule": self.update_dynamic_schedule,
            "RemoteStartTransaction": self.remote_start_transaction,
            "RequestStartTransaction": self.request_start_transaction,
            "RemoteStopTransaction": self.remote_stop,
            "RequestStopTransaction": self.remote_stop,
            "TriggerMessage": self.trigger_message,
            "Reset": self.reset,
            "ChangeAvailability": self.change_availability,
        }

    def handle(self, action: str, payload: Payload) -> Any:
        """Answer one CALL: a response payload, `NO_ANSWER`, or raise `CallError`."""
        st = self.station
        log.debug("%s <- %s %s", st.spec.id, action, payload)
        handler = self.table.get(action)
        if handler is None:
            if action in known_actions(st.spec.version):
                raise CallError("NotSupported", f"{action} is not supported")
            raise CallError("NotImplemented", f"unknown action {action}")
        try:
            return handler(payload)
        except (KeyError, TypeError, ValueError, AttributeError) as e:
            code = "FormationViolation" if st.v16 else "FormatViolation"
            raise CallError(code, f"bad {action} payload: {e}") from None

    # --- charging profiles --------------------------------------------------------

    def set_charging_profile(self, p: Payload) -> Any:
        st = self.station
        if st.spec.never_answers_profiles:
            return NO_ANSWER
        why: str | None
        if st.v16:
            why = st.install(int(p["connectorId"]), p["csChargingProfiles"])
            return {"status": "Accepted" if why is None else "Rejected"}
        raw = p["chargingProfile"]
        if raw.get("chargingProfilePurpose") == "ChargingStationExternalConstraints":
            why = "ChargingStationExternalConstraints is set by the station only"
        else:
            why = st.install(int(p["evseId"]), raw)
        if why is None:
            return {"status": "Accepted"}
        return {"status": "Rejected", "statusInfo": {"reasonCode": "InvalidValue"}}

    def clear_charging_profile(self, p: Payload) -> Payload:
        st = self.station
        st.advance()
        if st.v16:
            purpose = p.get("chargingProfilePurpose")
            found = st.bank.store.clear(
                profile_id=p.get("id"),
                connector=p.get("connectorId"),
                purpose=purpose_from_ocpp(purpose) if purpose else None,
                stack_level=p.get("stackLevel"),
            )
        else:
            crit = p.get("chargingProfileCriteria") or {}
            purpose = crit.get("chargingProfilePurpose")
            found = st.bank.store.clear(
                profile_id=p.get("chargingProfileId"),
                connector=crit.get("evseId"),
                purpose=purpose_from_ocpp(purpose) if purpose else None,
                stack_level=crit.get("stackLevel"),
            )
        st.refresh()
        return {"status": "Accepted" if found else "Unknown"}

    def update_dynamic_schedule(self, p: Payload) -> Payload:
        st = self.station
        if st.spec.version != "2.1":
            raise CallError("NotImplemented", "UpdateDynamicSchedule is 2.1's")
        why = st.bank.update_dynamic(int(p["chargingProfileId"]), p["scheduleUpdate"])
        st.refresh()
        if why is None:
            return {"status": "Accepted"}
        return {"status": "Rejected", "statusInfo": {"reasonCode": "InvalidValue"}}

    def get_composite_schedule(self, p: Payload) -> Payload:
        st = self.station
        n = int(p["connectorId"] if st.v16 else p["evseId"])
        if n != 0 and n not in st.connectors:
            return {"status": "Rejected"}
        unit = p.get("chargingRateUnit") or ("W" if st.spec.power_unit_only else "A")
        duration = int(p["duration"])
        start, periods = st.bank.composite_schedule(n, duration, unit)
        return st.msgs.composite_reply(n, duration, unit, start, periods)

    # --- transactions -------------------------------------------------------------

    def _remote_start(self, n: int | None, tag: str, profile: Payload | None) -> bool:
        st = self.station
        candidates = [st.connectors[n]] if n in st.connectors else []
        if n is None:
            candidates = sorted(
                (c for c in st.connectors.values() if not c.in_tx and c.available),
                key=lambda c: c.ev is None,
            )
        if not candidates or candidates[0].in_tx or not candidates[0].available:
            return False
        c = candidates[0]
        if c.ev is None:
            c.remote_tag = tag
        else:
            st.start_tx(c, tag, remote=True)
            if profile is not None:
                st.install(c.spec.id, profile)
        return True

    def remote_start_transaction(self, p: Payload) -> Payload:
        ok = self._remote_start(p.get("connectorId"), p["idTag"], p.get("chargingProfile"))
        return {"status": "Accepted" if ok else "Rejected"}

    def request_start_transaction(self, p: Payload) -> Payload:
        ok = self._remote_start(p.get("evseId"), p["idToken"]["idToken"], p.get("chargingProfile"))
        return {"status": "Accepted" if ok else "Rejected"}

    def remote_stop(self, p: Payload) -> Payload:
        """RemoteStopTransaction (1.6) and RequestStopTransaction (2.0.1)."""
        tx = str(p["transactionId"])
        for c in self.station.connectors.values():
            if c.in_tx and c.tx_id == tx:
                self.station.stop_tx(c, "Remote", trigger="RemoteStop")
                return {"status": "Accepted"}
        return {"status": "Rejected"}

    # --- the station as a whole ---------------------------------------------------

    def trigger_message(self, p: Payload) -> Payload:
        st = self.station
        what = p["requestedMessage"]
        n = p.get("connectorId") if st.v16 else (p.get("evse") or {}).get("id")
        if n is not None and n != 0 and n not in st.connectors:
            return {"status": "Rejected"}
        only = n or None
        if what == "MeterValues":
            st.send_samples("Trigger", only=only)
        elif what == "StatusNotification":
            st.refresh()
            for c in st.connectors.values():
                if only is None or c.spec.id == only:
                    st.notify_status(c, st.status(c))
        elif what == "Heartbeat":
            st.send_later("Heartbeat", {})
        elif what == "BootNotification":
            st.reboot()
        else:
            return {"status": "NotImplemented"}
        return {"status": "Accepted"}

    def reset(self, p: Payload) -> Payload:
        st = self.station
        kind = p["type"]
        reason = {"Hard": "HardReset", "Soft": "SoftReset"}.get(kind, "ImmediateReset")
        if not st.v16 and kind == "OnIdle" and st.bank.in_tx():
            return {"status": "Scheduled"}
        for c in st.connectors.values():
            st.stop_tx(c, reason, trigger="ResetCommand")
        st.close_after_flush = True
        return {"status": "Accepted"}

    def change_availability(self, p: Payload) -> Payload:
        st = self.station
        if st.v16:
            n, up = int(p["connectorId"]), p["type"] == "Operative"
        else:
            n, up = int((p.get("evse") or {}).get("id", 0)), p["operationalStatus"] == "Operative"
        targets = list(st.connectors.values()) if n == 0 else [st.connector(n)]
        busy = any(c.in_tx for c in targets) and not up
        for c in targets:
            if not c.in_tx:
                c.available = up
        st.refresh()
        return {"status": "Scheduled" if busy else "Accepted"}
