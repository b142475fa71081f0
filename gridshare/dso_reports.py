"""What the site tells its DSO over OSCP: energy measurements and compliance errors.

`EnergyCounter` keeps the cumulative energy each connector imported, from the
sessions' energy registers (Energy.Active.Import.Register): the source of the
UpdateGroupMeasurements a capacity provider asks for. `ComplianceWatch`
compares each OSCP group's measured load with the capacity in force and finds
the episodes in which the site does not keep it (a station that ignores its
limit): the GroupCapacityComplianceErrors to send, one per episode.

Both are fed the station events the service accepted and hold no I/O but the
counter's state in the store; the service sends what they find.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from forecasts.compliance import Excess, excesses
from forecasts.units import Limit
from gridshare.site.readings import site_lines
from gridshare.store import Store, ended_key
from ocpp_adapter.events import (
    DomainEvent,
    MeterReading,
    SessionEnded,
    SessionStarted,
    StationDisconnected,
)
from optimizer.problem import Capacity
from optimizer.site import Group, Line, Site, station_of

log = logging.getLogger(__name__)

ENERGY_STATE = "oscp_energy"
"""The store's state key of the energy counter."""

TxKey = tuple[str, str]
"""(station id, transaction id): a 2.0.1 station chooses its ids, so two stations
may use the same one."""


def group_members(site: Site, group: Group) -> dict[str, float]:
    """Connector → its weight in the group (1 for every connector under a tree group)."""
    if group.weights is not None:
        return site.weighted_members(group)
    return {c.key: 1.0 for c in site.connectors_under(group.id)}


class EnergyCounter:
    """Cumulative imported energy per connector (Wh), never decreasing.

    Each transaction counts from its meter start (else its first reading) up to
    the highest register seen; an ended session's energy stays in the total.
    The state is saved in the store at session starts and ends and whenever
    `save` is called; `recover` reconciles it with the store's sessions, so the
    energy of readings after the last save (even of a session that ended while
    the service was down) is counted after a restart.
    """

    def __init__(self, site: Site, store: Store) -> None:
        self.site = site
        self.store = store
        self.totals_wh: dict[str, float] = {}
        self._open: dict[TxKey, tuple[str, float | None]] = {}
        """Running transaction → (connector, register counted up to; None: not yet read)."""
        self._by_connector: dict[str, TxKey] = {}
        self._dirty = False

    def recover(self) -> None:
        saved: Mapping[str, Any] = self.store.get_state(ENERGY_STATE) or {}
        self.totals_wh = {str(k): float(v) for k, v in saved.get("wh", {}).items()}
        opened = saved.get("open", [])
        if isinstance(opened, Mapping):  # saved before sessions were keyed by station
            opened = [[station_of(str(c)), tx, c, last] for tx, (c, last) in opened.items()]
        for station, tx, cid, last in opened:
            self._begin((str(station), str(tx)), str(cid), None if last is None else float(last))
        for key in list(self._open):
            s = self.store.session(*key)
            if s is None:
                continue
            end = s.meter_stop_wh if s.meter_stop_wh is not None else s.energy_wh
            if end is not None:
                self._advance(key, end)
            if s.ended_at is not None:
                self._end(key)
        for s in self.store.active_sessions():
            key = (s.station_id, s.transaction_id)
            if key not in self._open and s.connector_id in self.site.connectors:
                self._begin(key, s.connector_id, s.meter_start_wh)
                if s.energy_wh is not None:
                    self._advance(key, s.energy_wh)
        self.save()

    def save(self, *, if_changed: bool = False) -> None:
        if if_changed and not self._dirty:
            return
        self._dirty = False
        self.store.put_state(
            ENERGY_STATE,
            {
                "wh": self.totals_wh,
                "open": [[st, tx, cid, last] for (st, tx), (cid, last) in self._open.items()],
            },
        )

    def observe(self, event: DomainEvent) -> None:
        match event:
            case SessionStarted(connector_id=cid, transaction_id=tx):
                key = (station_of(cid), tx)
                if cid in self.site.connectors and key not in self._open:
                    self._begin(key, cid, event.meter_start_wh)
                    self.save()
            case MeterReading(connector_id=cid, energy_wh=wh) if wh is not None:
                of = event.transaction_id
                running = (station_of(cid), of) if of else self._by_connector.get(cid)
                if running is None or cid not in self.site.connectors:
                    return
                if running not in self._open:  # its start was not seen: count from here on
                    self._begin(running, cid, None)
                self._advance(running, wh)
            case SessionEnded():
                ended = ended_key(event)
                if ended is not None and ended in self._open:
                    if event.meter_stop_wh is not None:
                        self._advance(ended, event.meter_stop_wh)
                    self._end(ended)
                    self.save()

    def _begin(self, tx: TxKey, cid: str, register_wh: float | None) -> None:
        self._dirty = True
        self._open[tx] = (cid, register_wh)
        self._by_connector[cid] = tx
        self.totals_wh.setdefault(cid, 0.0)

    def _advance(self, tx: TxKey, register_wh: float) -> None:
        cid, last = self._open[tx]
        if not math.isfinite(register_wh):
            return
        if last is None:
            last = register_wh
        elif register_wh > last:  # a late reading below the highest seen adds nothing
            self.totals_wh[cid] = self.totals_wh.get(cid, 0.0) + register_wh - last
            last = register_wh
        if self._open[tx] != (cid, last):
            self._open[tx] = (cid, last)
            self._dirty = True

    def _end(self, tx: TxKey) -> None:
        cid, _ = self._open.pop(tx)
        self._dirty = True
        if self._by_connector.get(cid) == tx:
            del self._by_connector[cid]

    def group_kwh(self, group_id: str) -> float:
        """Energy imported by the connectors under the site group (weighted for a
        weighted group), kWh."""
        members = group_members(self.site, self.site.group_by_id[group_id])
        return sum(self.totals_wh.get(cid, 0.0) * w for cid, w in members.items()) / 1000.0


