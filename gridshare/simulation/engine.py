"""The event-driven simulator: historical sessions on a site, one strategy.

Time moves in steps (5 minutes for the ACN sites); arrivals and departures are
snapped to step boundaries, so every event falls on a step. At each step:
departures leave, arrivals plug in, the strategy is asked what to offer every
car plugged in (seeing only what the service would see live: arrival, stated
departure and energy, energy metered so far and what each car drew when offered
more), then every car draws what its physics allows and the site's limits are
checked against what is really drawn. Steps with no car plugged in are skipped.

Car physics (`CarModel`): a car draws min(offer, its maximum, its taper, what it
still needs). The taper is linear in the energy still to go: within the last
``taper_kwh`` of its need the car accepts ``max × remaining / taper_kwh`` (the
constant-voltage phase); ``taper_kwh = 0`` is an ideal battery. A car stops once
within ``FULL_TOLERANCE_KWH`` of its need.

Bookkeeping is exact: delivered energy is summed per session and per step from
the same products current × kWh-per-A, never estimated.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Protocol

import numpy as np

from forecasts.demand import DemandDefaults, RateLearner, RateSettings
from gridshare.simulation.capacity import SiteLimits
from gridshare.simulation.progress import DayDone, Days
from gridshare.simulation.pv import SimPv
from gridshare.simulation.sessions import SimSession
from gridshare.simulation.site_load import SiteLoadSetting
from gridshare.site.problem import session_demand
from optimizer import Capacity, SessionDemand, Site, TimeGrid
from optimizer.modes import ChargeMode
from optimizer.site import Line

FULL_TOLERANCE_KWH = 1e-6
"""A car within this of its need stops drawing (1 mWh)."""
LIMIT_TOLERANCE = 1e-6


@dataclass(frozen=True)
class CarModel:
    taper_kwh: float = 2.0
    """Energy before full over which the accepted current falls linearly to 0."""
    max_current_a: float | None = None
    """The car's own maximum (A per line); None: the connector's maximum."""


@dataclass
class LiveSession:
    """What the service knows of a car plugged in: never its real departure or need."""

    session_id: str
    connector_id: str
    arrival: datetime
    stated_departure: datetime
    stated_energy_kwh: float
    rate: RateLearner
    """What its meter values taught, by the service's own rules."""
    delivered_kwh: float = 0.0
    energy_stated: bool = True
    """False: ``stated_energy_kwh`` is the service's default, not the driver's."""
    charge_mode: ChargeMode = ChargeMode.FAST

    def observe(
        self, now: datetime, offered: float, drawn: float, lines: tuple[Line, ...], readings: int
    ) -> None:
        """A step's meter readings: the car drew ``drawn`` on each of ``lines``
        when offered ``offered``."""
        self.rate.observe(dict.fromkeys(lines, drawn), offered, at=now, readings=readings)

    def demand(
        self,
        now: datetime,
        defaults: DemandDefaults,
        meter_values: bool = True,
    ) -> SessionDemand:
        # the driver's stated energy counts as an estimate: at least a top-up is left
        return session_demand(
            self.session_id,
            self.connector_id,
            now=now,
            started_at=self.arrival,
            departure=self.stated_departure,
            delivered_kwh=self.delivered_kwh,
            defaults=defaults,
            estimate_kwh=self.stated_energy_kwh,
            energy_stated=self.energy_stated,
            rate=self.rate if meter_values else None,
            charge_mode=self.charge_mode,
        )


@dataclass(frozen=True)
class StepContext:
    sim: Simulation
    now: datetime
    step: int
    live: tuple[LiveSession, ...]

    def demands(self, meter_values: bool = True) -> tuple[SessionDemand, ...]:
        """The planning view of every car plugged in; ``meter_values=False`` leaves
        out what meters taught (the car's real maximum and phases)."""
        return tuple(s.demand(self.now, self.sim.defaults, meter_values) for s in self.live)


class Strategy(Protocol):
    name: str

    def decide(self, ctx: StepContext) -> Mapping[str, float]:
        """Current (A per line) to offer each live session now, by session id."""
        ...


