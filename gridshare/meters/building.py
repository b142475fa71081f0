"""The non-EV load of every group, per line, from the site's meters.

Plain code without a clock of its own (every call takes ``now``):

* a ``connection`` meter shows everything through a group's connection; its
  non-EV load is that less what the chargers under it measured *at the
  reading's moment* (each connector's OCPP current interpolated between its
  samples, or held after the last one: readings aligned in time, not "latest");
* without one, the group's ``load`` meters add, its ``generation`` meters
  subtract, and its child groups add what they carry;
* a meter silent for ``stale_after_s`` (or never heard) counts at its
  ``max_non_ev_a`` (a generator at 0): the worst case;
* the planner sees, per slot, slot 0 from the live figure and the later ones
  from a `NonEvForecast` (the seam a building forecaster plugs into), which by
  default holds the latest figure, at most the worst case.

Around a limit change the chargers' samples lag: a car moves toward its new
limit within the EV's response time, and its next sample says so up to a
meter interval later. While a connector's last sample does not show it settled
since a change (`LimitTrail` times each change), its draw at the reading's
moment is known only to lie between that sample and the limits in force since:
the non-EV figure takes the car at the low end of it, so the building at its
high end (a car ramping up counts as building until its sample shows it; a
car just lowered never makes the building look smaller). Limits changed after
the reading do not touch it: a lowering never inflates the building it
answered. Once a sample shows the car at its new limit, or a response time
after the change, the estimate falls back to the sample.

`Capacity.with_non_ev` then takes the (non-negative) load off each line's
limit: a meter only ever lowers what the chargers get.
"""

from __future__ import annotations

import bisect
import logging
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Protocol

import numpy as np

from gridshare.meters.config import Measures, MeterConfig
from gridshare.meters.limit_trail import BEFORE, LimitTrail
from gridshare.meters.readings import Reading, ReadingRefused
from gridshare.rollout.schedule import LimitSchedule
from optimizer.problem import Capacity, TimeGrid
from optimizer.site import LINES, Line, Site

log = logging.getLogger(__name__)

PerLine = dict[Line, float]
HISTORY = 4096
"""Samples kept in memory per meter, per connector and per group (the store keeps
the rest; the building forecast fits on its roll-ups)."""
EV_SAMPLE_MAX_AGE = timedelta(minutes=3)
"""A charger's current older than this is not known at a reading's moment:
counted as 0, which leaves more to the building (the safe side)."""
EV_RESPONSE_S = 10.0
"""How long a car may take to follow a new limit (``[in_force] ev_response_s``)."""
AT_LIMIT_A = 2.0
"""A sample this close to the limit in force shows the car there (meters are not exact)."""


def _zero() -> PerLine:
    return dict.fromkeys(LINES, 0.0)


def _steady(span: tuple[float, float] | None) -> bool:
    """Whether a span of limits is one limit (None: none known, nothing changes)."""
    return span is None or span[1] - span[0] <= 1e-6


@dataclass(frozen=True)
class GroupSample:
    at: datetime
    non_ev_a: Mapping[Line, float]
    generation_a: Mapping[Line, float] = field(default_factory=dict)
    """What the generation meters under the group counted in it (a line not
    given: 0): ``non_ev_a`` plus this is the building's gross load."""


@dataclass(frozen=True)
class GroupHistory:
    """What a forecaster gets of a group: its non-EV samples, oldest first, and
    its worst case per line. ``gross``: the samples have the generation under
    the group added back (the forecast is to learn the gross load)."""

    group_id: str
    samples: tuple[GroupSample, ...]
    worst_a: Mapping[Line, float]
    gross: bool = False


class NonEvForecast(Protocol):
    """Per line, the non-EV load of a group in each slot of ``grid``."""

    def __call__(
        self, history: GroupHistory, grid: TimeGrid, now: datetime
    ) -> dict[Line, np.ndarray]: ...


def hold_latest(history: GroupHistory, grid: TimeGrid, now: datetime) -> dict[Line, np.ndarray]:
    """The latest figure held over the horizon, at most the worst case (with
    none, the worst case)."""
    last = history.samples[-1].non_ev_a if history.samples else history.worst_a
    return {line: np.full(grid.slots, min(last[line], history.worst_a[line])) for line in LINES}


@dataclass
class MeterState:
    config: MeterConfig
    readings: deque[Reading] = field(default_factory=lambda: deque(maxlen=HISTORY))
    refused: int = 0
    last_refusal: str | None = None
    stale_logged: bool = True
    """Whether its staleness was already said (a meter is stale until heard)."""

    def fresh(self, now: datetime) -> bool:
        if not self.readings:
            return False
        age = (now - self.readings[-1].received_at).total_seconds()
        return age <= self.config.stale_after_s

    def value(self, now: datetime) -> PerLine | None:
        """Its latest reading if fresh, else None."""
        return dict(self.readings[-1].current_a) if self.fresh(now) else None


