"""How `CentralSystem.set_limit` sends a 2.1 transaction's limit as a Dynamic
profile: installed once per transaction (SetChargingProfile, kind Dynamic),
then each new limit as ``UpdateDynamicSchedule`` (`ocpp_adapter.dynamic`).

The rollout does not know: it still calls ``set_limit`` with the plan's
schedule, lowerings first; this maps the call. A station that refuses the
Dynamic profile where it takes an Absolute one gets Absolute profiles from
then on; an update the station refuses (it lost the profile, e.g. after a
reboot) re-installs it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime
from typing import Any, Protocol

from ocpp_adapter import dynamic
from ocpp_adapter.commands import Build
from ocpp_adapter.events import ChargingLimitSpec, CommandOutcome, CommandResult
from ocpp_adapter.profiles import resolve
from ocpp_adapter.settings import AdapterSettings
from ocpp_adapter.station import StationSession
from ocpp_adapter.versions import OcppVersion

log = logging.getLogger(__name__)


class Command(Protocol):
    def __call__(
        self, station_id: str, action: str, build: Build, *, idempotent: bool
    ) -> Awaitable[tuple[CommandResult, dict[str, Any] | None]]: ...


def policy(settings: AdapterSettings) -> dynamic.DynamicPolicy:
    assert settings.offline_profile_s is not None
    return dynamic.DynamicPolicy(settings.dyn_update_interval_s, settings.offline_profile_s)


def wanted(session: StationSession, spec: ChargingLimitSpec, settings: AdapterSettings) -> bool:
    """Does ``spec`` go to this station as a Dynamic profile?"""
    return (
        session.version is OcppVersion.V21
        and settings.dynamic_profiles
        and settings.offline_profile_s is not None
        and not session.state.dynamic_refused
        and dynamic.applies(spec)
    )


async def send(
    command: Command,
    session: StationSession,
    spec: ChargingLimitSpec,
    clock: Callable[[], datetime],
    settings: AdapterSettings,
) -> CommandResult | None:
    """Update or install; None: the station refused the Dynamic profile, send an Absolute one."""
    pid = dynamic.tx_profile_id(spec.connector)
    profiles = session.state.dynamic
    entry = profiles.get(pid)
    if entry is not None and entry.transaction_id == spec.transaction_id:
        result = await _update(command, session, entry, spec, clock, settings)
        if result.outcome is not CommandOutcome.REJECTED:
            return result
        log.info(
            "%r: dynamic profile %d refused an update; installed again", session.station_id, pid
        )
    pol = policy(settings)
    earlier = entry.candidates if entry is not None else []
    # until the station answers, a pull gets the lowest of what may be in force
    new = dynamic.DynamicProfile(pid, spec.connector, spec.transaction_id, pol, [*earlier, spec])
    profiles[pid] = new

    built: list[dict[str, Any]] = []

    def build(s: StationSession) -> dict[str, Any]:
        now = clock()
        schedule = resolve(
            spec,
            s.state.capabilities,
            now,
            backdate_s=settings.backdate_s,
            default_max_periods=settings.default_max_periods,
        )
        built.append(payload := dynamic.set_dynamic_profile(spec, schedule, now, pol))
        return payload

    result, _ = await command(session.station_id, "SetChargingProfile", build, idempotent=True)
    if result.outcome is CommandOutcome.ACCEPTED:
        new.candidates = [spec]
        [sched] = built[-1]["chargingProfile"]["chargingSchedule"]
        [period] = sched["chargingSchedulePeriod"]
        new.sent = {k: period[k] for k in ("limit", "limit_L2", "limit_L3")}
        return result
    if result.outcome is CommandOutcome.REJECTED:
        if profiles.get(pid) is new:
            del profiles[pid]
        return None
    return result


def refused(session: StationSession) -> None:
    """The station took an Absolute profile where it refused a Dynamic one."""
    if not session.state.dynamic_refused:
        log.info("%r: refuses Dynamic profiles; it gets Absolute ones", session.station_id)
    session.state.dynamic_refused = True


def forget(session: StationSession, connector: int) -> None:
    """Our TxProfile on ``connector`` was cleared."""
    session.state.dynamic.pop(dynamic.tx_profile_id(connector), None)


async def _update(
    command: Command,
    session: StationSession,
    entry: dynamic.DynamicProfile,
    spec: ChargingLimitSpec,
    clock: Callable[[], datetime],
    settings: AdapterSettings,
) -> CommandResult:
    entry.candidates.append(spec)
    built: list[dict[str, float]] = []

    def build(s: StationSession) -> dict[str, Any]:
        update = dynamic.lowest_update(
            [spec], s.state.capabilities, clock(), entry.policy.horizon_s, settings.backdate_s
        )
        built.append(update)
        return dynamic.update_dynamic_schedule(entry.profile_id, update)

    result, _ = await command(session.station_id, "UpdateDynamicSchedule", build, idempotent=True)
    if result.outcome is CommandOutcome.ACCEPTED:
        entry.candidates = [spec]
        entry.sent = built[-1]
    elif result.outcome is CommandOutcome.REJECTED:
        entry.candidates.remove(spec)
    return result


class DynamicKeeper:
    """Pushes a lowering that came into a Dynamic profile's window (a cut ahead
    getting near) to a station that has not pulled it: safety must not rest on
    the station's pulls alone. Checks every half ``dynUpdateInterval``."""

    def __init__(
        self,
        command: Command,
        sessions: Mapping[str, StationSession],
        clock: Callable[[], datetime],
        settings: AdapterSettings,
    ) -> None:
        self.command, self.sessions, self.clock, self.settings = command, sessions, clock, settings
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self.settings.dynamic_profiles and self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(max(0.5, self.settings.dyn_update_interval_s / 2))
            await self.check()

    async def check(self) -> int:
        """Push every lowering due now; how many were pushed."""
        pushes = []
        for session in list(self.sessions.values()):
            for entry in list(session.state.dynamic.values()):
                due = dynamic.lowering_due(
                    entry, session.state.capabilities, self.clock(), self.settings.backdate_s
                )
                if due is not None:
                    pushes.append(self._push(session, entry, due))
        await asyncio.gather(*pushes)
        return len(pushes)

    async def _push(
        self, session: StationSession, entry: dynamic.DynamicProfile, update: dict[str, float]
    ) -> None:
        payload = dynamic.update_dynamic_schedule(entry.profile_id, update)
        result, _ = await self.command(
            session.station_id, "UpdateDynamicSchedule", lambda s: payload, idempotent=True
        )
        if result.outcome is CommandOutcome.ACCEPTED:
            entry.sent = update
        elif (
            result.outcome is CommandOutcome.REJECTED
            and session.state.dynamic.get(entry.profile_id) is entry
        ):
            # the profile is gone at the station (its transaction ended)
            del session.state.dynamic[entry.profile_id]
