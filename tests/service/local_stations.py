"""In-process stations behind the service's gateway interface, on a clock the
test drives: cars arrive, draw what the limit in force allows (the transaction's
profile, else the station's TxDefault), and send meter values. Fast and
deterministic; the OCPP path itself is covered by tests/e2e."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from gridshare.rollout import LimitSchedule, schedule_from_spec
from gridshare.service import EventSink, StationInfo
from ocpp_adapter.events import (
    ChargingLimitSpec,
    CommandOutcome,
    CommandResult,
    LimitPurpose,
    MeterReading,
    SessionEnded,
    SessionStarted,
    StationBooted,
    StationConnected,
)
from optimizer.site import ConnectorInfo, Site

METER_INTERVAL_S = 30.0
"""Simulated seconds between two meter values of a connector."""


@dataclass
class Car:
    battery_kwh: float
    soc: float
    max_a: float
    phases: int
    arrives: datetime
    departs: datetime
    id_tag: str


@dataclass
class Port:
    info: ConnectorInfo
    car: Car | None = None
    tx: str | None = None
    profile: LimitSchedule | None = None
    drawn_a: float = 0.0
    register_wh: float = 0.0
    last_meter: datetime | None = None
    session_wh: float = 0.0


@dataclass
class LocalStations:
    """Every station of the site, simulated in-process behind the gateway interface."""

    site: Site
    sink: EventSink
    clock: Callable[[], datetime]
    cars: list[tuple[str, Car]]
    ports: dict[str, Port] = field(default_factory=dict)
    defaults: dict[str, float] = field(default_factory=dict)
    sent: int = 0
    finished: list[tuple[str, float]] = field(default_factory=list)
    commands: list[tuple[str, str, tuple[Any, ...]]] = field(default_factory=list)
    """(station, command, arguments) of every operator command received."""
    unavailable: set[str] = field(default_factory=set)
    """Connectors (or ``STATION/0``) set inoperative."""
    _tx_counter: int = 0

    def __post_init__(self) -> None:
        self.ports = {cid: Port(info) for cid, info in self.site.connectors.items()}
        self.cars.sort(key=lambda x: x[1].arrives)

    @property
    def port(self) -> int:
        return 0

    async def start(self) -> None:
        now = self.clock()
        for ch in self.site.chargers:
            await self.sink(StationConnected(ch.id, "ocpp1.6", now))
            await self.sink(StationBooted(ch.id, "gridshare", "demo-station", now))

    async def stop(self) -> None:
        return None

    async def set_limit(self, station_id: str, spec: ChargingLimitSpec) -> CommandResult:
        self.sent += 1
        if spec.purpose is LimitPurpose.TX_DEFAULT:
            self.defaults[station_id] = spec.periods[0].limit_a
        elif spec.purpose is LimitPurpose.TX:
            port = self.ports.get(f"{station_id}/{spec.connector}")
            if port is None or port.tx != spec.transaction_id:
                return CommandResult(CommandOutcome.REJECTED, "no such transaction")
            port.profile = schedule_from_spec(spec)
        return CommandResult(CommandOutcome.ACCEPTED)

    async def clear_limit(self, station_id: str, connector: int) -> CommandResult:
        port = self.ports.get(f"{station_id}/{connector}")
        if port is not None:
            port.profile = None
        return CommandResult(CommandOutcome.ACCEPTED)

    def stations(self) -> list[StationInfo]:
        return [
            StationInfo(
                ch.id,
                connected=True,
                protocol="ocpp1.6",
                vendor="gridshare",
                model="demo-station",
                capabilities=("SmartCharging", "RemoteTrigger"),
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
        self.commands.append((station_id, "remote_start", (connector, id_tag)))
        cid = f"{station_id}/{connector}"
        port = self.ports.get(cid)
        if port is None or port.car is not None or cid in self.unavailable:
            return CommandResult(CommandOutcome.REJECTED, "connector busy or unavailable")
        now = self.clock()
        car = Car(
            60.0,
            0.3,
            port.info.max_current_a,
            len(port.info.lines),
            now,
            now + timedelta(hours=8),
            id_tag,
        )
        await self._plug_in(cid, port, car, now)
        if spec is not None:
            port.profile = schedule_from_spec(spec)
        return CommandResult(CommandOutcome.ACCEPTED)

    async def remote_stop(self, station_id: str, transaction_id: str) -> CommandResult:
        self.commands.append((station_id, "remote_stop", (transaction_id,)))
        for cid, port in self.ports.items():
            if port.info.station_id == station_id and port.tx == transaction_id:
                await self._unplug(cid, port, self.clock(), "Remote")
                return CommandResult(CommandOutcome.ACCEPTED)
        return CommandResult(CommandOutcome.REJECTED, "no such transaction")

    async def trigger_message(
        self, station_id: str, message: str, connector: int | None = None
    ) -> CommandResult:
        self.commands.append((station_id, "trigger_message", (message, connector)))
        if message != "MeterValues":
            return CommandResult(CommandOutcome.REJECTED, f"{message} not implemented")
        now = self.clock()
        for cid, port in self.ports.items():
            if port.info.station_id != station_id or port.tx is None:
                continue
            if connector is None or port.info.connector.id == connector:
                await self.sink(self._reading(cid, port, now))
        return CommandResult(CommandOutcome.ACCEPTED)

    async def reset(self, station_id: str, hard: bool = False) -> CommandResult:
        self.commands.append((station_id, "reset", (hard,)))
        return CommandResult(CommandOutcome.ACCEPTED)

    async def change_availability(
        self, station_id: str, connector: int, operative: bool
    ) -> CommandResult:
        self.commands.append((station_id, "change_availability", (connector, operative)))
        key = f"{station_id}/{connector}"
        if operative:
            self.unavailable.discard(key)
        else:
            self.unavailable.add(key)
        return CommandResult(CommandOutcome.ACCEPTED)

    async def _plug_in(self, cid: str, port: Port, car: Car, now: datetime) -> None:
        self._tx_counter += 1
        port.car, port.tx = car, str(self._tx_counter)
        port.profile, port.drawn_a, port.session_wh = None, 0.0, 0.0
        await self.sink(SessionStarted(cid, port.tx, car.id_tag, port.register_wh, now))

    async def _unplug(self, cid: str, port: Port, now: datetime, reason: str) -> None:
        assert port.tx is not None
        await self.sink(SessionEnded(port.tx, port.register_wh, now, reason, connector_id=cid))
        self.finished.append((cid, port.session_wh))
        port.car = port.tx = port.profile = None
        port.drawn_a = 0.0

    def _reading(self, cid: str, port: Port, now: datetime) -> MeterReading:
        lines = min(port.car.phases, len(port.info.lines)) if port.car else len(port.info.lines)
        amps = {
            f"L{i + 1}": round(port.drawn_a if i < lines else 0.0, 2)
            for i in range(len(port.info.lines))
        }
        return MeterReading(
            cid,
            now,
            transaction_id=port.tx,
            current_a=amps,
            current_offered_a=self.limit(cid, now),
            total_power_w=round(port.drawn_a * port.info.voltage_v * lines, 1),
            energy_wh=round(port.register_wh, 1),
            soc_pct=None if port.car is None else round(port.car.soc * 100, 1),
        )

    def limit(self, cid: str, now: datetime) -> float:
        port = self.ports[cid]
        if port.profile is not None:
            a = port.profile.at(now)
        else:
            a = self.defaults.get(port.info.station_id, port.info.max_current_a)
        return min(a, port.info.max_current_a)

    async def tick(self, now: datetime, dt_s: float) -> None:
        while self.cars and self.cars[0][1].arrives <= now:
            cid, car = self.cars.pop(0)
            port = self.ports[cid]
            if port.car is not None:
                continue
            await self._plug_in(cid, port, car, now)
        for cid, port in self.ports.items():
            current = port.car
            if current is None or port.tx is None:
                continue
            car = current
            if now >= car.departs:
                await self._unplug(cid, port, now, "EVDisconnected")
                continue
            limit = self.limit(cid, now)
            taper = 1.0 if car.soc < 0.8 else max(0.0, (1.0 - car.soc) / 0.2)
            want = min(car.max_a * taper, port.info.max_current_a)
            target = min(limit, want) if limit >= port.info.connector.min_current_a else 0.0
            port.drawn_a += (target - port.drawn_a) * min(1.0, dt_s / 10.0)
            lines = min(car.phases, len(port.info.lines))
            wh = port.drawn_a * port.info.voltage_v * lines * dt_s / 3600.0
            port.register_wh += wh
            port.session_wh += wh
            car.soc = min(1.0, car.soc + wh / 1000.0 / car.battery_kwh)
            if port.last_meter is None or (now - port.last_meter).total_seconds() >= (
                METER_INTERVAL_S
            ):
                port.last_meter = now
                await self.sink(self._reading(cid, port, now))

    def lines_of(self, cid: str) -> tuple[str, ...]:
        port = self.ports[cid]
        n = min(port.car.phases, len(port.info.lines)) if port.car else len(port.info.lines)
        return tuple(x.value for x in port.info.lines[:n])
