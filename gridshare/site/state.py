"""The state of a site's stations and running sessions, and how each event changes it.

`SiteState.apply` takes a domain event (already stored) and returns the
effects it calls for; the asyncio layer carries them out:

    Replan(reason)              plan again (coalesced)
    InstallFallback(station)    send the station its fallback (TxDefault) limit
    ClearLimit(station, n)      clear the profile of a connector whose session ended
    EndSuperseded(...)          store: an open session another started after on its connector

State per running session: what the car said (departure, energy, current
bounds), estimates where it said nothing (the idTag's history, else the site's
defaults) and what its meter values taught us: the rate it really takes (a
cap, with hysteresis, so the capacity it leaves goes to the others) and the
lines it really loads. The rules live in `forecasts.demand`, which the
simulator uses too.

Nothing here waits, sleeps or writes: what it reads of the store comes through
the `SessionRecords` port.
"""

from __future__ import annotations

import logging
import math
from collections import Counter
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol, TypedDict, Unpack

from forecasts.demand import (
    DemandDefaults,
    PastSession,
    RateLearner,
    TagHistory,
    estimate_departure,
    estimate_energy,
)
from gridshare.logs import duration, fields
from gridshare.rollout import LimitBook, LimitSchedule, PinReason
from gridshare.site.readings import plausible, site_lines
from gridshare.site.settings import ControllerSettings
from gridshare.site.v2x import V2xLevels
from gridshare.store import SessionConflict, StoredLimit, StoredSession, ended_key
from gridshare.store.sessions import PRIORITY_CHARGING_WEIGHT
from ocpp_adapter.events import (
    ConnectorStatusChanged,
    DomainEvent,
    EvChargingNeeds,
    ExternalLimitNotified,
    LimitPurpose,
    MeterReading,
    PriorityChargingNotified,
    SessionEnded,
    SessionStarted,
    StationBooted,
    StationConnected,
    StationDisconnected,
)
from optimizer.modes import ChargeMode
from optimizer.site import Line, Site, station_of

log = logging.getLogger(__name__)


# --- effects ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Replan:
    reason: str


@dataclass(frozen=True)
class InstallFallback:
    station_id: str


@dataclass(frozen=True)
class ClearLimit:
    station_id: str
    connector: int


@dataclass(frozen=True)
class EndSuperseded:
    """Store that an open session ended where a later one started on its connector
    (or it stays open for every reader after a restart)."""

    station_id: str
    transaction_id: str
    ended_at: datetime
    by_transaction_id: str


Effect = Replan | InstallFallback | ClearLimit | EndSuperseded


class SessionRecords(Protocol):
    """What the site state reads of the store."""

    def session(self, station_id: str, transaction_id: str) -> StoredSession | None: ...

    def past_sessions(self, id_tag: str, limit: int = 20) -> list[PastSession]: ...


# --- sessions and conflicts ------------------------------------------------------------------


class SessionEdits(TypedDict, total=False):
    """What an operator may change of a running session (omitted: unchanged)."""

    priority: float | None
    departure: datetime | None
    energy_need_kwh: float | None
    """Still to deliver from now on."""
    charge_mode: ChargeMode | None


@dataclass
class SessionState:
    transaction_id: str
    """The station's id of it: unique only per station (OCPP 2.0.1 lets stations choose)."""
    connector_id: str
    id_tag: str | None
    started_at: datetime
    meter_start_wh: float | None
    session_id: str = ""
    """Unique in the store: the planner's and the operator's name for it."""
    station_id: str = ""
    energy_wh: float | None = None
    departure: datetime | None = None
    """Stated by the car (NotifyEVChargingNeeds)."""
    energy_need_wh: float | None = None
    ev_max_current_a: float | None = None
    ev_min_current_a: float | None = None
    est_departure: datetime | None = None
    est_energy_kwh: float | None = None
    rate: RateLearner = field(default_factory=RateLearner)
    """What its meter values taught: the current it takes, the lines it loads."""
    drawn_a: float | None = None
    power_w: float | None = None
    priority: float = 1.0
    """The operator's weight for this session (1: as any other)."""
    charge_mode: ChargeMode = ChargeMode.FAST
    """Fast, or from the PV surplus (its idTag's default, or the operator's choice)."""
    v2x: V2xLevels | None = None
    """Set while its car announces bidirectional power transfer (`gridshare.site.v2x`)."""

    def __post_init__(self) -> None:
        self.session_id = self.session_id or self.transaction_id
        self.station_id = self.station_id or station_of(self.connector_id)

    @property
    def cap_a(self) -> float | None:
        """Learned: the planner counts on the car taking no more (None: no limit)."""
        return self.rate.max_current_a

    @property
    def lines(self) -> tuple[Line, ...] | None:
        """Learned: the lines the car really loads (None: every wired line)."""
        return self.rate.lines

    @property
    def delivered_kwh(self) -> float:
        if self.energy_wh is None or self.meter_start_wh is None:
            return 0.0
        return max(0.0, self.energy_wh - self.meter_start_wh) / 1000.0