@dataclass
class _EvSamples:
    times: list[datetime] = field(default_factory=list)
    values: list[PerLine] = field(default_factory=list)

    def add(self, at: datetime, per_line: PerLine) -> None:
        i = bisect.bisect_right(self.times, at)
        self.times.insert(i, at)
        self.values.insert(i, per_line)
        if len(self.times) > HISTORY:
            del self.times[0], self.values[0]

    def last(self, t: datetime) -> tuple[datetime, PerLine] | None:
        """The last sample at or before ``t`` (None: none, or too old to count)."""
        i = bisect.bisect_right(self.times, t)
        if i == 0 or t - self.times[i - 1] > EV_SAMPLE_MAX_AGE:
            return None
        return self.times[i - 1], self.values[i - 1]

    def next_after(self, t: datetime) -> datetime | None:
        i = bisect.bisect_right(self.times, t)
        return self.times[i] if i < len(self.times) else None

    def at(self, t: datetime, interpolate: bool = True) -> PerLine:
        """Interpolated between the samples around ``t`` (or the one before
        held), held after the last."""
        i = bisect.bisect_right(self.times, t)
        if i == 0:
            return _zero()
        t0, v0 = self.times[i - 1], self.values[i - 1]
        if t - t0 > EV_SAMPLE_MAX_AGE:
            return _zero()
        if i == len(self.times) or not interpolate:
            return dict(v0)
        t1, v1 = self.times[i], self.values[i]
        w = (t - t0) / (t1 - t0) if t1 > t0 else 1.0
        return {line: v0.get(line, 0.0) * (1 - w) + v1.get(line, 0.0) * w for line in LINES}


