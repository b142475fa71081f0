"""The fallback policy: which TxDefault limit each station should have.

Every station gets a TxDefault limit at boot; summed over any group they fit
its fallback capacity (so the site cannot overload if gridshare stops), and
they follow the capacity down when a DSO cuts it. A station that refused its
fallback limit or has not answered (yet) is assumed to draw what it may (its
last accepted fallback, else its maximum): the others share what is left, and
the planner reserves it as fixed load. A running transaction counts at least at
its connector's fallback limit, which is in force the moment it ends: where the
plan gives a session less, the connector gets a TxDefault of its own at what
the plan gives it, raised back to the station's share once it is free again.

The policy decides; the asyncio layer sends and reports the answers back
(`sending`, `answered`).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime

import numpy as np

from gridshare.rollout import LimitBook, LoadModel, fallback_limits, fallback_spec, raise_fits
from gridshare.site.lookups import PlanRows
from gridshare.site.settings import ControllerSettings
from gridshare.site.state import SiteState
from ocpp_adapter.events import ChargingLimitSpec, CommandOutcome, CommandResult
from optimizer import Plan
from optimizer.problem import Capacity, TimeGrid
from optimizer.site import Line

log = logging.getLogger(__name__)

SiteCapacity = Callable[[TimeGrid, datetime], Capacity]
"""Planning grid, now → the capacity the planner sees (forecasts, operator limits)."""


@dataclass(frozen=True)
class FallbackMoves:
    """Stations whose fallback limit should go down now, and those that may go
    up if it fits next to everything that may be in force (`FallbackPolicy.admit`)."""

    wanted: Mapping[str, float]
    lower: list[str]
    higher: list[str]


class FallbackPolicy:
    def __init__(
        self,
        state: SiteState,
        capacity: SiteCapacity,
        rows: PlanRows,
        settings: ControllerSettings | None = None,
    ) -> None:
        self.state = state
        self.site = state.site
        self.book: LimitBook = state.book
        self.capacity = capacity
        self.rows = rows
        self.settings = settings or ControllerSettings()
        self.building: dict[str, dict[Line, float]] = {}
        """Group → line → the worst non-EV load behind it (its meters' ``max_non_ev_a``):
        the fallbacks leave it free, so the site is safe if the central system stops."""
        self.shares = fallback_limits(self.site)
        """Per station: its fallback share of the groups' static fallback limits."""
        self.in_force: dict[str, float] = {}
        """Per station: its last accepted fallback limit."""
        self.pending: dict[str, float] = {}
        """Station → the fallback limit on its way to it."""
        self.failed: set[str] = set()
        """Stations whose last fallback limit was refused or not answered."""
        self.retry_at: dict[str, float] = {}
        """Station → (monotonic) when to try it again."""
        self._cache: tuple[object, dict[str, float]] | None = None

    def now(self, now: datetime, *, exclude: str | None = None) -> dict[str, float]:
        """Per station: the fallback share, never above what the groups have now
        or in the next slot (a DSO's cut lowers the shares too, so the fallbacks
        still fit). A fallback is constant and only a re-plan changes it, the
        first after a boundary at the earliest: a cut starting there must bound
        it already.

        Stations in doubt about their fallback limit (refused, not answered,
        on its way, never accepted) count at what they may draw; the others
        share the rest.
        A station in doubt gets what it would to try again: its share as if
        all cooperated, never above what it is assumed to draw. ``exclude``: a
        station about to get its first limit counts as cooperating."""
        minutes = self.site.site.slot_minutes
        grid = TimeGrid.covering(now, minutes, 2 * minutes / 60)
        cap = self.capacity(grid, now)
        limits: dict[str, float] = {}
        for g in self.site.groups:
            fb = g.fallback_limit_a if g.fallback_limit_a is not None else g.limit_a
            arr = cap.limit_a.get(g.id)
            now_a = float(np.min(arr)) if arr is not None else math.inf
            fb = min(fb if fb is not None else math.inf, now_a)
            if math.isfinite(fb):
                limits[g.id] = fb
        fixed = {
            cid: self.assumed_a(cid, grid)
            for sid in sorted(self.doubtful(exclude))
            for cid in self.state.station_connectors(sid)
        }
        key = (tuple(sorted(limits.items())), tuple(sorted(fixed.items())))
        if self._cache is None or self._cache[0] != key:
            static = fallback_limits(self.site, limits, non_ev_a=self.building)
            out = (
                fallback_limits(self.site, limits, fixed, self.building) if fixed else dict(static)
            )
            for cid, a in fixed.items():
                sid = self.site.connectors[cid].station_id
                if sid in static:
                    out[sid] = min(out.get(sid, static[sid]), a)
            self._cache = (key, out)
        return self._cache[1]

    def assume_building(self, worst: Mapping[str, Mapping[Line, float]]) -> None:
        """Leave ``worst`` (group → line → A of non-EV load) free in every fallback."""
        self.building = {g: dict(v) for g, v in worst.items()}
        self.shares = fallback_limits(self.site, non_ev_a=self.building)
        self._cache = None

    def doubtful(self, exclude: str | None = None) -> set[str]:
        """Stations whose fallback limit is not known to be in force: refused,
        not answered, on its way, or never accepted (a station not heard from
        yet may draw its maximum, as the planner assumes of its connectors)."""
        out = set(self.pending) | self.failed
        if self.settings.fallback_on_boot:
            for sid, cids in self.state.stations.items():
                if self.book.get(cids[0]).default_a is None:
                    out.add(sid)
        if exclude is not None:
            out.discard(exclude)
        return out

    def assumed_a(self, cid: str, grid: TimeGrid) -> float:
        """What a connector may draw whatever we send it now (its fallback, and
        a running transaction's profiles)."""
        a = self.book.default_worst(cid)
        if self.book.get(cid).active:
            a = max(a, float(np.max(self.book.worst(cid, grid, fallback=False))))
        return a

    def default_targets(
        self,
        now: datetime,
        plan: Plan | None = None,
        fixed: Mapping[str, float] | None = None,
    ) -> dict[str, float]:
        """Connector → the TxDefault limit it should have of its own.

        A running session planned below its station's fallback share: the
        lowest the plan gives it (so the limit in force when it ends is within
        what the plan reserved for it at every moment). An idle connector with
        a limit of its own: back to the share. Connectors the station's limit
        serves are left out. Only with idle connectors counted
        (``reserve_for_arrivals``): without, an ended transaction counts at 0.
        """
        if not self.book.count_idle:
            return {}
        wanted = self.now(now)
        doubtful = self.doubtful()
        rows = self.rows(plan)
        lows = plan.current_a.min(axis=1) if plan is not None and rows else None
        fixed = fixed or {}
        out: dict[str, float] = {}
        for cid, info in self.site.connectors.items():
            sid = info.station_id
            if sid not in self.state.connected or sid in doubtful or sid not in wanted:
                continue
            c = self.book.get(cid)
            target = wanted[sid]
            if c.active:
                row = rows.get(cid)
                if lows is None or row is None or cid in fixed:
                    continue
                lowest = math.floor(float(lows[row]) * 10 + 1e-9) / 10
                target = min(target, lowest)
                if target < info.connector.min_current_a - 1e-6:
                    target = 0.0
            if c.own_default_a is None and c.default_a is not None and target >= c.default_a:
                continue  # the station's own limit serves it
            out[cid] = target
        return out

    # --- following the capacity ------------------------------------------------------------

    def moves(self, now: datetime, mono: float) -> FallbackMoves:
        """Which connected stations' fallback limits to lower now and which may
        rise. A station that refused or did not answer is tried again after
        ``pin_s``."""
        wanted = self.now(now)
        lower: list[str] = []
        higher: list[str] = []
        for sid in self.state.connected:
            cids = self.state.station_connectors(sid)
            if not cids or sid not in wanted or sid in self.pending:
                continue
            if self.retry_at.get(sid, -math.inf) > mono:
                continue  # it refused or did not answer lately: leave it be
            cur = self.book.get(cids[0]).default_a
            if sid in self.failed or (cur is None and self.settings.fallback_on_boot):
                lower.append(sid)  # never above what it is assumed to draw
                continue
            if cur is None:
                continue
            if wanted[sid] < cur - 1e-6:
                lower.append(sid)
            elif wanted[sid] >= cur + self.settings.min_change_a - 1e-6:
                higher.append(sid)
        return FallbackMoves(wanted, lower, higher)

    def admit(
        self,
        higher: list[str],
        wanted: Mapping[str, float],
        model: LoadModel,
        capacity: Capacity,
        grid: TimeGrid,
    ) -> list[str]:
        """Of the stations whose fallback may rise, those whose rise fits next to
        everything that may be in force (in turn: each admitted rise counts for
        the next)."""
        cap = model.capacity(self.site, capacity, grid)
        worst = self.book.worst_all(grid)
        load = model.load(worst, grid.slots)
        admitted = []
        for sid in higher:
            rises = {}
            for cid in self.state.station_connectors(sid):
                c = self.book.get(cid)
                if c.own_default_a is not None:
                    continue  # its own limit applies, not the station's
                if not self.book.count_idle and (not c.active or c.accepted is not None):
                    continue  # not counted, or its profile applies
                rises[cid] = np.maximum(worst.get(cid, np.zeros(grid.slots)), wanted[sid])
            if all(raise_fits(cid, new, worst, model, cap, load) for cid, new in rises.items()):
                for cid, new in rises.items():
                    delta = new - worst.get(cid, np.zeros(grid.slots))
                    for f, coef in model.members.get(cid, ()):
                        load[f] += coef * delta
                    worst[cid] = new
                admitted.append(sid)
        return admitted

    # --- installing --------------------------------------------------------------------------

    def limit_for(self, station_id: str, now: datetime) -> float:
        """A station's share of what the others, in doubt or not, leave."""
        wanted = self.now(now, exclude=station_id)
        return wanted.get(station_id, self.shares[station_id])

    def spec(self, station_id: str, limit: float, now: datetime) -> ChargingLimitSpec:
        """TxDefault on connector 0 whose sum over every group fits its fallback."""
        return fallback_spec(station_id, limit, now, self.site)

    def sending(self, station_id: str, limit: float) -> None:
        """The limit is on its way: until answered it may or may not be in force."""
        self.pending[station_id] = limit
        for cid in self.state.station_connectors(station_id):
            self.book.default_sending(cid, limit)

    def sent(self, station_id: str) -> None:
        """No longer on its way (answered, timed out or cancelled)."""
        self.pending.pop(station_id, None)

    def answered(self, station_id: str, limit: float, result: CommandResult, mono: float) -> str:
        """The station's answer; the reason to plan again."""
        cids = self.state.station_connectors(station_id)
        for cid in cids:
            self.book.default_answered(cid, limit, result)
        if result.outcome is CommandOutcome.ACCEPTED:
            self.in_force[station_id] = limit
            self.retry_at.pop(station_id, None)
            self.failed.discard(station_id)
            return "fallback installed"
        # assumed to draw what it may: the others' fallbacks and the plan make room
        log.warning("fallback limit for %s: %s %s", station_id, result.outcome.value, result.detail)
        self.retry_at[station_id] = mono + self.settings.pin_s
        self.failed.add(station_id)
        for cid in cids:
            self.book.pin(cid, result, mono, pin_s=self.settings.pin_s)
        return "fallback refused"

    def connected(self, station_id: str) -> None:
        """A station (re)connected: try it again at once."""
        self.retry_at.pop(station_id, None)
