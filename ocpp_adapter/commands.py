"""The commands the central system sends a station, without I/O: each one's
payload for the station's OCPP version (built once the station has booted, from
what it said it can do) and what the station's answer means.

A builder raises `LimitSpecError` when what was asked cannot be sent; the
command is then rejected without a CALL.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from ocpp_adapter.events import (
    ChargingLimitSpec,
    CommandOutcome,
    CommandResult,
    LimitPurpose,
)
from ocpp_adapter.profiles import (
    LimitSpecError,
    OfflinePolicy,
    Schedule,
    charging_profile_16,
    charging_profile_21,
    charging_profile_201,
    clear_profile_16,
    clear_profile_201,
    resolve,
    set_profile_16,
    set_profile_21,
    set_profile_201,
)
from ocpp_adapter.settings import AdapterSettings
from ocpp_adapter.station import Answer, StationSession
from ocpp_adapter.versions import OcppVersion

Payload = dict[str, Any]
Build = Callable[[StationSession], Payload]
"""The station's session → the command's payload for it."""


def _schedule(
    spec: ChargingLimitSpec,
    session: StationSession,
    clock: Callable[[], datetime],
    settings: AdapterSettings,
) -> Schedule:
    return resolve(
        spec,
        session.state.capabilities,
        clock(),
        backdate_s=settings.backdate_s,
        default_max_periods=settings.default_max_periods,
    )


def _offline(settings: AdapterSettings) -> OfflinePolicy:
    return OfflinePolicy(settings.offline_profile_s, settings.randomized_delay_s)


def set_limit(
    spec: ChargingLimitSpec, clock: Callable[[], datetime], settings: AdapterSettings
) -> Build:
    def build(session: StationSession) -> Payload:
        schedule = _schedule(spec, session, clock, settings)
        if session.version is OcppVersion.V16:
            return set_profile_16(spec, schedule)
        if session.version is OcppVersion.V21:
            return set_profile_21(spec, schedule, _offline(settings))
        return set_profile_201(spec, schedule)

    return build


def clear_limit(connector: int, purpose: LimitPurpose) -> Build:
    def build(session: StationSession) -> Payload:
        if session.version is OcppVersion.V16:
            return clear_profile_16(connector, purpose)
        return clear_profile_201(connector, purpose)

    return build


def remote_start(
    connector: int,
    id_tag: str,
    spec: ChargingLimitSpec | None,
    clock: Callable[[], datetime],
    settings: AdapterSettings,
    new_remote_start_id: Callable[[], int],
) -> Build:
    def build(session: StationSession) -> Payload:
        profile: Payload | None = None
        if spec is not None:
            schedule = _schedule(spec, session, clock, settings)
            if session.version is OcppVersion.V16:
                profile = charging_profile_16(spec, schedule, in_remote_start=True)
            elif session.version is OcppVersion.V21:
                profile = charging_profile_21(
                    spec, schedule, _offline(settings), in_remote_start=True
                )
            else:
                profile = charging_profile_201(spec, schedule, in_remote_start=True)
        if session.version is OcppVersion.V16:
            p16: Payload = {"connectorId": connector, "idTag": id_tag}
            if profile is not None:
                p16["chargingProfile"] = profile
            return p16
        p201: Payload = {
            "evseId": connector,
            "remoteStartId": new_remote_start_id(),
            "idToken": {"idToken": id_tag, "type": "Central"},
        }
        if profile is not None:
            p201["chargingProfile"] = profile
        return p201

    return build


def remote_stop(transaction_id: str) -> Build:
    def build(session: StationSession) -> Payload:
        if session.version is OcppVersion.V16:
            try:
                return {"transactionId": int(transaction_id)}
            except ValueError:
                raise LimitSpecError(f"1.6 transaction id {transaction_id!r}") from None
        return {"transactionId": transaction_id}

    return build


def trigger_message(message: str, connector: int | None) -> Build:
    def build(session: StationSession) -> Payload:
        payload: Payload = {"requestedMessage": message}
        if connector is not None:
            if session.version is OcppVersion.V16:
                payload["connectorId"] = connector
            else:
                payload["evse"] = {"id": connector}
        return payload

    return build


def reset(hard: bool) -> Build:
    def build(session: StationSession) -> Payload:
        if session.version is OcppVersion.V16:
            return {"type": "Hard" if hard else "Soft"}
        return {"type": "Immediate" if hard else "OnIdle"}

    return build


def change_availability(connector: int, operative: bool) -> Build:
    status = "Operative" if operative else "Inoperative"

    def build(session: StationSession) -> Payload:
        if session.version is OcppVersion.V16:
            return {"connectorId": connector, "type": status}
        payload: Payload = {"operationalStatus": status}
        if connector:
            payload["evse"] = {"id": connector}
        return payload

    return build


def get_composite_schedule(connector: int, duration_s: int, unit: str | None = None) -> Build:
    def build(session: StationSession) -> Payload:
        key = "connectorId" if session.version is OcppVersion.V16 else "evseId"
        payload: Payload = {key: connector, "duration": duration_s}
        if unit is not None:
            payload["chargingRateUnit"] = unit
        return payload

    return build


def command_result(answer: Answer, rate_limit_backoff_s: float) -> CommandResult:
    """What the station's answer to a command means for the caller."""
    if answer.error is not None:
        if answer.error_code == "RateLimitExceeded":
            return CommandResult(CommandOutcome.RATE_LIMITED, answer.error, rate_limit_backoff_s)
        return CommandResult(CommandOutcome.ERROR, answer.error)
    payload = answer.payload or {}
    status = payload.get("status", "")
    info = payload.get("statusInfo") or {}
    reason = info.get("reasonCode", "")
    if reason == "RateLimitExceeded":
        retry = _seconds(info.get("additionalInfo"))
        return CommandResult(
            CommandOutcome.RATE_LIMITED,
            f"{status}: {reason}",
            retry if retry is not None else rate_limit_backoff_s,
        )
    if status == "Accepted":
        return CommandResult(CommandOutcome.ACCEPTED)
    if status == "Scheduled":
        return CommandResult(CommandOutcome.ACCEPTED, "scheduled")
    return CommandResult(CommandOutcome.REJECTED, f"{status}: {reason}".rstrip(": "))


def _seconds(value: Any) -> float | None:
    try:
        return float(value) if value is not None else None
    except (TypeError, ValueError):
        return None