@dataclass(frozen=True)
class Reading:
    received_at: datetime
    by_line: dict[Line, float]
    power_kw: float


@dataclass
class Episode:
    """One stretch in which a group's measured load is above its capacity."""

    over_since: datetime | None = None
    within_since: datetime | None = None
    reported: bool = False


@dataclass(frozen=True)
class Finding:
    """A group that has not kept its capacity for longer than the grace period."""

    group_id: str
    oscp_group_id: str
    message: str
    excesses: tuple[Excess, ...]
    connectors: tuple[str, ...]
    """Connectors drawing more than their own limit."""


@dataclass
class ComplianceWatch:
    """Measured load of every OSCP group against the capacity in force.

    A group is over when a line's current or the total power exceeds the
    capacity by more than the tolerance (meters and ramps are not exact). An
    episode starts at the first reading over; once it has lasted ``grace_s``
    (a car takes seconds to follow a lowered limit) `check` reports it, once.
    It ends after the load has stayed within the capacity for ``grace_s``, so a
    load hovering at the limit is one episode, not many. Readings older than
    ``stale_s`` count no more (a station that stopped reporting).
    """

    site: Site
    grace_s: float
    stale_s: float
    tolerance_a: float = 1.0
    tolerance_kw: float = 0.5
    readings: dict[str, Reading] = field(default_factory=dict)
    episodes: dict[str, Episode] = field(default_factory=dict)
    _tx_connector: dict[TxKey, str] = field(default_factory=dict)

    @property
    def groups(self) -> list[Group]:
        return [g for g in self.site.groups if g.oscp_group_id]

    def observe(self, event: DomainEvent, now: datetime) -> None:
        match event:
            case MeterReading(connector_id=cid) if cid in self.site.connectors:
                info = self.site.connectors[cid]
                by_line = site_lines(event.current_a, info.lines)
                power = event.total_power_w
                if power is None and event.power_w:
                    power = sum(event.power_w.values())
                if event.transaction_id is not None:
                    self._tx_connector[(station_of(cid), event.transaction_id)] = cid
                if power is None:
                    if not by_line:
                        return  # energy only: the last draw still holds
                    power = sum(by_line.values()) * self.site.site.voltage_v
                self.readings[cid] = Reading(now, by_line, power / 1000.0)
            case SessionStarted(connector_id=cid, transaction_id=tx):
                self._tx_connector[(station_of(cid), tx)] = cid
            case SessionEnded():
                # the car stopped drawing: its last reading no longer holds
                key = ended_key(event)
                gone = event.connector_id or (self._tx_connector.get(key) if key else None)
                if key is not None:
                    self._tx_connector.pop(key, None)
                if gone is not None:
                    self.readings.pop(gone, None)
            case StationDisconnected(station_id=sid):
                for cid in [c for c in self.readings if station_of(c) == sid]:
                    del self.readings[cid]

    def measured(self, group: Group, now: datetime) -> tuple[dict[Line, float], float]:
        """The group's measured current per line and power (kW) from fresh readings."""
        per_line: dict[Line, float] = {}
        kw = 0.0
        oldest = now - timedelta(seconds=self.stale_s)
        for cid, w in group_members(self.site, group).items():
            r = self.readings.get(cid)
            if r is None or r.received_at < oldest:
                continue
            for line, a in r.by_line.items():
                per_line[line] = per_line.get(line, 0.0) + w * a
            kw += w * r.power_kw
        return per_line, kw

    def check(
        self,
        now: datetime,
        capacity: Capacity,
        limit_of: Callable[[str], float | None],
    ) -> list[Finding]:
        """Episodes that passed the grace period and are not reported yet.

        ``capacity``: each group's limits over the slots just before and after
        ``now`` (the larger counts, so a step in the capacity is not an excess
        while the stations follow it). ``limit_of``: a connector's limit in
        force (None: none known). The caller calls `reported` once it sent one.
        """
        out = []
        grace = timedelta(seconds=self.grace_s)
        for g in self.groups:
            assert g.oscp_group_id is not None
            ep = self.episodes.setdefault(g.id, Episode())
            per_line, kw = self.measured(g, now)
            limit = Limit(_loosest(capacity.limit_a, g.id), _loosest(capacity.limit_kw, g.id))
            over = excesses(
                limit, per_line, kw, tolerance_a=self.tolerance_a, tolerance_kw=self.tolerance_kw
            )
            if not over:
                if ep.over_since is not None:
                    ep.within_since = ep.within_since or now
                    if not ep.reported or now - ep.within_since >= grace:
                        self.episodes[g.id] = Episode()
                continue
            ep.within_since = None
            ep.over_since = ep.over_since or now
            if ep.reported or now - ep.over_since < grace:
                continue
            offenders = self._offenders(g, now, limit_of)
            out.append(
                Finding(
                    group_id=g.id,
                    oscp_group_id=g.oscp_group_id,
                    message=self._message(g, over, offenders, now - ep.over_since),
                    excesses=tuple(over),
                    connectors=tuple(cid for cid, _, _ in offenders),
                )
            )
        return out

    def reported(self, group_id: str) -> None:
        self.episodes.setdefault(group_id, Episode()).reported = True

    def _offenders(
        self, group: Group, now: datetime, limit_of: Callable[[str], float | None]
    ) -> list[tuple[str, float, float]]:
        oldest = now - timedelta(seconds=self.stale_s)
        out = []
        for cid in group_members(self.site, group):
            r = self.readings.get(cid)
            limit = limit_of(cid)
            if r is None or r.received_at < oldest or limit is None or not r.by_line:
                continue
            drawn = max(r.by_line.values())
            if drawn > limit + self.tolerance_a:
                out.append((cid, drawn, limit))
        return out

    @staticmethod
    def _message(
        group: Group,
        over: list[Excess],
        offenders: list[tuple[str, float, float]],
        lasting: timedelta,
    ) -> str:
        what = "; ".join(str(e) for e in over)
        head = f"site group {group.id}: measured {what} for {lasting.total_seconds():.0f} s"
        if not offenders:
            return f"{head}; no connector draws more than its own limit"
        names = ", ".join(f"{cid} draws {a:.1f} A (limit {lim:.1f} A)" for cid, a, lim in offenders)
        return f"{head}; connectors over their limit: {names}"


def _loosest(table: Mapping[str, Any], group_id: str) -> float:
    arr = table.get(group_id)
    if arr is None or len(arr) == 0:
        return math.inf
    return float(max(arr))
