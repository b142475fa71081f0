"""Progress of a simulation run: each local day of the site, once played through.

`Days` follows a run step by step and tells a callback (``on_day`` of
`Simulation.run`) of every day the run is past: its energy, its violations
and the wall time it took, so a long run can log one line a day.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Protocol
from zoneinfo import ZoneInfo

import numpy as np

from optimizer import Site


class _Run(Protocol):
    """What `Days` reads of a simulation (`gridshare.simulation.engine.Simulation`)."""

    site: Site
    start: datetime
    step: timedelta
    n_steps: int

    def time_of(self, step: int) -> datetime: ...


class _Result(Protocol):
    """What `Days` reads of a run's result as it grows (`RunResult`)."""

    delivered_kwh: np.ndarray
    violations: list[tuple[int, int, float]]


@dataclass(frozen=True)
class DayDone:
    """A simulated local day of the site played through (for progress logs)."""

    strategy: str
    day: date
    number: int
    """1 for the first day of the run."""
    days: int
    delivered_kwh: float
    """Delivered over this day."""
    violations: int
    """(step, limit) pairs over a limit this day."""
    seconds: float
    """Wall time the day took to simulate."""
    chargers: int
    """Chargers of the simulated site."""


class Days:
    """Tells ``on_day`` of each local day of the site once the run is past it."""

    def __init__(
        self,
        sim: _Run,
        strategy: str,
        result: _Result,
        on_day: Callable[[DayDone], None] | None,
    ) -> None:
        self._sim, self._strategy, self._result, self._on_day = sim, strategy, result, on_day
        self._zone = ZoneInfo(sim.site.site.timezone)
        self._first = self._day = sim.start.astimezone(self._zone).date()
        self._days = (
            sim.time_of(max(sim.n_steps - 1, 0)).astimezone(self._zone).date() - self._first
        ).days + 1
        self._next = self._step_of(self._day + timedelta(days=1))
        self._kwh, self._violations, self._t0 = 0.0, 0, time.perf_counter()

    def _step_of(self, day: date) -> int:
        """The first step at or after the local midnight starting ``day``."""
        midnight = datetime.combine(day, datetime.min.time(), tzinfo=self._zone)
        return math.ceil((midnight - self._sim.start) / self._sim.step)

    def reach(self, k: int, last: bool = False) -> None:
        """The run is at step ``k``: report every day that ended before it."""
        if self._on_day is None:
            return
        while k >= self._next or (last and self._day <= self._last_day()):
            kwh = float(self._result.delivered_kwh.sum())
            violations = len(self._result.violations)
            now = time.perf_counter()
            self._on_day(
                DayDone(
                    self._strategy,
                    self._day,
                    (self._day - self._first).days + 1,
                    self._days,
                    kwh - self._kwh,
                    violations - self._violations,
                    now - self._t0,
                    len(self._sim.site.chargers),
                )
            )
            self._kwh, self._violations, self._t0 = kwh, violations, now
            self._day += timedelta(days=1)
            self._next = self._step_of(self._day + timedelta(days=1))

    def _last_day(self) -> date:
        return self._first + timedelta(days=self._days - 1)
