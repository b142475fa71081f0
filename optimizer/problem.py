"""The planning problem: what the optimizer is asked, as typed data.

Everything is indexed by label: connectors by ``STATION/CONNECTOR`` key,
sessions by id, groups by id, slots by their start time on a `TimeGrid`.
Capacity series are numpy arrays over the grid's slots.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta

import numpy as np

from optimizer.errors import ProblemError
from optimizer.modes import ChargeMode
from optimizer.site import Line, Site


@dataclass(frozen=True)
class TimeGrid:
    """``slots`` consecutive slots of ``slot_minutes`` from ``start`` (aware, UTC)."""

    start: datetime
    slot_minutes: int
    slots: int

    def __post_init__(self) -> None:
        if self.start.tzinfo is None:
            raise ProblemError("TimeGrid.start must be timezone-aware")
        if self.slots < 1:
            raise ProblemError("TimeGrid needs at least one slot")

    @classmethod
    def covering(cls, now: datetime, slot_minutes: int, horizon_hours: float) -> TimeGrid:
        """The grid whose first slot contains ``now`` (aligned to the slot length)."""
        if now.tzinfo is None:
            raise ProblemError("now must be timezone-aware")
        now = now.astimezone(UTC)
        epoch = datetime(2000, 1, 1, tzinfo=UTC)
        step = timedelta(minutes=slot_minutes)
        start = epoch + ((now - epoch) // step) * step
        slots = max(1, math.ceil(horizon_hours * 60 / slot_minutes))
        return cls(start=start, slot_minutes=slot_minutes, slots=slots)

    @property
    def step(self) -> timedelta:
        return timedelta(minutes=self.slot_minutes)

    @property
    def end(self) -> datetime:
        return self.start + self.slots * self.step

    @property
    def slot_hours(self) -> float:
        return self.slot_minutes / 60.0

    def slot_start(self, i: int) -> datetime:
        return self.start + i * self.step

    def starts(self) -> list[datetime]:
        return [self.slot_start(i) for i in range(self.slots)]

    def position(self, t: datetime) -> float:
        """Fractional slot index of ``t`` (may be outside [0, slots])."""
        return (t - self.start) / self.step

    def epoch_slot(self) -> int:
        """Absolute index of slot 0 counted from 2000-01-01 UTC (stable across re-plans)."""
        epoch = datetime(2000, 1, 1, tzinfo=UTC)
        return int((self.start - epoch) // self.step)


@dataclass(frozen=True)
class SessionDemand:
    """A car plugged in (or announced) at a connector, with what it still needs."""

    session_id: str
    connector_id: str
    arrival: datetime
    departure: datetime
    energy_kwh: float
    """Energy still needed from now on."""
    ev_max_current_a: float | None = None
    ev_min_current_a: float | None = None
    priority: float = 1.0
    lines: tuple[Line, ...] | None = None
    """Lines the car really loads, if learned (e.g. a 1-phase car on a 3-phase
    connector loads only the connector's first line)."""
    taper_kwh: float | None = None
    """Battery tail: over its last ``taper_kwh`` the car takes at most the
    connector's maximum × energy still to go / ``taper_kwh`` (the
    constant-voltage phase). None: not modelled (the car takes its maximum
    until full)."""
    charge_mode: ChargeMode = ChargeMode.FAST
    """Fast, or from the PV surplus only (`optimizer.solar`)."""

    def __post_init__(self) -> None:
        if self.arrival.tzinfo is None or self.departure.tzinfo is None:
            raise ProblemError(f"session {self.session_id}: times must be timezone-aware")
        if not self.departure > self.arrival:
            raise ProblemError(f"session {self.session_id}: departure must be after arrival")
        if not (self.energy_kwh >= 0 and math.isfinite(self.energy_kwh)):
            raise ProblemError(f"session {self.session_id}: energy_kwh must be ≥ 0")
        if not self.priority > 0:
            raise ProblemError(f"session {self.session_id}: priority must be > 0")
        taper = self.taper_kwh
        if taper is not None and not (taper > 0 and math.isfinite(taper)):
            raise ProblemError(f"session {self.session_id}: taper_kwh must be > 0")
        if self.ev_max_current_a is not None and self.ev_max_current_a < 0:
            raise ProblemError(f"session {self.session_id}: ev_max_current_a must be ≥ 0")


@dataclass(frozen=True)
class LimitWindow:
    """A limit on a group over ``[start, end)`` (None: open on that side).

    The one shape of a limit over time: an operator's limit, a capacity file's
    row, a simulated cut. `Capacity.limited` folds them into the capacity."""

    group_id: str
    start: datetime | None = None
    end: datetime | None = None
    limit_a: float | None = None
    limit_kw: float | None = None

    def covers(self, t0: datetime, t1: datetime) -> bool:
        """Whether it is in force at any moment of ``[t0, t1)`` (``t0 == t1``: at t0)."""
        return (self.start is None or self.start <= t0 or self.start < t1) and (
            self.end is None or self.end > t0
        )

    def slots(self, grid: TimeGrid, since: datetime | None = None) -> np.ndarray:
        """Per slot of ``grid``: whether the window touches it (after ``since``:
        a window that ended before it is over, even within its slot)."""
        starts = grid.starts()
        if since is not None:
            return np.array([self.covers(max(t, since), t + grid.step) for t in starts], bool)
        return np.array([self.covers(t, t + grid.step) for t in starts], dtype=bool)


@dataclass(frozen=True)
class Capacity:
    """Per-slot limits of the groups, over a grid. Missing group → its static limit.

    ``limit_a[g]`` is the per-line current limit, ``limit_kw[g]`` the total power
    limit; ``inf`` means no limit in that slot.
    """

    limit_a: Mapping[str, np.ndarray] = field(default_factory=dict)
    limit_kw: Mapping[str, np.ndarray] = field(default_factory=dict)
    non_ev_a: Mapping[str, Mapping[Line, np.ndarray]] = field(default_factory=dict)
    """Group → line → per-slot current that is not the chargers' (a building
    behind the same connection; ≥ 0): taken off the group's limit on that line
    and, at the site's voltage, off its power limit (`optimizer.families`). It
    can only lower what the chargers get, never raise a limit."""
    surplus_a: Mapping[str, np.ndarray] = field(default_factory=dict)
    """Group → per-slot generation beyond its non-EV load, summed over the lines
    (A, ≥ 0): what the solar charging modes may draw (`optimizer.solar`)."""

    def with_non_ev(self, loads: Mapping[str, Mapping[Line, np.ndarray]]) -> Capacity:
        """A copy whose non-EV load is ``loads`` (negative values count as 0:
        a load never frees capacity beyond the limits; their net sum below 0
        is the group's surplus)."""
        clean = {
            g: {
                line: np.maximum(np.nan_to_num(np.asarray(v, float), nan=0.0), 0.0)
                for line, v in by_line.items()
            }
            for g, by_line in loads.items()
        }
        surplus = {
            g: np.maximum(-np.nan_to_num(sum(np.asarray(v, float) for v in by_line.values())), 0.0)
            for g, by_line in loads.items()
            if by_line
        }
        return Capacity(self.limit_a, self.limit_kw, clean, surplus)

    @classmethod
    def static(cls, site: Site, grid: TimeGrid) -> Capacity:
        la: dict[str, np.ndarray] = {}
        lk: dict[str, np.ndarray] = {}
        for g in site.groups:
            la[g.id] = np.full(grid.slots, g.limit_a if g.limit_a is not None else np.inf)
            lk[g.id] = np.full(grid.slots, g.limit_kw if g.limit_kw is not None else np.inf)
        return cls(la, lk)

    def lowered(
        self, group_id: str, mask: np.ndarray, *, limit_a: float | None, limit_kw: float | None
    ) -> Capacity:
        """A copy with the group's limits lowered to the given values where ``mask``."""
        la = {k: v.copy() for k, v in self.limit_a.items()}
        lk = {k: v.copy() for k, v in self.limit_kw.items()}
        if limit_a is not None:
            la[group_id][mask] = np.minimum(la[group_id][mask], limit_a)
        if limit_kw is not None:
            lk[group_id][mask] = np.minimum(lk[group_id][mask], limit_kw)
        return replace(self, limit_a=la, limit_kw=lk)

    def limited(
        self, grid: TimeGrid, windows: Iterable[LimitWindow], *, since: datetime | None = None
    ) -> Capacity:
        """The capacity with every window folded in: a slot a window touches is
        limited for its whole length, the most restrictive applies. ``since``:
        see `LimitWindow.slots`. Without a window, ``self``."""
        windows = [w for w in windows if w.limit_a is not None or w.limit_kw is not None]
        if not windows:
            return self
        la = {k: np.asarray(v, dtype=float).copy() for k, v in self.limit_a.items()}
        lk = {k: np.asarray(v, dtype=float).copy() for k, v in self.limit_kw.items()}
        for w in windows:
            mask = w.slots(grid, since)
            for table, value in ((la, w.limit_a), (lk, w.limit_kw)):
                if value is None:
                    continue
                cur = table.get(w.group_id, np.full(grid.slots, np.inf))
                table[w.group_id] = np.where(mask, np.minimum(cur, value), cur)
        return replace(self, limit_a=la, limit_kw=lk)


@dataclass(frozen=True)
class PlanningProblem:
    site: Site
    grid: TimeGrid
    now: datetime
    sessions: tuple[SessionDemand, ...]
    capacity: Capacity
    prices: np.ndarray | None = None
    """Energy price per slot (any currency per kWh); steers the objective only."""
    fixed_load_a: Mapping[str, float] = field(default_factory=dict)
    """Connector → current it is assumed to draw whatever we plan (a station that
    does not answer or rejected its profile). Reserved in every group it is in."""
    previous: Mapping[str, float] = field(default_factory=dict)
    """Session id → current planned for it now by the previous plan (anti-flapping)."""

    def __post_init__(self) -> None:
        if self.now.tzinfo is None:
            raise ProblemError("now must be timezone-aware")
        conns = self.site.connectors
        spans: dict[str, list[tuple[datetime, datetime, str]]] = {}
        ids = set()
        for s in self.sessions:
            if s.session_id in ids:
                raise ProblemError(f"session id {s.session_id!r} repeats")
            ids.add(s.session_id)
            if s.connector_id not in conns:
                raise ProblemError(f"session {s.session_id}: unknown connector {s.connector_id!r}")
            if s.lines is not None and not set(s.lines) <= set(conns[s.connector_id].lines):
                raise ProblemError(
                    f"session {s.session_id}: lines {s.lines} not wired at {s.connector_id}"
                )
            spans.setdefault(s.connector_id, []).append((s.arrival, s.departure, s.session_id))
        for cid, lst in spans.items():
            lst.sort()
            for (_, d0, a), (a1, _, b) in itertools.pairwise(lst):
                if a1 < d0:
                    raise ProblemError(f"sessions {a} and {b} overlap on connector {cid}")
        for g in self.site.groups:
            for series in (self.capacity.limit_a, self.capacity.limit_kw):
                arr = series.get(g.id)
                if arr is not None and arr.shape != (self.grid.slots,):
                    raise ProblemError(f"capacity of {g.id}: expected {self.grid.slots} slots")
                if arr is not None and np.any(arr < 0):
                    raise ProblemError(f"capacity of {g.id} is negative")
            for arr in self.capacity.non_ev_a.get(g.id, {}).values():
                if arr.shape != (self.grid.slots,) or not np.all(np.isfinite(arr)):
                    raise ProblemError(
                        f"non-EV load of {g.id}: expected {self.grid.slots} finite slots"
                    )
            surplus = self.capacity.surplus_a.get(g.id)
            if surplus is not None and (
                surplus.shape != (self.grid.slots,)
                or not np.all(np.isfinite(surplus) & (surplus >= 0))
            ):
                raise ProblemError(
                    f"PV surplus of {g.id}: expected {self.grid.slots} finite slots ≥ 0"
                )
        if self.prices is not None and self.prices.shape != (self.grid.slots,):
            raise ProblemError(f"prices: expected {self.grid.slots} slots")
