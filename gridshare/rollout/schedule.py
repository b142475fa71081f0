"""A per-line current limit over time, as a station stores it, and its OCPP profile."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import numpy as np

from ocpp_adapter.events import ChargingLimitSpec, LimitPeriod, LimitPurpose
from optimizer.problem import TimeGrid

EPS = 1e-6
"""Tolerance when comparing limits (A) and period offsets (s)."""


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