@dataclass(frozen=True)
class ConflictReport:
    """A session left out of planning (``isolated``: its connector counts at the
    most it may draw), a session start refused (``refused``), or an open session
    another started after on its connector (``superseded``), and why."""

    kind: str
    station_id: str
    transaction_id: str
    connector_id: str | None
    reason: str
    since: datetime

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "station_id": self.station_id,
            "transaction_id": self.transaction_id,
            "connector_id": self.connector_id,
            "reason": self.reason,
            "since": self.since.isoformat(),
        }


@dataclass(frozen=True)
class SessionChange:
    """What `SiteState.update_session` changed: the session, the need to store
    (None: unchanged) and the change for the audit log."""

    session: SessionState
    need_wh: float | None
    detail: dict[str, Any]


REFUSED_KEPT = 20
"""Refused (and superseded) sessions listed in the status: the latest of each kind."""


def _log_session_ended(s: SessionState, e: SessionEnded) -> None:
    start, stop = s.meter_start_wh, e.meter_stop_wh
    # the stop reading when the station sent one, else the last meter value
    delivered = (stop - start) / 1000.0 if stop is not None and start is not None else None
    log.info(
        "session ended %s",
        fields(
            connector=s.connector_id,
            session=s.session_id,
            tx=s.transaction_id,
            id_tag=s.id_tag,
            kwh=max(0.0, delivered) if delivered is not None else s.delivered_kwh,
            duration=duration((e.at - s.started_at).total_seconds()),
            reason=e.reason,
        ),
    )


# --- the state -------------------------------------------------------------------------------