@dataclass
class RunResult:
    strategy: str
    sessions: tuple[SimSession, ...]
    start: datetime
    step: timedelta
    connector_ids: tuple[str, ...]
    delivered_kwh: np.ndarray
    """Per session (same order as ``sessions``)."""
    need_kwh: np.ndarray
    current_a: np.ndarray
    """(steps, connectors) current really drawn."""
    offered_a: np.ndarray
    """(steps, connectors) current offered."""
    power_kw: np.ndarray
    """(steps,) site power drawn."""
    violations: list[tuple[int, int, float]] = field(default_factory=list)
    """(step, limit row, excess) where what cars drew exceeded a limit."""
    offer_violations: int = 0
    """Steps × limits where the *offered* currents exceeded a limit."""
    decide_ms: list[float] = field(default_factory=list)
    max_draw_ratio: float = 0.0
    """Largest drawn / allowed-by-physics ratio over all steps (≤ 1 by construction)."""
    extra: dict[str, object] = field(default_factory=dict)

    def times(self) -> list[datetime]:
        return [self.start + i * self.step for i in range(len(self.power_kw))]


class Simulation:
    """One site, one set of sessions; `run` plays them against a strategy."""

    def __init__(
        self,
        site: Site,
        sessions: tuple[SimSession, ...] | list[SimSession],
        *,
        limits: SiteLimits | None = None,
        step_minutes: int | None = None,
        car: CarModel | None = None,
        defaults: DemandDefaults | None = None,
        rates: RateSettings | None = None,
        meter_interval_s: float = 10.0,
        site_load: SiteLoadSetting | None = None,
        pv: SimPv | None = None,
    ) -> None:
        self.site = site
        self.pv = pv  # an array on the connection (`gridshare.simulation.pv`)
        self.sessions = tuple(sorted(sessions, key=lambda s: (s.arrival, s.session_id)))
        if not self.sessions:
            raise ValueError("no sessions to simulate")
        self.limits = limits or SiteLimits(site)
        self.step = timedelta(minutes=step_minutes or site.site.slot_minutes)
        self.car = car or CarModel()
        self.defaults = defaults or DemandDefaults()
        self.rates = rates or RateSettings()
        # the service asks stations for a reading every 10 s ([server]
        # meter_interval_s): one step's constant draw is that many readings
        self.readings_per_step = max(1, int(self.step.total_seconds() // meter_interval_s))
        self.start = min(s.arrival for s in self.sessions)
        self.end = max(s.departure for s in self.sessions)
        self.n_steps = self.index(self.end)
        self.col = {k: i for i, k in enumerate(self.limits.connector_ids)}
        self.index_of = {s.session_id: i for i, s in enumerate(self.sessions)}
        self.arrive_step = np.array([self.index(s.arrival) for s in self.sessions])
        self.leave_step = np.array([self.index(s.departure) for s in self.sessions])
        if np.any(self.leave_step <= self.arrive_step):
            raise ValueError("every session needs at least one whole step (snap them first)")
        infos = [site.connectors[s.connector_id] for s in self.sessions]
        for s, info in zip(self.sessions, infos, strict=True):
            if not set(s.car_lines or ()) <= {x.value for x in info.lines}:
                raise ValueError(
                    f"session {s.session_id}: car lines {s.car_lines} not wired at {s.connector_id}"
                )
        self.lines = [
            tuple(Line(x) for x in s.car_lines) if s.car_lines else info.lines
            for s, info in zip(self.sessions, infos, strict=True)
        ]
        """Per session: the lines its car loads."""
        self.kw_per_a = np.array(
            [info.kw_per_amp(ln) for info, ln in zip(infos, self.lines, strict=True)]
        )
        self.kwh_per_a = self.kw_per_a * self.step_hours
        self.car_max_a = np.array(
            [
                min(i.max_current_a, s.car_max_current_a or self.car.max_current_a or math.inf)
                for s, i in zip(self.sessions, infos, strict=True)
            ]
        )
        self.coef = np.stack(
            [
                self.limits.column(s.connector_id, ln)
                for s, ln in zip(self.sessions, self.lines, strict=True)
            ],
            axis=1,
        )
        """(limit rows, sessions): what one ampere of each car weighs in every limit."""
        self.need = np.array([s.energy_kwh for s in self.sessions])
        self.session_col = np.array([self.col[s.connector_id] for s in self.sessions])
        self.site_load = site_load
        self.load_view = site_load.told() if site_load is not None else None
        self.building = (
            site_load.load.row_matrix(self.limits, self.start, self.step, self.n_steps)
            if site_load is not None
            else None
        )
        """(steps, limit rows): what the non-EV load really draws in each row."""
        loaded = set(site_load.load.group_ids) if site_load is not None else set()
        self._loaded_line_rows = np.array(
            [
                r
                for r, row in enumerate(self.limits.rows)
                if row.group_id in loaded and row.quantity in ("L1", "L2", "L3")
            ],
            dtype=np.int64,
        )
        """Per-line rows of the groups with a site load (for the peak)."""
        if pv is not None and self.building is not None:
            pv.net_building(self.building, self.limits, self.start, self.step)

    def capacity(self, grid: TimeGrid, now: datetime) -> Capacity:
        """The capacity an online strategy plans with at ``now``: the limits, less
        what it is told of the site load (`LoadView`)."""
        base = self.limits.capacity(grid)
        told = base if self.load_view is None else self.load_view.capacity(base, grid, now)
        return told if self.pv is None else self.pv.capacity(self.site, told, grid)

    def bounds(self, k: int) -> np.ndarray:
        """Room left for the cars in every limit row during step ``k``."""
        out = self.limits.at(self.time_of(k))
        return out if self.building is None else out - self.building[k]

    @property
    def step_hours(self) -> float:
        return self.step.total_seconds() / 3600.0

    def index(self, t: datetime) -> int:
        return round((t - self.start) / self.step)

    def time_of(self, step: int) -> datetime:
        return self.start + step * self.step

    def physics_cap(self, i: int, delivered: float) -> float:
        """Most current session ``i`` can draw this step, having taken ``delivered``."""
        r = self.need[i] - delivered
        if r <= FULL_TOLERANCE_KWH:
            return 0.0
        cap = min(self.car_max_a[i], r / self.kwh_per_a[i])
        if self.car.taper_kwh > 0:
            cap = min(cap, self.car_max_a[i] * r / self.car.taper_kwh)
        return max(cap, 0.0)

    def _live(self, i: int) -> LiveSession:
        s = self.sessions[i]
        dep = s.departure_told(self.defaults.dwell_hours)
        energy = (
            s.stated_energy_kwh if s.stated_energy_kwh is not None else self.defaults.energy_kwh
        )
        wired = self.site.connectors[s.connector_id].lines
        rate = RateLearner(wired, self.rates)
        return LiveSession(
            s.session_id,
            s.connector_id,
            s.arrival,
            dep,
            energy,
            rate,
            energy_stated=s.stated_energy_kwh is not None,
            charge_mode=self.pv.mode if self.pv is not None else ChargeMode.FAST,
        )

    def run(
        self,
        strategy: Strategy,
        *,
        progress: bool = False,
        on_step: Callable[[int], None] | None = None,
        on_day: Callable[[DayDone], None] | None = None,
    ) -> RunResult:
        n_c = len(self.col)
        current = np.zeros((self.n_steps, n_c))
        offered = np.zeros((self.n_steps, n_c))
        power = np.zeros(self.n_steps)
        delivered = np.zeros(len(self.sessions))
        result = RunResult(
            strategy.name,
            self.sessions,
            self.start,
            self.step,
            self.limits.connector_ids,
            delivered,
            self.need.copy(),
            current,
            offered,
            power,
        )
        by_arrival = np.argsort(self.arrive_step, kind="stable")
        next_arrival = 0
        active: dict[int, LiveSession] = {}
        bar = _Progress(self.n_steps, f"{strategy.name}", enabled=progress)
        days = Days(self, strategy.name, result, on_day)
        visited: list[int] = []
        peaks: list[float] = []
        k = 0
        while k < self.n_steps:
            days.reach(k)
            for i in [i for i in active if self.leave_step[i] <= k]:
                del active[i]
            while (
                next_arrival < len(by_arrival) and self.arrive_step[by_arrival[next_arrival]] <= k
            ):
                i = int(by_arrival[next_arrival])
                active[i] = self._live(i)
                next_arrival += 1
            if not active:
                if next_arrival >= len(by_arrival):
                    break
                k = int(self.arrive_step[by_arrival[next_arrival]])
                bar.update(k)
                continue
            now = self.time_of(k)
            order = sorted(active)
            ctx = StepContext(self, now, k, tuple(active[i] for i in order))
            t0 = time.perf_counter()
            offer = strategy.decide(ctx)
            result.decide_ms.append((time.perf_counter() - t0) * 1000.0)
            draws = np.zeros(len(order))
            offers = np.zeros(len(order))
            for n, i in enumerate(order):
                live = active[i]
                o = max(0.0, float(offer.get(live.session_id, 0.0)))
                cap = self.physics_cap(i, delivered[i])
                draw = min(o, cap)
                if cap > 0:
                    result.max_draw_ratio = max(result.max_draw_ratio, draw / cap)
                c = self.session_col[i]
                offered[k, c] = o
                current[k, c] = draw
                e = draw * self.kwh_per_a[i]
                delivered[i] += e
                power[k] += draw * self.kw_per_a[i]
                live.delivered_kwh = float(delivered[i])
                live.observe(now, o, draw, self.lines[i], self.readings_per_step)
                draws[n], offers[n] = draw, o
            bounds = self.bounds(k)
            coef = self.coef[:, order]
            load = self.limits.load(coef, draws)
            visited.append(k)
            peaks.append(self._peak(load, k))
            for r in np.flatnonzero(load > bounds + LIMIT_TOLERANCE):
                result.violations.append((k, int(r), float(load[r] - bounds[r])))
            result.offer_violations += int(
                np.count_nonzero(self.limits.load(coef, offers) > bounds + LIMIT_TOLERANCE)
            )
            if on_step is not None:
                on_step(k)
            k += 1
            bar.update(k)
        days.reach(self.n_steps, last=True)
        bar.close()
        if self.building is not None:
            result.extra |= self._connection_figures(result, visited, peaks)
        if self.pv is not None:
            result.extra |= self.pv.figures(
                self.site, result.power_kw, self.start, self.step, self.site_load
            )
        return result

    def _peak(self, cars: np.ndarray, k: int) -> float:
        """Highest per-line current (cars + building) on a group with a site load."""
        if self.building is None:
            return 0.0
        rows = self._loaded_line_rows
        return float((cars[rows] + self.building[k, rows]).max()) if len(rows) else 0.0

    def _connection_figures(
        self, result: RunResult, visited: list[int], peaks: list[float]
    ) -> dict[str, object]:
        """Minutes with any limit over (chargers + building; the building alone in
        the steps with no car plugged in) and the peak per-line current."""
        assert self.building is not None
        over = {k for k, _, _ in result.violations}
        seen = np.zeros(self.n_steps, dtype=bool)
        seen[visited] = True
        rows = self._loaded_line_rows
        peak = max(peaks, default=0.0)
        for k in np.flatnonzero(~seen & self.building.any(axis=1)).tolist():
            if np.any(self.building[k] > self.limits.at(self.time_of(k)) + LIMIT_TOLERANCE):
                over.add(k)
            if len(rows):
                peak = max(peak, float(self.building[k, rows].max()))
        minutes = len(over) * self.step.total_seconds() / 60.0
        return {"connection_overload_minutes": minutes, "peak_connection_a": round(peak, 2)}


class _Progress:
    """A rich progress bar over steps, or nothing."""

    def __init__(self, total: int, label: str, enabled: bool) -> None:
        self._p = None
        if enabled:
            from rich.console import Console
            from rich.progress import Progress

            self._p = Progress(console=Console(stderr=True), transient=True)
            self._p.start()
            self._task = self._p.add_task(label, total=total)

    def update(self, k: int) -> None:
        if self._p is not None:
            self._p.update(self._task, completed=k)

    def close(self) -> None:
        if self._p is not None:
            self._p.stop()
