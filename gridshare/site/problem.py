"""The planning problem of a site at a moment: its sessions' demands, the
capacity, and what the planner must count as fixed load.

`session_demand` is the one place a session's `SessionDemand` is assembled —
the service's sessions and the simulator's alike.

Fixed load: a connector the planner cannot steer now (its station refused or
does not answer, it waits for a retry, its session was never seen, or its
station is in doubt about its fallback limit) counts at the most it may draw.
With idle connectors counted (``reserve_for_arrivals``) each idle connector
counts at its fallback limit, as a car that plugs in draws it before the next
plan reaches its station. A running connector that does not follow its limit
(``ProblemBuilder.reserved``, see `site.compliance`) counts at what it draws.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from forecasts.demand import (
    LAST_MINUTE,
    DemandDefaults,
    RateLearner,
    still_plugged_in,
    still_wanted_kwh,
)
from gridshare.site.fallback import FallbackPolicy, SiteCapacity
from gridshare.site.lookups import PlanRows
from gridshare.site.state import SessionState, SiteState
from optimizer import Plan, PlanningProblem, SessionDemand
from optimizer.errors import ProblemError
from optimizer.modes import ChargeMode
from optimizer.problem import TimeGrid


def session_demand(
    session_id: str,
    connector_id: str,
    *,
    now: datetime,
    started_at: datetime,
    departure: datetime,
    delivered_kwh: float,
    defaults: DemandDefaults,
    need_kwh: float | None = None,
    estimate_kwh: float | None = None,
    energy_stated: bool | None = None,
    ev_max_current_a: float | None = None,
    ev_min_current_a: float | None = None,
    rate: RateLearner | None = None,
    priority: float = 1.0,
    charge_mode: ChargeMode = ChargeMode.FAST,
) -> SessionDemand:
    """A session's demand as the planner sees it at ``now``.

    ``departure``: stated or estimated (a car still plugged in after it stays
    longer). The energy: ``need_kwh``, a stated need counted from the session's
    start (what is left of it, maybe nothing), else ``estimate_kwh`` (at least a
    top-up is left: the car may want more than estimated), else the site's
    default. ``energy_stated`` (default: whether ``need_kwh`` is given) decides
    whether the battery's tail is planned. ``rate``: what the meter values
    taught (the car's real maximum and the lines it loads)."""
    if need_kwh is not None:
        need = max(0.0, need_kwh - delivered_kwh)
    else:
        est = estimate_kwh if estimate_kwh is not None else defaults.energy_kwh
        need = still_wanted_kwh(est, delivered_kwh, defaults)
    learned = rate.max_current_a if rate is not None else None
    caps = [c for c in (ev_max_current_a, learned) if c is not None]
    arrival = min(started_at, now)
    stated = energy_stated if energy_stated is not None else need_kwh is not None
    return SessionDemand(
        session_id=session_id,
        connector_id=connector_id,
        arrival=arrival,
        departure=max(still_plugged_in(departure, now, defaults), arrival + timedelta(minutes=1)),
        energy_kwh=need,
        ev_max_current_a=min(caps) if caps else None,
        ev_min_current_a=ev_min_current_a,
        priority=priority,
        charge_mode=charge_mode,
        lines=rate.lines if rate is not None else None,
        taper_kwh=defaults.taper_for(energy_stated=stated),
    )


def demand_of(s: SessionState, now: datetime, defaults: DemandDefaults) -> SessionDemand:
    """A running session's demand: what the car said, else the estimates."""
    departure = s.departure or s.est_departure or (now + timedelta(hours=defaults.dwell_hours))
    return session_demand(
        s.session_id,
        s.connector_id,
        now=now,
        started_at=s.started_at,
        departure=departure,
        delivered_kwh=s.delivered_kwh,
        defaults=defaults,
        need_kwh=None if s.energy_need_wh is None else s.energy_need_wh / 1000.0,
        estimate_kwh=s.est_energy_kwh,
        ev_max_current_a=s.ev_max_current_a,
        ev_min_current_a=s.ev_min_current_a,
        rate=s.rate,
        priority=s.priority,
        charge_mode=s.charge_mode,
    )


@dataclass(frozen=True)
class SiteProblem:
    """A planning problem and the connectors left out of it."""

    problem: PlanningProblem
    fixed: Mapping[str, float]
    """Connector → the current it counts at (what the planner does not steer)."""
    isolated: Mapping[str, str]
    """Connector → why its session was left out (an inconsistent record)."""


class DemandCache:
    """Each running session's demand, rebuilt only when what it is made of
    changes (a re-plan after one meter value rebuilds one, not thousands).

    A kept demand is reused only while it does not depend on ``now``: the
    session started before ``now`` and its departure is more than a minute
    ahead (`still_plugged_in` returns it as it is)."""

    def __init__(self, state: SiteState) -> None:
        self.state = state
        self._kept: dict[str, tuple[tuple[object, ...], SessionDemand]] = {}

    def __call__(self, s: SessionState, now: datetime) -> SessionDemand:
        departure = s.departure or s.est_departure
        rate, defaults = s.rate, self.state.defaults
        key = (
            defaults,
            s.session_id,
            s.connector_id,
            s.started_at,
            departure,
            s.energy_wh,
            s.meter_start_wh,
            s.energy_need_wh,
            s.est_energy_kwh,
            s.ev_max_current_a,
            s.ev_min_current_a,
            rate.max_current_a,
            rate.lines,
            s.priority,
            s.charge_mode,
        )
        kept = self._kept.get(s.connector_id)
        if (
            kept is not None
            and kept[0] == key
            and departure is not None
            and departure > now + LAST_MINUTE
            and s.started_at <= now
        ):
            return kept[1]
        demand = demand_of(s, now, defaults)
        self._kept[s.connector_id] = (key, demand)
        return demand

    def keep_only(self, connectors: Collection[str]) -> None:
        """Forget the sessions no longer running."""
        for cid in [c for c in self._kept if c not in connectors]:
            del self._kept[cid]


class ProblemBuilder:
    def __init__(
        self,
        state: SiteState,
        fallback: FallbackPolicy,
        capacity: SiteCapacity,
        rows: PlanRows,
    ) -> None:
        self.state = state
        self.site = state.site
        self.book = state.book
        self.fallback = fallback
        self.capacity = capacity
        self.rows = rows
        self.demands = DemandCache(state)
        self.reserved: Callable[[], Mapping[str, float]] = dict
        """Connector → what it really draws, for those not following their limit."""

    def demand(self, s: SessionState, now: datetime) -> SessionDemand:
        return self.demands(s, now)

    def build(self, now: datetime, mono: float, *, previous: Plan | None = None) -> SiteProblem:
        """The problem at ``now`` (``mono``: the monotonic clock, for pins);
        ``previous``: the plan whose current rates to keep unless there is a
        reason to move (anti-flapping)."""
        site = self.site
        book = self.book
        grid = TimeGrid.covering(now, site.site.slot_minutes, site.site.horizon_hours)
        capacity = self.capacity(grid, now)
        pinned = book.pinned(mono)
        # with idle connectors counted, a station in doubt about its fallback
        # limit draws up to its maximum whatever we send: fixed load
        doubtful = self.fallback.doubtful() if book.count_idle else set()
        fixed: dict[str, float] = {}
        for cid, c in book.connectors.items():
            # not ours to plan: refused, unreachable, waiting, or a session we never saw
            if c.active and (
                cid in pinned
                or cid not in self.state.sessions
                or site.connectors[cid].station_id in doubtful
            ):
                fixed[cid] = book.worst_max(cid, now, grid)
        self.add_reserved(fixed)
        idle = (
            [cid for cid in site.connectors if not book.get(cid).active] if book.count_idle else []
        )
        if idle:
            restore = self.fallback.default_targets(now)
            for cid in idle:
                # an idle connector's own fallback goes back up to its share
                fixed[cid] = max(book.worst_max(cid, now, grid), restore.get(cid, 0.0))
        demands, isolated = self.admissible(now, fixed)
        for cid in isolated:
            # still running at its station: counted at the most it may draw
            fixed[cid] = book.worst_max(cid, now, grid)
        rates: dict[str, float] = {}
        rows = self.rows(previous)
        if previous is not None:
            for d in demands:
                if d.connector_id in rows:
                    rates[d.session_id] = previous.now_a(d.connector_id)
        problem = PlanningProblem(
            site, grid, now, tuple(demands), capacity, fixed_load_a=fixed, previous=rates
        )
        return SiteProblem(problem, fixed, isolated)

    def add_reserved(self, fixed: dict[str, float]) -> None:
        """Running connectors that ignore their limit count at what they draw: the
        planner takes it off the others, so the group stays within its limits."""
        for cid, draw in self.reserved().items():
            if cid in self.site.connectors and self.book.get(cid).active:
                fixed[cid] = max(fixed.get(cid, 0.0), draw)

    def admissible(
        self, now: datetime, fixed: Mapping[str, float]
    ) -> tuple[list[SessionDemand], dict[str, str]]:
        """The demands of the sessions to plan, and the connectors whose session
        must be left out (with why): one inconsistent session (a record the
        planner would refuse, two sessions claiming one id or one connector)
        never stops the others from being planned."""
        conns = self.site.connectors
        isolated: dict[str, str] = {}
        candidates: list[SessionDemand] = []
        for cid, s in self.state.sessions.items():
            if cid in fixed:
                continue  # not ours to plan now
            if s.connector_id != cid:
                isolated[cid] = f"recorded on {s.connector_id!r}, running on {cid!r}"
                continue
            if s.lines is not None and not set(s.lines) <= set(conns[cid].lines):
                isolated[cid] = f"lines {[x.value for x in s.lines]} not wired at {cid!r}"
                continue
            try:
                candidates.append(self.demand(s, now))
            except ProblemError as e:
                isolated[cid] = str(e)
        self.demands.keep_only(self.state.sessions)
        ids = Counter(d.session_id for d in candidates)
        demands = []
        for d in candidates:
            if ids[d.session_id] > 1:
                isolated[d.connector_id] = f"session id {d.session_id!r} repeats"
            else:
                demands.append(d)
        return demands, isolated