class BuildingLoad:
    """The meters of a site and the non-EV load of its groups (see the module)."""

    def __init__(
        self,
        site: Site,
        meters: Iterable[MeterConfig],
        forecast: NonEvForecast = hold_latest,
        response_s: float = EV_RESPONSE_S,
    ) -> None:
        self.site = site
        self.meters = {m.id: MeterState(m) for m in meters}
        self.forecast = forecast
        self.response = timedelta(seconds=response_s)
        self.ev: dict[str, _EvSamples] = {}
        self.limit_at: Callable[[str, datetime], float | None] | None = None
        """Connector, time → its limit in force now (None: no transaction): what
        a connector without a trail of sent profiles counts at most."""
        self.trails: dict[str, LimitTrail] = {}
        """Connector → its profiles, each from when it was sent (`limit_sent`)."""
        self.history: dict[str, deque[GroupSample]] = {}
        self.metered = self._metered_groups()
        """Groups whose non-EV load is known or bounded by a meter, site order."""

    def _metered_groups(self) -> tuple[str, ...]:
        own = {m.config.group for m in self.meters.values()}
        return tuple(
            g.id
            for g in self.site.groups
            if g.weights is None and any(h in own for h in self._subtree(g.id))
        )

    def _subtree(self, group_id: str) -> list[str]:
        out = [group_id]
        for child in self.site.children(group_id):
            out.extend(self._subtree(child))
        return out

    # --- what comes in ----------------------------------------------------------------------

    def accept(self, reading: Reading) -> list[tuple[str, GroupSample]]:
        """A checked reading; an older one than the latest is out of order (ignored).
        Returns the group samples it gave (group id, sample)."""
        state = self.meters[reading.meter_id]
        if state.readings and reading.at < state.readings[-1].at:
            return []
        state.readings.append(reading)
        state.stale_logged = False
        out = []
        for gid in self.site.ancestors(state.config.group):
            if gid in self.metered:
                now = reading.received_at
                sample = GroupSample(reading.at, self.non_ev(gid, now), self.generation(gid, now))
                self.history.setdefault(gid, deque(maxlen=HISTORY)).append(sample)
                out.append((gid, sample))
        return out

    def restore(
        self, readings: Iterable[Reading], samples: Mapping[str, Iterable[GroupSample]]
    ) -> None:
        """Readings and group samples kept from before a restart, oldest first. A
        restored reading keeps its arrival time: it is fresh only if it still is."""
        for r in readings:
            state = self.meters.get(r.meter_id)
            if state is not None and (not state.readings or r.at >= state.readings[-1].at):
                state.readings.append(r)
        for gid, group_samples in samples.items():
            if gid in self.metered:
                self.history.setdefault(gid, deque(maxlen=HISTORY)).extend(group_samples)

    def refuse(self, meter_id: str, error: ReadingRefused) -> None:
        state = self.meters[meter_id]
        first = state.last_refusal != str(error)
        state.refused += 1
        state.last_refusal = str(error)
        (log.warning if first else log.debug)("meter %s: reading refused: %s", meter_id, error)

    def observe_charger(
        self, connector_id: str, at: datetime, per_line: Mapping[Line, float]
    ) -> None:
        """A charger's measured current per site line (from its OCPP meter values)."""
        self.ev.setdefault(connector_id, _EvSamples()).add(at, dict(per_line))

    def charger_stopped(self, connector_id: str, at: datetime) -> None:
        self.observe_charger(connector_id, at, _zero())
        self.trails.pop(connector_id, None)

    def limit_sent(self, connector_id: str, at: datetime, limit: LimitSchedule | float) -> None:
        """A profile went out to the connector at ``at``: in force from then on, maybe."""
        trail = self.trails.get(connector_id)
        keep = EV_SAMPLE_MAX_AGE + 2 * self.response
        if trail is None:
            trail = self.trails[connector_id] = LimitTrail()
            before = self.limit_at(connector_id, at) if self.limit_at is not None else None
            if before is not None:  # what it had until this one
                trail.add(BEFORE, before, keep)
        trail.add(at, limit, keep)

    # --- what it gives ------------------------------------------------------------------------

    def ev_at(self, group_id: str, t: datetime, window_s: float = 0.0) -> PerLine:
        """What the chargers under a group drew at ``t`` at the least, per line
        (`least_drawn` of each)."""
        out = _zero()
        for info in self.site.connectors_under(group_id):
            for line, a in self.least_drawn(info.key, t, window_s).items():
                out[line] += a
        return out

    def least_drawn(self, connector_id: str, t: datetime, window_s: float = 0.0) -> PerLine:
        """The least a connector may have drawn at ``t``, per line.

        Settled (its last sample shows it past any limit change): its samples,
        interpolated where no change lies between them, each at the least it
        drew over the ``window_s`` before ``t`` (a reading stands for a moment
        somewhere in its poll), at most its limit in force. Not settled: the
        lower of its last sample and the lowest limit in force since."""
        samples = self.ev.get(connector_id)
        last = samples.last(t) if samples is not None else None
        if samples is None or last is None:
            return _zero()
        s0, v0 = last
        after = samples.next_after(t)
        # one look for the usual case: no change from before the sample to the next one
        around = self._span(connector_id, s0 - self.response, t if after is None else after)
        if not _steady(around):
            whole = self._span(connector_id, s0 - self.response, t)
            if not self._settled(connector_id, s0, v0, t, whole):
                since = self._span(connector_id, s0, t)
                floor = since[0] if since is not None else np.inf
                return {line: min(v0.get(line, 0.0), floor) for line in LINES}
        smooth = after is None or _steady(around)
        drawn = samples.at(t, smooth)
        if window_s > 0:
            before = samples.at(t - timedelta(seconds=window_s), smooth)
            drawn = {line: min(a, before[line]) for line, a in drawn.items()}
        now = around if _steady(around) else self._span(connector_id, t, t)
        if now is None:
            return drawn
        return {line: min(a, now[1]) for line, a in drawn.items()}

    def _span(self, cid: str, a: datetime, b: datetime) -> tuple[float, float] | None:
        """(lowest, highest) limit possibly in force over [a, b] (None: none known)."""
        trail = self.trails.get(cid)
        if trail is not None:
            span = trail.span(a, b)
            if span is not None:
                return span
        limit = self.limit_at(cid, b) if self.limit_at is not None else None
        return None if limit is None else (limit, limit)

    def _settled(
        self,
        cid: str,
        s0: datetime,
        v0: PerLine,
        t: datetime,
        whole: tuple[float, float] | None,
    ) -> bool:
        """Whether the sample at ``s0`` still says what the car draws at ``t``
        (``whole``: the limits over a response time before it to ``t``): no
        limit change meanwhile, or the car shown at its new limit (or below a
        limit that only went down)."""
        if _steady(whole):
            return True
        since = self._span(cid, s0, t)
        if not _steady(since) or since is None:
            return False  # changed after its last sample
        limit = since[0]
        top = max(v0.values(), default=0.0)
        if abs(top - limit) <= AT_LIMIT_A:
            return True
        lowered_only = whole is not None and whole[0] >= limit - 1e-6
        return top < limit and lowered_only

    def non_ev(self, group_id: str, now: datetime) -> PerLine:
        """The group's non-EV load per line now (signed: generation may make it
        negative; `Capacity.with_non_ev` counts that as 0)."""
        mine = [s for s in self.meters.values() if s.config.group == group_id]
        conn = next((s for s in mine if s.config.measures is Measures.CONNECTION), None)
        if conn is not None:
            if not conn.fresh(now):
                return conn.config.worst_a()
            reading = conn.readings[-1]
            ev = self.ev_at(group_id, reading.at, conn.config.interval_s)
            return {line: reading.current_a[line] - ev[line] for line in LINES}
        out = _zero()
        for s in mine:
            value = s.value(now)
            shown = value if value is not None else s.config.worst_a()
            sign = -1.0 if s.config.measures is Measures.GENERATION else 1.0
            for line in LINES:
                out[line] += sign * shown[line]
        for child in self.site.children(group_id):
            if child in self.metered:
                for line, a in self.non_ev(child, now).items():
                    out[line] += a
        return out

    def generation(self, group_id: str, now: datetime) -> PerLine:
        """What the fresh generation meters under a group show now (a stale one:
        0, as `non_ev` counts it)."""
        out = _zero()
        under = self._subtree(group_id)
        for s in self.meters.values():
            if s.config.measures is Measures.GENERATION and s.config.group in under:
                value = s.value(now)
                for line in LINES:
                    out[line] += value[line] if value is not None else 0.0
        return out

    def worst(self, group_id: str) -> PerLine:
        """The group's non-EV load when every meter is silent (as `non_ev`)."""
        mine = [s.config for s in self.meters.values() if s.config.group == group_id]
        conn = next((m for m in mine if m.measures is Measures.CONNECTION), None)
        if conn is not None:
            return conn.worst_a()
        out = _zero()
        for m in mine:
            for line, a in m.worst_a().items():
                out[line] += a
        for child in self.site.children(group_id):
            if child in self.metered:
                for line, a in self.worst(child).items():
                    out[line] += a
        return out

    def blind(self, group_id: str, now: datetime) -> bool:
        """Whether a meter that counts for the group is stale (its worst case holds)."""
        return any(
            not s.fresh(now) and s.config.group in self._subtree(group_id)
            for s in self.meters.values()
        )

    def worst_all(self) -> dict[str, PerLine]:
        """Per metered group, the worst case: what the fallback profiles assume."""
        return {g: self.worst(g) for g in self.metered}

    def stale(self, now: datetime) -> list[str]:
        """Ids of the meters that count at their worst case now."""
        return [mid for mid, s in self.meters.items() if not s.fresh(now)]

    def series(self, grid: TimeGrid, now: datetime) -> dict[str, dict[Line, np.ndarray]]:
        """Per metered group, per line, the non-EV load in each slot of ``grid``."""
        out: dict[str, dict[Line, np.ndarray]] = {}
        for gid in self.metered:
            live = self.non_ev(gid, now)
            worst = self.worst(gid)
            history = GroupHistory(gid, tuple(self.history.get(gid, ())), worst)
            if self.blind(gid, now):  # no forecast from a meter that says nothing
                ahead = {line: np.full(grid.slots, worst[line]) for line in LINES}
            else:
                ahead = self._forecast(history, grid, now, worst)
            out[gid] = {}
            for line in LINES:
                arr = np.asarray(ahead[line], dtype=float).copy()
                arr[0] = live[line]  # slot 0: what the meters show now
                out[gid][line] = arr
        return out

    def _forecast(
        self, history: GroupHistory, grid: TimeGrid, now: datetime, worst: PerLine
    ) -> dict[Line, np.ndarray]:
        """The forecaster's answer, or the worst case if it has none that fits."""
        try:
            ahead = self.forecast(history, grid, now)
            ok = all(
                np.shape(ahead[line]) == (grid.slots,) and np.all(np.isfinite(ahead[line]))
                for line in LINES
            )
        except Exception:
            log.exception("non-EV forecast of %s failed: its worst case instead", history.group_id)
            ok = False
        if not ok:
            return {line: np.full(grid.slots, worst[line]) for line in LINES}
        return ahead

    def capacity_provider(
        self, inner: Callable[[Site, TimeGrid, datetime], Capacity]
    ) -> Callable[[Site, TimeGrid, datetime], Capacity]:
        """``inner``'s capacity with the groups' non-EV load taken off."""

        def provide(site: Site, grid: TimeGrid, now: datetime) -> Capacity:
            return inner(site, grid, now).with_non_ev(self.series(grid, now))

        return provide
