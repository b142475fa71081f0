"""The charging side of a simulated station: connectors, the EVs plugged into
them, the charging profiles in force and the limit each connector offers.

Free of OCPP messages and I/O: `ConnectorBank.advance` moves the EVs' physics
(`ev.Ev`) on to a time under the limits `limits.ProfileStore` gives.

A station-wide max profile is shared equally among the connectors with a
running transaction. A limit below the connector's minimum current is offered
as 0 (the pilot signal cannot go lower; the car pauses, SuspendedEVSE).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from gridshare.peers import v2x
from gridshare.peers.ev import Ev
from gridshare.peers.limits import (
    ConnectorContext,
    Kind,
    Profile,
    ProfileError,
    ProfileStore,
    Purpose,
    profile_from_v16,
    profile_from_v21,
    profile_from_v201,
)
from gridshare.peers.specs import SimConnectorSpec, SimStationSpec
from gridshare.peers.wire import one_decimal

# Simulated seconds between physics updates while an EV charges (status changes
# such as "battery full" are noticed at this pace).
PHYSICS_TICK_S = 10.0


@dataclass
class Connector:
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
    export_wh: float = 0.0
    """Energy a bidirectional car fed back (the import register does not count it)."""
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


class ConnectorBank:
    """A station's connectors and the profiles in force, on the simulated clock."""

    def __init__(self, spec: SimStationSpec, clock: Callable[[], datetime]) -> None:
        self.spec = spec
        self.clock = clock
        now = clock()
        self.connectors = {c.id: Connector(c, now) for c in spec.connectors}
        self.store = ProfileStore()

    def connector(self, n: int) -> Connector:
        try:
            return self.connectors[n]
        except KeyError:
            raise KeyError(f"{self.spec.id} has no connector {n}") from None

    def in_tx(self) -> bool:
        return any(c.in_tx for c in self.connectors.values())

    def charging(self) -> bool:
        return any(c.ev is not None and c.in_tx for c in self.connectors.values())

    def context(self, c: Connector) -> ConnectorContext:
        tx = (c.tx_id or "local") if c.in_tx else None
        return ConnectorContext(c.spec.voltage_v, c.power_phases, tx, c.tx_start, c.phases_used)

    def offline(self, now: datetime | None = None) -> None:
        """The central system is gone: 2.1 profiles start counting their offline time."""
        now = now or self.clock()
        self.advance(now)
        self.store.offline(now)

    def online(self, now: datetime | None = None) -> None:
        now = now or self.clock()
        self.advance(now)
        self.store.online(now)

    def limit_at(self, c: Connector, t: datetime) -> float:
        """Per-phase limit offered to connector c at t (A): one pilot current, so the
        lowest of the phases the car loads."""
        return min(self.phase_limits_at(c, t)[: max(1, c.phases_used)])

    def phase_limits_at(self, c: Connector, t: datetime) -> tuple[float, ...]:
        """The limit on each of the connector's wired phases at t (A), in wiring order."""
        wired = len(c.spec.phases)
        if self.spec.ignores_limits:
            return (c.spec.max_current_a,) * wired
        ctx = self.context(c)
        cap = c.spec.max_current_a
        station = self.store.station_limit_a(t, ctx)
        if station is not None:
            sharing = max(1, sum(1 for k in self.connectors.values() if k.in_tx))
            cap = min(cap, station / sharing)
        own = self.store.connector_phases_a(c.spec.id, t, ctx) or (cap, cap, cap)
        lims = [min(cap, a) for a in own[:wired]]
        # below the connector's minimum the pilot signal pauses the car
        return tuple(a if a >= c.spec.min_current_a - 1e-9 else 0.0 for a in lims)

    def advance(self, now: datetime | None = None) -> None:
        now = now or self.clock()
        for c in self.connectors.values():
            t = c.last_t
            while t < now:
                step = min((now - t).total_seconds(), PHYSICS_TICK_S)
                c.limit_a = self.limit_at(c, t)
                if c.ev is not None and c.in_tx:
                    vxp = c.spec.voltage_v * c.power_phases
                    sp = v2x.setpoint_a(self.store, c.spec.id, t, self.context(c))
                    if sp is not None and sp < 0 and v2x.bidirectional(c.ev):
                        c.export_wh += v2x.discharge(c.ev, step, -sp, vxp)
                    else:
                        c.energy_wh += c.ev.step(step, c.limit_a, vxp)
                t = min(now, t + timedelta(seconds=step))
            c.last_t = max(c.last_t, now)
            c.limit_a = self.limit_at(c, now)

    def status(self, c: Connector) -> str:
        """The connector's OCPP 1.6 status (2.0.1 derives its own from it)."""
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

    def install(self, connector: int, raw: dict[str, Any]) -> str | None:
        """Install a profile; return None when accepted, else why not."""
        if self.spec.rejects_profiles:
            return "station configured to reject"
        v16 = self.spec.version == "1.6"
        try:
            profile = _READERS[self.spec.version](connector, raw)
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
            if profile.kind is Kind.DYNAMIC:
                # its own clock, not the sender's: the limit's age counts from receipt
                profile = replace(profile, dyn_update_time=self.clock())
            self.advance()
            self.store.install(
                profile, active_tx=active, max_connector=max(self.connectors), v201=not v16
            )
        except ProfileError as e:
            return str(e)
        except (ValueError, KeyError) as e:
            return f"bad profile: {e}"
        return None

    def update_dynamic(self, profile_id: int, update: dict[str, Any]) -> str | None:
        """UpdateDynamicSchedule or a pull's answer; None when taken, else why not."""
        now = self.clock()
        self.advance(now)
        try:
            self.store.update_dynamic(profile_id, update, now)
        except ProfileError as e:
            return str(e)
        except (ValueError, TypeError) as e:
            return f"bad update: {e}"
        return None

    def composite_schedule(
        self, n: int, duration_s: int, unit: str = "A"
    ) -> tuple[datetime, list[dict[str, Any]]]:
        now = self.clock().replace(microsecond=0)
        if n == 0:
            spec = self.spec.connectors[0]
            ctx = ConnectorContext(spec.voltage_v, 3 if len(spec.phases) == 3 else 1)
            maximum = sum(c.max_current_a for c in self.spec.connectors)
        else:
            c = self.connector(n)
            ctx = self.context(c)
            maximum = c.spec.max_current_a
        if self.spec.ignores_limits and not self.spec.hides_ignoring:
            periods = [{"startPeriod": 0, "limit": one_decimal(maximum)}]
            return now, periods
        sched = self.store.composite(n, now, duration_s, ctx, maximum, unit)
        return now, [
            {"startPeriod": q.start_s, "limit": q.limit, "numberPhases": q.number_phases or 3}
            for q in sched
        ]


_READERS = {"1.6": profile_from_v16, "2.0.1": profile_from_v201, "2.1": profile_from_v21}


def _without_tx(profile: Profile) -> Profile:
    """A TxProfile for a transaction whose id the server has not given yet."""
    return replace(profile, transaction_id=None)
