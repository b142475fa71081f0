"""Safe rollout of a plan to stations (invariant 1 of the design).

The limits a plan wants must reach the stations one message at a time, and
some stations answer late, refuse, or never answer. This module keeps the sum
of the limits that *may* be in force within every group's capacity at every
moment of a rollout:

* `LimitBook` knows, per connector, the limit last accepted, the limits sent
  but not confirmed (a timeout may or may not have taken effect) and the
  fallback (TxDefault) limit in force there: the connector's own if it has
  one, else the station's (connector 0). Its *worst case* is the pointwise
  maximum of all of these: what the connector may draw whatever happened.
  A connector without a running transaction counts at its fallback limit
  (``count_idle``: a car may plug in and draw it before the next plan) or,
  if the service chooses so, at nothing. With ``count_idle`` a running
  transaction counts at its fallback limit too: the moment it ends, that is
  the limit in force, before any plan can follow.
* `plan_rollout` turns a plan's targets into two steps: first every lowering
  (for a schedule that goes down in some slots and up in others, the pointwise
  minimum of old and new), then the raisings. Small changes are skipped
  (hysteresis: only the next ``near_slots`` slots count, later ones follow at
  the slot boundaries) when keeping the old limit is still within capacity. A
  running transaction without a profile of its own always gets one.
* `run_rollout` sends the lowerings (transaction profiles and connectors'
  own fallback limits), waits for every answer, and only then sends each
  raising that, added to the worst case of everything else, still fits every
  limit it loads in every slot. A raising that does not fit is
  withheld and the next plan sorts it out. A station that has not answered
  within ``answer_timeout_s`` counts as not answering.
* A connector whose station refuses, does not answer or asks us to wait
  (RateLimitExceeded) is *pinned*: the next plan reserves its worst case
  (``fixed_load_a``) and leaves it alone until the pin expires.

Everything but `run_rollout` is pure; `run_rollout` talks to a
`StationGateway` (the OCPP adapter in production, a fake in tests).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Protocol

import numpy as np

from ocpp_adapter.events import (
    ChargingLimitSpec,
    CommandOutcome,
    CommandResult,
    LimitPeriod,
    LimitPurpose,
)
from optimizer.problem import Capacity, TimeGrid
from optimizer.site import LINES, Line, Site, station_of

EPS = 1e-6


# --- schedules -----------------------------------------------------------------


@dataclass(frozen=True)
class LimitSchedule:
    """A per-line current limit over time, as a station stores it.

    ``periods`` are (offset in seconds from ``start``, limit in A), offsets
    increasing from 0; the last period lasts for ever. Before ``start`` the
    first period's limit is assumed (schedules start in the past).
    """

    start: datetime
    periods: tuple[tuple[int, float], ...]

    def __post_init__(self) -> None:
        if not self.periods or self.periods[0][0] != 0:
            raise ValueError("a schedule needs periods starting at offset 0")

    @classmethod
    def constant(cls, start: datetime, limit_a: float) -> LimitSchedule:
        return cls(start, ((0, float(limit_a)),))

    @classmethod
    def from_slots(cls, grid: TimeGrid, values: Sequence[float] | np.ndarray) -> LimitSchedule:
        """One period per run of equal neighbouring slot values."""
        step = int(grid.step.total_seconds())
        v = np.round(np.asarray(values, dtype=float), 1)
        starts = np.flatnonzero(np.concatenate(([True], v[1:] != v[:-1])))
        periods = tuple(zip((starts * step).tolist(), v[starts].tolist(), strict=True))
        return cls(grid.start, periods)

    def on(self, grid: TimeGrid) -> np.ndarray:
        """The limit in force at each slot of ``grid`` (slots start on period boundaries)."""
        cached = self.__dict__.get("_on_cache")
        if cached is not None and cached[0] == grid:
            return cached[1]
        out = self._values_on(grid)
        out.setflags(write=False)
        object.__setattr__(self, "_on_cache", (grid, out))
        return out

    def _values_on(self, grid: TimeGrid) -> np.ndarray:
        first = (grid.start - self.start).total_seconds()
        offs = first + np.arange(grid.slots) * grid.step.total_seconds()
        starts = np.array([p[0] for p in self.periods], dtype=float)
        idx = np.searchsorted(starts, offs + EPS, side="right") - 1
        vals = np.array([p[1] for p in self.periods])
        return vals[np.maximum(idx, 0)]

    def at(self, t: datetime) -> float:
        off = (t - self.start).total_seconds()
        value = self.periods[0][1]
        for start, limit in self.periods:
            if start <= off + EPS:
                value = limit
        return value

    def max_from(self, t: datetime) -> float:
        """The highest limit from ``t`` on."""
        off = (t - self.start).total_seconds()
        best = self.at(t)
        for start, limit in self.periods:
            if start > off:
                best = max(best, limit)
        return best

    def to_spec(
        self,
        purpose: LimitPurpose,
        connector: int,
        *,
        transaction_id: str | None,
        number_phases: int,
        voltage_v: float = 230.0,
        max_periods: int | None = None,
    ) -> ChargingLimitSpec:
        """The version-independent profile for the OCPP adapter.

        With ``max_periods``, the tail beyond the station's period count is
        merged into one period at its *lowest* limit: never more permissive.
        """
        periods = list(self.periods)
        if max_periods is not None and len(periods) > max_periods:
            head, tail = periods[: max_periods - 1], periods[max_periods - 1 :]
            periods = [*head, (tail[0][0], min(p[1] for p in tail))]
        return ChargingLimitSpec(
            purpose=purpose,
            connector=connector,
            start=self.start,
            periods=tuple(LimitPeriod(off, lim, number_phases) for off, lim in periods),
            transaction_id=transaction_id,
            voltage_v=voltage_v,
        )


def schedule_from_spec(spec: ChargingLimitSpec) -> LimitSchedule:
    return LimitSchedule(spec.start, tuple((p.start_offset_s, p.limit_a) for p in spec.periods))


# --- what limits each connector loads ---------------------------------------------


@dataclass(frozen=True)
class LoadModel:
    """The site's limit families and each connector's share of them.

    A family is (group, ``L1``/``L2``/``L3``) with coefficient 1 for every line
    the connector loads, (group, ``kW``) with the connector's kW per A, or a
    weighted group with |weight|; the same families as the planner's rows.
    """

    keys: tuple[tuple[str, str], ...]
    members: Mapping[str, tuple[tuple[int, float], ...]]
    matrix: np.ndarray
    """(families, connectors) coefficients, connectors in site order."""
    column: Mapping[str, int]

    @classmethod
    def build(cls, site: Site, lines: Mapping[str, tuple[Line, ...]] | None = None) -> LoadModel:
        lines = lines or {}
        keys: list[tuple[str, str]] = []
        index: dict[tuple[str, str], int] = {}

        def fam(gid: str, qty: str) -> int:
            k = (gid, qty)
            if k not in index:
                index[k] = len(keys)
                keys.append(k)
            return index[k]

        weighted = [(g.id, site.weighted_members(g)) for g in site.groups if g.weights is not None]
        members: dict[str, tuple[tuple[int, float], ...]] = {}
        for cid, info in site.connectors.items():
            used = lines.get(cid) or info.lines
            out: list[tuple[int, float]] = []
            for gid in info.ancestors:
                out.extend((fam(gid, line.value), 1.0) for line in used)
                out.append((fam(gid, "kW"), info.kw_per_amp(used)))
            for gid, w in weighted:
                if w.get(cid):
                    out.append((fam(gid, "weighted"), w[cid]))
            members[cid] = tuple(out)
        for g in site.groups:  # families with no member still exist (capacity view)
            if g.weights is None:
                for line in LINES:
                    fam(g.id, line.value)
        column = {cid: i for i, cid in enumerate(site.connectors)}
        matrix = np.zeros((len(keys), len(column)))
        for cid, fams in members.items():
            for f, coef in fams:
                matrix[f, column[cid]] += coef
        return cls(tuple(keys), members, matrix, column)

    def capacity(self, site: Site, capacity: Capacity, grid: TimeGrid) -> np.ndarray:
        """(families, slots) upper bounds; ``inf`` where there is no limit."""
        out = np.full((len(self.keys), grid.slots), np.inf)
        for f, (gid, qty) in enumerate(self.keys):
            g = site.group_by_id[gid]
            if qty == "kW":
                arr = capacity.limit_kw.get(gid)
                static = g.limit_kw
            else:
                arr = capacity.limit_a.get(gid)
                static = g.limit_a
            if arr is not None:
                out[f] = arr
            elif static is not None:
                out[f] = static
        return out

    def load(self, schedules: Mapping[str, np.ndarray], slots: int) -> np.ndarray:
        """(families, slots): the sum of ``schedules`` (connector → per-slot A) per family."""
        if not schedules:
            return np.zeros((len(self.keys), slots))
        pattern, coef = self.patterns
        cols = np.fromiter(
            (self.column[cid] for cid in schedules), dtype=np.intp, count=len(schedules)
        )
        values = np.stack([np.asarray(v, dtype=float) for v in schedules.values()])
        # connectors with the same coefficients are summed first: a site has few
        # such patterns (groups × wirings), so what is left to multiply is small
        # (einsum, not BLAS: a threaded BLAS stalls for milliseconds on a busy host)
        p = pattern[cols]
        order = np.argsort(p, kind="stable")
        p = p[order]
        starts = np.flatnonzero(np.concatenate(([True], p[1:] != p[:-1])))
        sums = np.add.reduceat(values[order], starts, axis=0)
        return np.einsum("fp,ps->fs", coef[:, p[starts]], sums)

    @property
    def patterns(self) -> tuple[np.ndarray, np.ndarray]:
        """(each connector column's pattern, (families, patterns) coefficients):
        connectors with the same coefficient in every family share a pattern."""
        cached = self.__dict__.get("_patterns")
        if cached is None:
            unique, inverse = np.unique(self.matrix.T, axis=0, return_inverse=True)
            cached = (inverse.reshape(-1), np.ascontiguousarray(unique.T))
            object.__setattr__(self, "_patterns", cached)
        return cached

    @property
    def entries(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(family, connector column, coefficient) of every non-zero coefficient."""
        cached = self.__dict__.get("_entries")
        if cached is None:
            fam, col = np.nonzero(self.matrix)
            cached = (fam, col, self.matrix[fam, col])
            object.__setattr__(self, "_entries", cached)
        return cached

    def fits(self, load: np.ndarray, cap: np.ndarray) -> bool:
        return bool(np.all(load <= cap + 1e-6 * np.maximum(1.0, np.abs(cap))))


# --- the book of limits in force ------------------------------------------------------


class PinReason(StrEnum):
    REJECTED = "rejected"
    NO_ANSWER = "no_answer"
    RATE_LIMITED = "rate_limited"
    NOT_CONNECTED = "not_connected"


@dataclass
class ConnectorLimits:
    """What we know of one connector's limit in force."""

    active: bool = False
    """A transaction runs: the connector may draw up to its limit."""
    accepted: LimitSchedule | None = None
    """The transaction's profile the station last accepted."""
    uncertain: list[LimitSchedule] = field(default_factory=list)
    """Sent, never confirmed or refused: possibly in force."""
    default_a: float | None = None
    """The station's accepted fallback (TxDefault on connector 0) limit."""
    own_default_a: float | None = None
    """The connector's own accepted TxDefault limit (overrides the station's)."""
    defaults_sent: list[float] = field(default_factory=list)
    """TxDefault limits (either level) on their way: possibly in force."""
    pinned_until: float = -math.inf
    """Monotonic time before which the planner must treat it as fixed load."""
    pin_reason: PinReason | None = None
    force_send: bool = False
    """Send the next target even if hysteresis says unchanged (e.g. after a reboot)."""
    worst_cache: dict[bool, tuple[tuple[object, ...], np.ndarray]] = field(
        default_factory=dict, repr=False, compare=False
    )
    """``LimitBook.worst`` per ``fallback`` flag with the state it was computed from."""


@dataclass
class LimitBook:
    """Per connector: the limits that may be in force (see the module docstring)."""

    site: Site
    connectors: dict[str, ConnectorLimits] = field(default_factory=dict)
    count_idle: bool = False
    """Count a connector without a transaction at its fallback limit too: a car
    may plug in at any moment and draw it before the next plan reaches it."""

    def get(self, cid: str) -> ConnectorLimits:
        c = self.connectors.get(cid)
        if c is None:
            c = self.connectors[cid] = ConnectorLimits()
        return c

    def default_in_force(self, cid: str) -> float | None:
        """The accepted TxDefault that applies: the connector's own, else the station's."""
        c = self.get(cid)
        return c.own_default_a if c.own_default_a is not None else c.default_a

    def default_worst(self, cid: str) -> float:
        """The TxDefault limit the connector may have (its maximum if none is known)."""
        c = self.get(cid)
        mx = self.site.connectors[cid].max_current_a
        d = self.default_in_force(cid)
        return min(mx, max([mx if d is None else d, *c.defaults_sent]))

    def base(self, cid: str) -> LimitSchedule | float:
        """Last accepted profile, else the fallback limit, else the connector's maximum."""
        c = self.get(cid)
        if c.accepted is not None:
            return c.accepted
        return self.default_worst(cid)

    def worst(self, cid: str, grid: TimeGrid, *, fallback: bool = True) -> np.ndarray:
        """What the connector may draw in each slot, whatever happened to our messages.

        ``fallback=False``: for a running transaction, only what its profiles allow.
        """
        c = self.get(cid)
        # re-plans ask for every connector's worst case several times while few
        # of them change: keep it until what it is computed from changes
        # (schedules are immutable; tuples compare identical items without __eq__)
        key = (
            grid,
            self.count_idle,
            c.active,
            c.accepted,
            len(c.uncertain),
            *c.uncertain,
            c.default_a,
            c.own_default_a,
            *c.defaults_sent,
        )
        hit = c.worst_cache.get(fallback)
        if hit is not None and hit[0] == key:
            return hit[1]
        out = self._worst(c, cid, grid, fallback)
        out.setflags(write=False)
        c.worst_cache[fallback] = (key, out)
        return out

    def _worst(self, c: ConnectorLimits, cid: str, grid: TimeGrid, fallback: bool) -> np.ndarray:
        if not c.active:
            if not self.count_idle:
                return np.zeros(grid.slots)
            return np.full(grid.slots, self.default_worst(cid))
        b = self.base(cid)
        out = b.on(grid) if isinstance(b, LimitSchedule) else np.full(grid.slots, float(b))
        for s in c.uncertain:
            out = np.maximum(out, s.on(grid))
        if self.count_idle and fallback:
            # the transaction may end at any moment: then its fallback is in force
            out = np.maximum(out, self.default_worst(cid))
        return np.minimum(out, self.site.connectors[cid].max_current_a)

    def worst_all(self, grid: TimeGrid) -> dict[str, np.ndarray]:
        if self.count_idle:
            return {cid: self.worst(cid, grid) for cid in self.site.connectors}
        return {cid: self.worst(cid, grid) for cid, c in self.connectors.items() if c.active}

    def worst_max(self, cid: str, now: datetime, grid: TimeGrid) -> float:
        """The highest limit the connector may have from now on (a scalar to reserve)."""
        w = self.worst(cid, grid)
        first = max(0, min(grid.slots - 1, math.floor(grid.position(now))))
        return float(np.max(w[first:])) if len(w) else 0.0

    # --- transitions ---------------------------------------------------------------

    def start_transaction(self, cid: str) -> None:
        c = self.get(cid)
        c.active = True
        c.accepted = None
        c.uncertain.clear()

    def end_transaction(self, cid: str) -> None:
        c = self.get(cid)
        c.active = False
        c.accepted = None
        c.uncertain.clear()

    def sending(self, cid: str, schedule: LimitSchedule) -> None:
        """A profile is on its way: until answered it may or may not be in force."""
        self.get(cid).uncertain.append(schedule)

    def answered(
        self,
        cid: str,
        schedule: LimitSchedule,
        result: CommandResult,
        mono_now: float,
        *,
        pin_s: float = 60.0,
    ) -> None:
        """Record a station's answer to ``schedule``."""
        c = self.get(cid)
        if result.outcome is CommandOutcome.ACCEPTED:
            # the accepted profile replaces everything sent before it
            c.accepted = schedule
            c.uncertain.clear()
            c.pinned_until, c.pin_reason, c.force_send = -math.inf, None, False
            return
        self.pin(cid, result, mono_now, pin_s=pin_s)
        # a profile in doubt stays uncertain: it may have taken effect (the
        # adapter also says NOT_CONNECTED when the connection dropped after
        # the profile went out)
        if result.outcome not in (CommandOutcome.TIMEOUT, CommandOutcome.NOT_CONNECTED):
            c.uncertain = [s for s in c.uncertain if s is not schedule]

    def pin(self, cid: str, result: CommandResult, mono_now: float, *, pin_s: float) -> None:
        """Leave the connector alone for a while after an answer other than accepted."""
        c = self.get(cid)
        if result.outcome is CommandOutcome.TIMEOUT:
            c.pinned_until, c.pin_reason = mono_now + pin_s, PinReason.NO_ANSWER
        elif result.outcome is CommandOutcome.NOT_CONNECTED:
            c.pinned_until, c.pin_reason = mono_now + pin_s, PinReason.NOT_CONNECTED
        elif result.outcome is CommandOutcome.RATE_LIMITED:
            wait = result.retry_after_s if result.retry_after_s is not None else pin_s
            c.pinned_until, c.pin_reason = mono_now + max(wait, 0.0), PinReason.RATE_LIMITED
        else:  # REJECTED, ERROR
            c.pinned_until, c.pin_reason = mono_now + pin_s, PinReason.REJECTED

    def default_sending(self, cid: str, limit_a: float) -> None:
        """A TxDefault limit is on its way: until answered it may or may not be in force."""
        self.get(cid).defaults_sent.append(limit_a)

    def default_answered(
        self, cid: str, limit_a: float, result: CommandResult, *, own: bool = False
    ) -> None:
        """A fallback limit (the connector's own, or the station's) counts once
        accepted; one in doubt counts as the higher of the old and the new."""
        c = self.get(cid)
        with contextlib.suppress(ValueError):
            c.defaults_sent.remove(limit_a)
        if result.outcome is CommandOutcome.ACCEPTED:
            if own:
                c.own_default_a = limit_a
            else:
                c.default_a = limit_a
        elif result.outcome in (CommandOutcome.TIMEOUT, CommandOutcome.NOT_CONNECTED):
            # it may have taken effect (the connection may have dropped after it went out)
            if own:
                in_force = self.default_in_force(cid)
                if in_force is not None and limit_a > in_force:
                    c.own_default_a = limit_a
            elif c.default_a is not None:
                c.default_a = max(c.default_a, limit_a)

    def pinned(self, mono_now: float) -> dict[str, PinReason]:
        return {
            cid: c.pin_reason
            for cid, c in self.connectors.items()
            if c.pin_reason is not None and c.pinned_until > mono_now
        }

    def unpin_station(self, station_id: str, reasons: frozenset[PinReason]) -> None:
        """The station proved alive (reconnected, booted): try it again."""
        for cid, c in self.connectors.items():
            if station_of(cid) == station_id and c.pin_reason in reasons:
                c.pinned_until, c.pin_reason = -math.inf, None
                c.force_send = True


# --- planning the rollout ------------------------------------------------------------


@dataclass(frozen=True)
class Hysteresis:
    min_change_a: float = 1.0
    """A change smaller than this (in every slot) is not sent, if keeping the
    old limit is within capacity."""
    near_slots: int | None = 2
    """Only changes in the first slots count as meaningful; later slots follow
    when they come near (each slot boundary re-plans). A change further out
    that keeping the old limit would not fit is sent all the same. None: every
    slot counts."""


@dataclass(frozen=True)
class RolloutSteps:
    lowerings: dict[str, np.ndarray]
    """Connector → schedule on the grid to send first (never above the worst case)."""
    raisings: dict[str, np.ndarray]
    """Connector → the plan's schedule, to send once the lowerings are answered."""
    unchanged: tuple[str, ...]


def plan_rollout(
    grid: TimeGrid,
    worst: Mapping[str, np.ndarray],
    targets: Mapping[str, np.ndarray],
    model: LoadModel,
    cap: np.ndarray,
    hysteresis: Hysteresis = Hysteresis(),
    force: frozenset[str] = frozenset(),
    current: Mapping[str, np.ndarray] | None = None,
) -> RolloutSteps:
    """Split the changes from ``worst`` (what may be in force) to ``targets``.

    ``worst`` covers every active connector; ``targets`` the ones the plan
    controls (per-slot A on ``grid``). ``cap`` is ``model.capacity(...)``.
    ``current``: what the targets' profiles allow now, where that differs from
    ``worst`` (a fallback limit counted on top does not change with them).
    """
    current = worst if current is None else current
    lowerings: dict[str, np.ndarray] = {}
    raisings: dict[str, np.ndarray] = {}
    unchanged: list[str] = []
    small_lowerings: list[str] = []
    if not targets:
        return RolloutSteps(lowerings, raisings, ())
    ids = list(targets)
    zeros = np.zeros(grid.slots)
    new_m = np.round(np.stack([np.asarray(targets[c], dtype=float) for c in ids]), 1)
    old_m = np.stack([np.asarray(current.get(c, zeros), dtype=float) for c in ids])
    diff = new_m - old_m
    near = slice(0, hysteresis.near_slots)
    zero_cross = np.any((old_m[:, near] > EPS) != (new_m[:, near] > EPS), axis=1)
    big = np.max(np.abs(diff[:, near]), axis=1, initial=0.0) >= hysteresis.min_change_a - EPS
    forced = np.array([c in force for c in ids])
    send = zero_cross | big | forced
    low_m = np.minimum(old_m, new_m)
    goes_down = np.any(low_m < old_m - EPS, axis=1)
    goes_up = np.any(new_m > low_m + EPS, axis=1)
    down = np.any(diff < -EPS, axis=1)
    for i in np.flatnonzero(~send):
        unchanged.append(ids[i])
        if down[i]:
            small_lowerings.append(ids[i])
    for i in np.flatnonzero(send):
        cid = ids[i]
        if goes_down[i]:
            lowerings[cid] = low_m[i]
        if goes_up[i] or (forced[i] and not goes_down[i]):
            raisings[cid] = new_m[i]
    if small_lowerings:
        # keeping a small lowering unsent must still fit once the plan is in force
        final = dict(worst)
        kept = set(unchanged)
        final.update({cid: v for cid, v in targets.items() if cid not in kept})
        load = model.load(final, grid.slots)
        over = set(np.flatnonzero(np.any(load > cap + 1e-6, axis=1)).tolist())
        for cid in small_lowerings:
            if over & {f for f, _ in model.members.get(cid, ())}:
                new = np.round(np.asarray(targets[cid], dtype=float), 1)
                lowerings[cid] = np.minimum(current.get(cid, zeros), new)
                unchanged.remove(cid)
    return RolloutSteps(lowerings, raisings, tuple(unchanged))


def raise_fits(
    cid: str,
    new: np.ndarray,
    worst: Mapping[str, np.ndarray],
    model: LoadModel,
    cap: np.ndarray,
    load: np.ndarray,
) -> bool:
    """Would raising ``cid`` to ``new`` (on top of ``load``, the worst case of all)
    keep every family it loads within capacity in every slot where it rises?"""
    old = worst.get(cid)
    delta = new - old if old is not None else new
    delta = np.maximum(delta, 0.0)
    for f, coef in model.members.get(cid, ()):
        after = load[f] + coef * delta
        rising = delta > EPS
        if np.any(after[rising] > cap[f][rising] + 1e-6 * max(1.0, float(np.max(cap[f])))):
            return False
    return True


# --- running it ------------------------------------------------------------------------


class StationGateway(Protocol):
    """What the rollout needs of the OCPP adapter."""

    async def set_limit(self, station_id: str, spec: ChargingLimitSpec) -> CommandResult: ...


SpecBuilder = Callable[[str, LimitSchedule], tuple[str, ChargingLimitSpec] | None]
"""Connector, schedule → (station id, profile), or None if it cannot be sent now
(e.g. no transaction id known)."""
DefaultBuilder = Callable[[str, float], tuple[str, ChargingLimitSpec]]
"""Connector, limit → (station id, the connector's own TxDefault profile)."""


@dataclass
class RolloutReport:
    sent: int = 0
    accepted: int = 0
    failed: dict[str, CommandOutcome] = field(default_factory=dict)
    withheld: list[str] = field(default_factory=list)
    """Raisings not sent because they did not fit next to the worst case."""
    unchanged: int = 0
    lowered: int = 0
    raised: int = 0
    started: float = 0.0
    finished: float = 0.0
    last_sent_at: float | None = None
    """Monotonic time the last profile of the rollout went out."""

    @property
    def needs_replan(self) -> bool:
        return bool(self.failed or self.withheld)


Sending = Callable[[list[tuple[str, str, ChargingLimitSpec]]], None]
"""Called with (connector, station, profile) of a batch just before it is sent."""
Answers = Callable[[list[tuple[str, LimitSchedule, ChargingLimitSpec, CommandResult]]], None]
"""Called with (connector, schedule, profile, answer) of a batch once all are answered."""


async def run_rollout(
    gateway: StationGateway,
    book: LimitBook,
    grid: TimeGrid,
    targets: Mapping[str, np.ndarray],
    model: LoadModel,
    cap: np.ndarray,
    build: SpecBuilder,
    *,
    hysteresis: Hysteresis = Hysteresis(),
    pin_s: float = 60.0,
    clock: Callable[[], float] = time.monotonic,
    on_sending: Sending | None = None,
    on_answers: Answers | None = None,
    concurrency: int = 256,
    answer_timeout_s: float = 15.0,
    defaults: Mapping[str, float] | None = None,
    build_default: DefaultBuilder | None = None,
) -> RolloutReport:
    """Send the lowerings, await every answer, then the raisings that still fit.

    ``defaults``: connector → the TxDefault limit it should have of its own
    (``build_default`` makes the profile). Lowered with the lowerings, raised
    with the raisings when the raise fits; raised only by a meaningful step.
    """
    report = RolloutReport(started=clock())
    active_targets = {cid: v for cid, v in targets.items() if book.get(cid).active}
    # a running transaction without a profile of its own always gets one: its
    # schedule (future periods included) must be at the station
    force = frozenset(
        cid for cid in active_targets if book.get(cid).force_send or book.get(cid).accepted is None
    )
    profiles = {cid: book.worst(cid, grid, fallback=False) for cid in active_targets}
    steps = plan_rollout(
        grid, book.worst_all(grid), active_targets, model, cap, hysteresis, force, profiles
    )
    report.unchanged = len(steps.unchanged)
    sem = asyncio.Semaphore(concurrency)
    station_locks: dict[str, asyncio.Lock] = {}

    async def call(station_id: str, spec: ChargingLimitSpec) -> CommandResult:
        lock = station_locks.setdefault(station_id, asyncio.Lock())
        async with sem, lock:
            report.sent += 1
            report.last_sent_at = clock()
            try:
                return await asyncio.wait_for(gateway.set_limit(station_id, spec), answer_timeout_s)
            except TimeoutError:
                return CommandResult(CommandOutcome.TIMEOUT, f"no answer in {answer_timeout_s} s")
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a broken gateway call: treat like no answer
                return CommandResult(CommandOutcome.TIMEOUT, f"{type(exc).__name__}: {exc}")

    async def send_batch(items: list[tuple[str, np.ndarray]]) -> int:
        built: list[tuple[str, str, ChargingLimitSpec, LimitSchedule]] = []
        for cid, values in items:
            b = build(cid, LimitSchedule.from_slots(grid, values))
            if b is not None:
                built.append((cid, b[0], b[1], schedule_from_spec(b[1])))
        if not built:
            return 0
        if on_sending is not None:
            on_sending([(cid, sid, spec) for cid, sid, spec, _ in built])
        for cid, _, _, sched in built:
            book.sending(cid, sched)
        results = await asyncio.gather(*(call(sid, spec) for _, sid, spec, _ in built))
        now = clock()
        ok = 0
        for (cid, _, _, sched), result in zip(built, results, strict=True):
            book.answered(cid, sched, result, now, pin_s=pin_s)
            if result.outcome is CommandOutcome.ACCEPTED:
                ok += 1
            else:
                report.failed[cid] = result.outcome
        report.accepted += ok
        if on_answers is not None:
            on_answers(
                [
                    (cid, sched, spec, r)
                    for (cid, _, spec, sched), r in zip(built, results, strict=True)
                ]
            )
        return ok

    async def send_defaults(items: list[tuple[str, float]]) -> int:
        if not items or build_default is None:
            return 0
        built = [(cid, limit, *build_default(cid, limit)) for cid, limit in items]
        if on_sending is not None:
            on_sending([(cid, sid, spec) for cid, _, sid, spec in built])
        for cid, limit, _, _ in built:
            book.default_sending(cid, limit)
        results = await asyncio.gather(*(call(sid, spec) for _, _, sid, spec in built))
        ok = 0
        now = clock()
        for (cid, limit, _, _), result in zip(built, results, strict=True):
            book.default_answered(cid, limit, result, own=True)
            if result.outcome is CommandOutcome.ACCEPTED:
                ok += 1
            else:
                # left alone like a refused profile: the next plan reserves its worst case
                book.pin(cid, result, now, pin_s=pin_s)
                report.failed[cid] = result.outcome
        report.accepted += ok
        if on_answers is not None:
            on_answers(
                [
                    (cid, LimitSchedule.constant(spec.start, limit), spec, r)
                    for (cid, limit, _, spec), r in zip(built, results, strict=True)
                ]
            )
        return ok

    default_low: list[tuple[str, float]] = []
    default_high: list[tuple[str, float]] = []
    for cid, limit in (defaults or {}).items():
        cur = book.default_worst(cid)
        if limit < cur - EPS:
            default_low.append((cid, limit))
        elif limit > cur + max(hysteresis.min_change_a, EPS) - EPS:
            default_high.append((cid, limit))

    lowered = await asyncio.gather(
        send_batch([(cid, v) for cid, v in steps.lowerings.items() if book.get(cid).active]),
        send_defaults(default_low),
    )
    report.lowered = sum(lowered)

    # raisings: each checked against the worst case *now* (answers and new
    # arrivals included) plus the raisings already admitted before it
    worst = book.worst_all(grid)
    load = model.load(worst, grid.slots)

    def admit(cid: str, new: np.ndarray) -> None:
        old = worst.get(cid, np.zeros(grid.slots))
        delta = np.maximum(new - old, 0.0)
        for f, coef in model.members.get(cid, ()):
            load[f] += coef * delta
        worst[cid] = np.maximum(old, new)

    # restoring a fallback first: the plan reserved it
    default_batch: list[tuple[str, float]] = []
    for cid, limit in default_high:
        if cid in report.failed:
            continue
        c = book.get(cid)
        if not c.active and not book.count_idle:
            continue
        new = np.maximum(worst.get(cid, np.zeros(grid.slots)), limit)
        if not raise_fits(cid, new, worst, model, cap, load):
            report.withheld.append(cid)
            continue
        admit(cid, new)
        default_batch.append((cid, limit))
    batch: list[tuple[str, np.ndarray]] = []
    for cid, new in steps.raisings.items():
        c = book.get(cid)
        if not c.active or cid in report.failed:
            continue
        if not raise_fits(cid, new, worst, model, cap, load):
            report.withheld.append(cid)
            continue
        admit(cid, new)
        batch.append((cid, new))
    raised = await asyncio.gather(send_batch(batch), send_defaults(default_batch))
    report.raised = sum(raised)
    report.finished = clock()
    return report


def fallback_limits(
    site: Site,
    capacity_a: Mapping[str, float] | None = None,
    fixed: Mapping[str, float] | None = None,
) -> dict[str, float]:
    """Per station: a TxDefault limit (A per line) such that, summed over the
    stations of any group, the fallback capacity is kept on every line, in kW
    and for weighted groups, even with every connector drawing it.

    ``capacity_a`` overrides a group's fallback per-line limit (e.g. a DSO's
    fallback forecast). ``fixed``: connector → what it is assumed to draw
    whatever we send (its station refused or did not answer its fallback
    limit); that is taken off the capacity the others share, and its station
    gets no limit here. A share below a connector's minimum current becomes 0.
    """
    overrides = capacity_a or {}
    fixed = fixed or {}
    conns = site.connectors
    share: dict[str, float] = {cid: info.max_current_a for cid, info in conns.items()}
    for g in site.groups:
        if g.weights is not None:
            members = site.weighted_members(g)
            total_w = sum(w for cid, w in members.items() if cid not in fixed)
            limit = overrides.get(g.id, g.limit_a)
            if limit is not None and total_w > 0:
                left = max(
                    0.0, limit - sum(w * fixed[cid] for cid, w in members.items() if cid in fixed)
                )
                for cid in members:
                    share[cid] = min(share[cid], left / total_w)
            continue
        under = list(site.connectors_under(g.id))
        if not under:
            continue
        limit_a = overrides.get(g.id)
        if limit_a is None:
            limit_a = g.fallback_limit_a if g.fallback_limit_a is not None else g.limit_a
        if limit_a is not None:
            for line in LINES:
                on_line = [i for i in under if line in i.lines and i.key not in fixed]
                taken = sum(fixed[i.key] for i in under if line in i.lines and i.key in fixed)
                for i in on_line:
                    share[i.key] = min(share[i.key], max(0.0, limit_a - taken) / len(on_line))
        if g.limit_kw is not None:
            kw_per_a = sum(i.kw_per_amp() for i in under if i.key not in fixed)
            taken_kw = sum(i.kw_per_amp() * fixed[i.key] for i in under if i.key in fixed)
            if kw_per_a > 0:
                for i in under:
                    share[i.key] = min(share[i.key], max(0.0, g.limit_kw - taken_kw) / kw_per_a)
    out: dict[str, float] = {}
    for cid, info in conns.items():
        if cid in fixed:
            continue
        a = math.floor(share[cid] * 10 + 1e-9) / 10
        if a < info.connector.min_current_a - EPS:
            a = 0.0
        out[info.station_id] = min(out.get(info.station_id, math.inf), a)
    return out


def fallback_spec(
    station_id: str, limit_a: float, start: datetime, site: Site
) -> ChargingLimitSpec:
    """TxDefault on connector 0 (every connector of the station)."""
    phases = max(len(i.lines) for i in site.connectors.values() if i.station_id == station_id)
    return ChargingLimitSpec(
        purpose=LimitPurpose.TX_DEFAULT,
        connector=0,
        start=start - timedelta(minutes=1),
        periods=(LimitPeriod(0, limit_a, phases),),
        voltage_v=site.site.voltage_v,
    )
