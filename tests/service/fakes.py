"""Fakes for the service tests: a recording in-memory station gateway.

`FakeGateway` plays every station: it answers (or not) as each station's
behaviour says, applies what it accepts, and keeps the limit in force per
connector as a station computes it (TxProfile, else the connector's own
TxDefault, else the station's on connector 0, else the connector's maximum),
with every change time-stamped. Snapshots hold the connectors with a running
transaction, or every connector (``count_idle``: an idle connector's limit is
what a car plugging in gets). `worst_excess` measures the sum of limits in
force per family at every change.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum

import numpy as np

from gridshare.rollout import LimitSchedule, LoadModel, schedule_from_spec
from gridshare.service import StationInfo
from ocpp_adapter.events import ChargingLimitSpec, CommandOutcome, CommandResult, LimitPurpose
from optimizer.problem import TimeGrid
from optimizer.site import Site, station_of


class Behaviour(StrEnum):
    ACCEPT = "accept"
    REJECT = "reject"
    SILENT_APPLIES = "silent_applies"
    """Applies the profile but its answer never arrives (timeout)."""
    SILENT_IGNORES = "silent_ignores"
    RATE_LIMITED = "rate_limited"
    ERROR = "error"
    OFFLINE = "offline"
    HANG = "hang"
    """Applies the profile and never answers: the call only ends when cancelled."""


@dataclass
class FakeGateway:
    site: Site
    behaviour: dict[str, Behaviour] = field(default_factory=dict)
    """Station id → behaviour (default: accept)."""
    delay_s: float = 0.0
    retry_after_s: float = 30.0
    tx: dict[str, LimitSchedule] = field(default_factory=dict)
    default: dict[str, float] = field(default_factory=dict)
    """Station → its TxDefault on connector 0."""
    own_default: dict[str, float] = field(default_factory=dict)
    """Connector → its own TxDefault."""
    count_idle: bool = False
    """Snapshots hold every connector, not only those with a transaction."""
    active: set[str] = field(default_factory=set)
    log: list[tuple[float, str, str, ChargingLimitSpec, CommandOutcome]] = field(
        default_factory=list
    )
    snapshots: list[tuple[float, dict[str, LimitSchedule | float]]] = field(default_factory=list)
    cleared: list[tuple[str, int]] = field(default_factory=list)
    in_flight: int = 0
    max_in_flight_per_station: dict[str, int] = field(default_factory=dict)
    _busy: dict[str, int] = field(default_factory=dict)

    def in_force(self, cid: str) -> LimitSchedule | float:
        if cid in self.tx:
            return self.tx[cid]
        if cid in self.own_default:
            return self.own_default[cid]
        sid = station_of(cid)
        if sid in self.default:
            return self.default[sid]
        return self.site.connectors[cid].max_current_a

    def _snapshot(self) -> None:
        cids = self.site.connectors if self.count_idle else self.active
        self.snapshots.append((time.monotonic(), {cid: self.in_force(cid) for cid in sorted(cids)}))

    def start(self, cid: str) -> None:
        self.active.add(cid)
        self.tx.pop(cid, None)
        self._snapshot()

    def stop(self, cid: str) -> None:
        self.active.discard(cid)
        self.tx.pop(cid, None)
        self._snapshot()

    async def set_limit(self, station_id: str, spec: ChargingLimitSpec) -> CommandResult:
        b = self.behaviour.get(station_id, Behaviour.ACCEPT)
        self._busy[station_id] = self._busy.get(station_id, 0) + 1
        self.max_in_flight_per_station[station_id] = max(
            self.max_in_flight_per_station.get(station_id, 0), self._busy[station_id]
        )
        try:
            await asyncio.sleep(self.delay_s)
            if b is Behaviour.HANG:
                self._apply(station_id, spec)
                await asyncio.sleep(3600)
            if b is Behaviour.OFFLINE:
                result = CommandResult(CommandOutcome.NOT_CONNECTED)
            elif b in (Behaviour.ACCEPT, Behaviour.SILENT_APPLIES):
                self._apply(station_id, spec)
                outcome = (
                    CommandOutcome.ACCEPTED if b is Behaviour.ACCEPT else CommandOutcome.TIMEOUT
                )
                result = CommandResult(outcome)
            elif b is Behaviour.REJECT:
                result = CommandResult(CommandOutcome.REJECTED)
            elif b is Behaviour.RATE_LIMITED:
                result = CommandResult(
                    CommandOutcome.RATE_LIMITED, retry_after_s=self.retry_after_s
                )
            elif b is Behaviour.ERROR:
                result = CommandResult(CommandOutcome.ERROR, "InternalError")
            else:
                result = CommandResult(CommandOutcome.TIMEOUT)
            self.log.append((time.monotonic(), station_id, spec.purpose, spec, result.outcome))
            return result
        finally:
            self._busy[station_id] -= 1

    def _apply(self, station_id: str, spec: ChargingLimitSpec) -> None:
        if spec.purpose is LimitPurpose.TX:
            self.tx[f"{station_id}/{spec.connector}"] = schedule_from_spec(spec)
        elif spec.purpose is LimitPurpose.TX_DEFAULT and spec.connector > 0:
            self.own_default[f"{station_id}/{spec.connector}"] = spec.periods[0].limit_a
        elif spec.purpose is LimitPurpose.TX_DEFAULT:
            self.default[station_id] = spec.periods[0].limit_a
        self._snapshot()

    async def clear_limit(
        self, station_id: str, connector: int, purpose: LimitPurpose = LimitPurpose.TX
    ) -> CommandResult:
        self.cleared.append((station_id, connector))
        self.tx.pop(f"{station_id}/{connector}", None)
        return CommandResult(CommandOutcome.ACCEPTED)

    # --- operator commands: recorded and accepted (offline stations: not connected) ---

    commands: list[tuple[str, str, tuple[object, ...]]] = field(default_factory=list)

    def _command(self, station_id: str, name: str, *args: object) -> CommandResult:
        self.commands.append((station_id, name, args))
        if self.behaviour.get(station_id) is Behaviour.OFFLINE:
            return CommandResult(CommandOutcome.NOT_CONNECTED)
        return CommandResult(CommandOutcome.ACCEPTED)

    def stations(self) -> list[StationInfo]:
        return [
            StationInfo(
                ch.id,
                connected=self.behaviour.get(ch.id) is not Behaviour.OFFLINE,
                protocol="ocpp1.6",
                vendor="fake",
                model="recording",
            )
            for ch in self.site.chargers
        ]

    async def remote_start(
        self,
        station_id: str,
        connector: int,
        id_tag: str,
        spec: ChargingLimitSpec | None = None,
    ) -> CommandResult:
        return self._command(station_id, "remote_start", connector, id_tag)

    async def remote_stop(self, station_id: str, transaction_id: str) -> CommandResult:
        return self._command(station_id, "remote_stop", transaction_id)

    async def trigger_message(
        self, station_id: str, message: str, connector: int | None = None
    ) -> CommandResult:
        return self._command(station_id, "trigger_message", message, connector)

    async def reset(self, station_id: str, hard: bool = False) -> CommandResult:
        return self._command(station_id, "reset", hard)

    async def change_availability(
        self, station_id: str, connector: int, operative: bool
    ) -> CommandResult:
        return self._command(station_id, "change_availability", connector, operative)

    def sent_to(self, station_id: str) -> list[ChargingLimitSpec]:
        return [spec for _, sid, _, spec, _ in self.log if sid == station_id]


def loads(
    model: LoadModel, grid: TimeGrid, in_force: Mapping[str, LimitSchedule | float]
) -> np.ndarray:
    arrays = {
        cid: v.on(grid) if isinstance(v, LimitSchedule) else np.full(grid.slots, float(v))
        for cid, v in in_force.items()
    }
    return model.load(arrays, grid.slots)


def worst_excess(
    gw: FakeGateway,
    model: LoadModel,
    grid: TimeGrid,
    cap: np.ndarray,
    allowance: np.ndarray | None = None,
) -> float:
    """Largest amount by which any snapshot's limits in force exceed capacity
    (or ``allowance``, the load that was there before, where that was higher)."""
    bound = cap if allowance is None else np.maximum(cap, allowance)
    worst = 0.0
    for _, snap in gw.snapshots:
        over = loads(model, grid, snap) - bound
        worst = max(worst, float(np.max(over, initial=0.0)))
    return worst