class SiteState:
    """Stations and running sessions of one site; `apply` is the only way events change them."""

    def __init__(
        self,
        site: Site,
        book: LimitBook,
        records: SessionRecords,
        *,
        known_stations: Collection[str],
        defaults: DemandDefaults | None = None,
        settings: ControllerSettings | None = None,
    ) -> None:
        self.site = site
        self.book = book
        """The limits in force (shared with the rollout)."""
        self.records = records
        self.known_stations = frozenset(known_stations)
        """Stations of the site's configuration (they get a fallback limit)."""
        self.defaults = defaults or DemandDefaults()
        self.settings = settings or ControllerSettings()
        self.sessions: dict[str, SessionState] = {}
        """Connector → its running session."""
        self.connected: dict[str, str] = {}
        """Station id → protocol, for stations connected now."""
        self.status_by_connector: dict[str, str] = {}
        self.limit_changed_at: dict[str, datetime] = {}
        """Connector → when its session started or its last profile was accepted."""
        self.conflicts: dict[tuple[str, ...], ConflictReport] = {}
        """Sessions isolated from planning now, and the latest refused session starts."""
        self.conflicts_total: Counter[str] = Counter()
        """Sessions refused and superseded since the start, by kind (the list above keeps
        the latest few)."""
        self._by_station: dict[str, list[str]] = {}
        for cid, info in site.connectors.items():
            self._by_station.setdefault(info.station_id, []).append(cid)

    # --- reads -------------------------------------------------------------------------

    def knows_station(self, station_id: str) -> bool:
        return station_id in self.known_stations

    def station_connectors(self, station_id: str) -> list[str]:
        return self._by_station.get(station_id, [])

    @property
    def stations(self) -> Mapping[str, list[str]]:
        """Station id → its connectors."""
        return self._by_station

    def offered_now(self, cid: str, at: datetime) -> float:
        """The limit in force at the connector (its profile, else its fallback,
        else its maximum)."""
        c = self.book.get(cid)
        if c.accepted is not None:
            return c.accepted.at(at)
        default = self.book.default_in_force(cid)
        if default is not None:
            return default
        return self.site.connectors[cid].max_current_a

    def limit_now(self, cid: str, at: datetime) -> float | None:
        """The limit in force for a running transaction (None: none runs)."""
        c = self.book.connectors.get(cid)
        if c is None or not c.active:
            return None
        return self.offered_now(cid, at)

    def plausible(self, r: MeterReading) -> MeterReading:
        return plausible(self.site, r)

    # --- events --------------------------------------------------------------------------

    def apply(self, event: DomainEvent, now: datetime) -> list[Effect]:
        """Change the state by a stored event; the effects it calls for."""
        match event:
            case StationConnected():
                self.connected[event.station_id] = event.protocol
                self.book.unpin_station(
                    event.station_id,
                    frozenset({PinReason.NOT_CONNECTED, PinReason.NO_ANSWER}),
                )
                return [Replan("station connected")]
            case StationBooted():
                self.connected.setdefault(event.station_id, "")
                self.book.unpin_station(event.station_id, frozenset(PinReason))
                out: list[Effect] = []
                if self.settings.fallback_on_boot and self.knows_station(event.station_id):
                    out.append(InstallFallback(event.station_id))
                return [*out, Replan("station booted")]
            case StationDisconnected():
                self.connected.pop(event.station_id, None)
                for cid in self.station_connectors(event.station_id):
                    c = self.book.get(cid)
                    if c.active:
                        c.pinned_until, c.pin_reason = math.inf, PinReason.NOT_CONNECTED
                return [Replan("station disconnected")]
            case ConnectorStatusChanged():
                self.status_by_connector[event.connector_id] = event.status
            case SessionStarted():
                return self._session_started(event, now)
            case SessionEnded():
                return self._session_ended(event)
            case MeterReading():
                return self._meter(event, now)
            case EvChargingNeeds():
                return self._ev_needs(event)
            case ExternalLimitNotified():
                return [Replan("external limit")]
        return []

    def refused(self, e: SessionConflict, now: datetime) -> None:
        """A session start the store refused: reported; the stored session stands."""
        self.conflict(
            ("refused", e.station_id, e.transaction_id),
            ConflictReport("refused", e.station_id, e.transaction_id, None, e.detail, now),
        )

    def _ev_needs(self, event: EvChargingNeeds) -> list[Effect]:
        s = self.sessions.get(event.connector_id)
        if s is None:
            return []
        s.departure = event.departure or s.departure
        if event.energy_wh is not None:
            s.energy_need_wh = s.delivered_kwh * 1000.0 + event.energy_wh  # from its start
        if event.ev_max_current_a is not None:
            s.ev_max_current_a = event.ev_max_current_a
        if event.ev_min_current_a is not None:
            s.ev_min_current_a = event.ev_min_current_a
        s.v2x = None if event.v2x is None else V2xLevels.of(event.v2x, s.delivered_kwh * 1000.0)
        self.book.get(event.connector_id).force_send = True
        return [Replan("ev charging needs")]

    def _session_started(self, e: SessionStarted, now: datetime) -> list[Effect]:
        if e.connector_id not in self.site.connectors:
            log.warning("session %r on unknown connector %r", e.transaction_id, e.connector_id)
            return []
        station = self.site.connectors[e.connector_id].station_id
        old = self.sessions.get(e.connector_id)
        if old is not None and (old.station_id, old.transaction_id) == (station, e.transaction_id):
            return []  # a repeat (station resent it)
        stored = self.records.session(station, e.transaction_id)
        if stored is None or stored.connector_id != e.connector_id:
            # a start is stored before it is applied (or refused): its
            # session id is the store's, never made up here
            log.error(
                "session %r of %r is not stored as started on %r: ignored",
                e.transaction_id,
                station,
                e.connector_id,
            )
            return []
        self.sessions[e.connector_id] = self.from_stored(stored)  # estimated there
        self.book.start_transaction(e.connector_id)
        self.limit_changed_at[e.connector_id] = now
        log.info(
            "session started %s",
            fields(
                connector=e.connector_id,
                session=stored.session_id,
                tx=e.transaction_id,
                id_tag=stored.id_tag,
                offline=e.offline,
            ),
        )
        return [Replan("session started")]

    def _session_ended(self, e: SessionEnded) -> list[Effect]:
        key = ended_key(e)

        def ends(s: SessionState) -> bool:
            return (s.station_id, s.transaction_id) == key

        cid = e.connector_id
        if cid is None or cid not in self.sessions:
            cid = next((k for k, s in self.sessions.items() if ends(s)), None)
        if cid is None or not ends(self.sessions[cid]):
            return []
        _log_session_ended(self.sessions.pop(cid), e)
        self.book.end_transaction(cid)
        info = self.site.connectors[cid]
        out: list[Effect] = []
        if info.station_id in self.connected:
            out.append(ClearLimit(info.station_id, info.connector.id))
        return [*out, Replan("session ended")]

    def _meter(self, r: MeterReading, now: datetime) -> list[Effect]:
        s = self.sessions.get(r.connector_id)
        if s is None or (r.transaction_id is not None and r.transaction_id != s.transaction_id):
            return []
        if r.energy_wh is not None:
            s.energy_wh = max(s.energy_wh or 0.0, r.energy_wh)
        info = self.site.connectors[r.connector_id]
        by_line = site_lines(r.current_a, info.lines)
        if by_line:
            drawn = max(by_line.values())
        elif r.total_power_w is not None:
            drawn = r.total_power_w / (info.voltage_v * len(info.lines))
        else:
            return []
        s.drawn_a = drawn
        s.power_w = (
            r.total_power_w
            if r.total_power_w is not None
            else (sum(r.power_w.values()) if r.power_w else None)
        )
        # ``now`` is our clock, not the station's (station clocks drift)
        changed_at = self.limit_changed_at.get(s.connector_id)
        if changed_at is not None and (now - changed_at).total_seconds() < (
            self.settings.learn_settle_s
        ):
            return []
        offered = self.offered_now(s.connector_id, now)
        if r.current_offered_a is not None:
            offered = min(offered, r.current_offered_a)
        held, lines = s.rate.rate_a is not None, s.lines
        if s.rate.observe(by_line, offered, drawn, at=now):
            self.book.get(s.connector_id).force_send |= s.lines != lines  # 2.1: named phases
            # a car that takes more again must not be held at its old rate
            released = held and s.rate.rate_a is None
            return [Replan("car takes more" if released else "meter values")]
        return []

    def offer_accepted(self, cid: str, at: datetime) -> None:
        """A transaction profile was accepted: the car's readings settle anew."""
        self.limit_changed_at[cid] = at
        s = self.sessions.get(cid)
        if s is not None:
            s.rate.offer_changed()

    # --- sessions ----------------------------------------------------------------------------

    def from_stored(self, s: StoredSession) -> SessionState:
        st = SessionState(
            transaction_id=s.transaction_id,
            session_id=s.session_id,
            station_id=s.station_id,
            connector_id=s.connector_id,
            id_tag=s.id_tag,
            started_at=s.started_at,
            meter_start_wh=s.meter_start_wh,
            energy_wh=s.energy_wh,
            departure=s.departure,
            energy_need_wh=s.energy_need_wh,
            ev_max_current_a=s.ev_max_current_a,
            ev_min_current_a=s.ev_min_current_a,
            priority=s.priority if s.priority is not None else 1.0,
            charge_mode=self.settings.charge_modes.of(s.charge_mode, s.id_tag),
            rate=RateLearner(self.site.connectors[s.connector_id].lines, self.settings.rates),
        )
        self.estimate(st)
        return st

    def estimate(self, s: SessionState) -> None:
        """Departure and energy from the idTag's past sessions, else the site's defaults."""
        history = TagHistory()
        for past in self.records.past_sessions(s.id_tag) if s.id_tag else ():
            history.record(past)
        s.est_departure = estimate_departure(
            s.started_at, s.started_at, id_tag=s.id_tag, history=history, defaults=self.defaults
        ).departure
        s.est_energy_kwh = estimate_energy(
            id_tag=s.id_tag, history=history, defaults=self.defaults
        ).total_kwh

    def update_session(self, connector_id: str, **edits: Unpack[SessionEdits]) -> SessionChange:
        """Change what we assume of a running session (``energy_need_kwh``: what is
        still to deliver from now on); its next profile is sent whatever changed."""
        s = self.sessions[connector_id]
        priority, departure = edits.get("priority"), edits.get("departure")
        energy_need_kwh, charge_mode = edits.get("energy_need_kwh"), edits.get("charge_mode")
        if priority is not None:
            s.priority = float(priority)
        if charge_mode is not None:
            s.charge_mode = charge_mode
        if departure is not None:
            s.departure = departure
        if energy_need_kwh is not None:
            s.energy_need_wh = (s.delivered_kwh + float(energy_need_kwh)) * 1000.0
        self.book.get(connector_id).force_send = True
        detail = {
            "priority": priority,
            "departure": None if departure is None else departure.isoformat(),
            "energy_need_kwh": energy_need_kwh,
            "charge_mode": None if charge_mode is None else charge_mode.value,
        }
        need_wh = s.energy_need_wh if energy_need_kwh is not None else None
        return SessionChange(s, need_wh, detail)

    def superseded(
        self, active: Iterable[StoredSession], now: datetime
    ) -> tuple[list[StoredSession], list[EndSuperseded]]:
        """Of the sessions stored as open, those running (one per connector, the
        later start) and the store's ends of the others (to carry out before
        `recover`: an ended session counts in its idTag's history)."""
        running: dict[str, StoredSession] = {}
        ends: list[EndSuperseded] = []
        for s in active:
            if s.connector_id not in self.site.connectors:
                continue
            old = running.get(s.connector_id)
            if old is not None:
                # a connector runs one transaction: the later start is the one running
                # (e.g. a start resent after a crash before its answer got a new id)
                reason = f"still open, but {s.transaction_id!r} started later on the connector"
                self.conflict(
                    ("superseded", old.station_id, old.transaction_id),
                    ConflictReport(
                        "superseded",
                        old.station_id,
                        old.transaction_id,
                        old.connector_id,
                        reason,
                        now,
                    ),
                )
                ends.append(
                    EndSuperseded(
                        old.station_id, old.transaction_id, s.started_at, s.transaction_id
                    )
                )
            running[s.connector_id] = s
        return list(running.values()), ends

    def recover(
        self,
        running: Iterable[StoredSession],
        limits_in_force: Iterable[StoredLimit],
        unanswered: Iterable[StoredLimit],
    ) -> None:
        """Rebuild sessions and the limits in force from what is stored (after a
        restart; ``running``: see `superseded`).

        Every station counts as not connected until it reconnects: the plan
        reserves what it may draw and re-adopts it when it comes back."""
        for s in running:
            self.sessions[s.connector_id] = self.from_stored(s)
            self.book.start_transaction(s.connector_id)
        self._recover_limits(limits_in_force, unanswered)

    def _recover_limits(
        self, limits_in_force: Iterable[StoredLimit], unanswered: Iterable[StoredLimit]
    ) -> None:
        for lim in limits_in_force:
            sched = LimitSchedule(lim.start, lim.periods)
            if lim.purpose == LimitPurpose.TX and lim.connector_id in self.sessions:
                self.book.get(lim.connector_id).accepted = sched
            elif lim.purpose == LimitPurpose.TX_DEFAULT:
                if lim.connector_id in self.site.connectors:  # the connector's own
                    self.book.get(lim.connector_id).own_default_a = sched.periods[0][1]
                for cid, info in self.site.connectors.items():
                    if info.station_id == lim.connector_id:
                        self.book.get(cid).default_a = sched.periods[0][1]
        for lim in unanswered:
            # sent just before the crash, never answered: it may be in force
            if lim.connector_id in self.sessions:
                self.book.sending(lim.connector_id, LimitSchedule(lim.start, lim.periods))
        for cid in self.sessions:
            c = self.book.get(cid)
            c.pinned_until, c.pin_reason = math.inf, PinReason.NOT_CONNECTED

    # --- conflicts ---------------------------------------------------------------------------

    def isolate(self, isolated: Mapping[str, str], now: datetime) -> None:
        """Keep the conflicts current: warn once when a session is isolated."""
        keep: dict[tuple[str, ...], ConflictReport] = {}
        for cid, reason in isolated.items():
            s = self.sessions[cid]
            key: tuple[str, ...] = ("isolated", cid, s.station_id, s.transaction_id)
            old = self.conflicts.get(key)
            if old is None or old.reason != reason:
                log.warning(
                    "session %r of %r on %r left out of planning: %s",
                    s.transaction_id,
                    s.station_id,
                    cid,
                    reason,
                )
                old = ConflictReport("isolated", s.station_id, s.transaction_id, cid, reason, now)
            keep[key] = old
        for gone in [k for k in self.conflicts if k[0] == "isolated" and k not in keep]:
            del self.conflicts[gone]
        self.conflicts.update(keep)

    def conflict(self, key: tuple[str, ...], conflict: ConflictReport) -> None:
        """Report a session refused (or superseded); the latest few are kept."""
        log.warning(
            "session %r of %r %s: %s",
            conflict.transaction_id,
            conflict.station_id,
            conflict.kind,
            conflict.reason,
        )
        self.conflicts_total[conflict.kind] += 1
        self.conflicts.pop(key, None)
        self.conflicts[key] = conflict
        kept = [k for k in self.conflicts if k[0] == key[0]]
        for k in kept[: max(0, len(kept) - REFUSED_KEPT)]:
            del self.conflicts[k]


def priority_charging(state: SiteState, event: DomainEvent) -> list[Effect]:
    """A stored NotifyPriorityCharging: its session weighs `PRIORITY_CHARGING_WEIGHT`
    (1 once stopped) and gets its next profile; other events: nothing."""
    if not isinstance(event, PriorityChargingNotified):
        return []
    for s in state.sessions.values():
        if (s.station_id, s.transaction_id) == (event.station_id, event.transaction_id):
            s.priority = PRIORITY_CHARGING_WEIGHT if event.activated else 1.0
            state.book.get(s.connector_id).force_send = True
            return [Replan("priority charging")]
    return []
