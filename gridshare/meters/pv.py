"""The site's PV array in the non-EV load ahead: a `NonEvForecast` around the
building's own.

A group's non-EV load is what its meters net (load − generation). For the
slots ahead, the building forecaster is given the group's *gross* load (each
sample plus what the generation meters under the group showed at its moment;
``GroupHistory.gross`` says so, and a forecaster fitted on the store learns
the stored gross roll-ups then), and the PV forecast (`forecasts.pv`) is taken
off its answer: the building's
habits and the sun's course are forecast apart. The clear-sky index is measured
on the array's generation meters over the last hour at each re-plan. Slot 0
stays the live reading (`BuildingLoad.series`); a stale meter still means the
worst case there and ahead (no generation counted).
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from forecasts.pv import INDEX_WINDOW, PvConfig, PvForecast, clear_sky_slots, read_pv_csv
from gridshare.meters.building import BuildingLoad, GroupHistory, GroupSample, NonEvForecast
from gridshare.meters.config import Measures
from gridshare.meters.readings import Reading
from optimizer.problem import TimeGrid
from optimizer.site import LINES, Line

GROSS_SAMPLES = 512
"""The latest samples the forecaster is given, grossed up (a re-plan's budget:
the held and the fitted forecasts read the latest; the fit reads the store)."""


class WithPv:
    """``inner``'s forecast of the gross load, less the PV forecast (see the module)."""

    def __init__(self, inner: NonEvForecast, building: BuildingLoad, pv: PvForecast) -> None:
        self.inner = inner
        self.building = building
        self.pv = pv
        site = building.site
        self.behind = frozenset(site.ancestors(pv.config.group))
        """The groups whose connection the array feeds (its own and those above)."""

    def _generation_meters(self, group_id: str) -> list[tuple[Sequence[Reading], float]]:
        """(readings, seconds they stay fresh) of the generation meters under a group."""
        site = self.building.site
        return [
            (list(s.readings), s.config.stale_after_s)
            for s in self.building.meters.values()
            if s.config.measures is Measures.GENERATION
            and group_id in site.ancestors(s.config.group)
        ]

    def _gross(self, history: GroupHistory) -> GroupHistory:
        meters = self._generation_meters(history.group_id)
        if not meters:
            return replace(history, gross=True)
        timed = [([r.at for r in readings], readings, stale_s) for readings, stale_s in meters]
        samples = []
        for sample in history.samples[-GROSS_SAMPLES:]:
            gen = generation_at(timed, sample.at)
            samples.append(
                GroupSample(sample.at, {ln: sample.non_ev_a[ln] + gen[ln] for ln in LINES})
            )
        return GroupHistory(history.group_id, tuple(samples), history.worst_a, gross=True)

    def measured_kw(self, now: datetime) -> list[tuple[datetime, float]]:
        """(time, kW) of the array's generation meters over the last hour."""
        volts = self.building.site.site.voltage_v
        since = now - INDEX_WINDOW
        out = []
        for readings, _ in self._generation_meters(self.pv.config.group):
            for r in readings:
                if since <= r.at <= now:
                    out.append((r.at, sum(r.current_a.values()) * volts / 1000.0))
        return sorted(out)

    def __call__(
        self, history: GroupHistory, grid: TimeGrid, now: datetime
    ) -> dict[Line, np.ndarray]:
        if history.group_id not in self.behind:
            return self.inner(history, grid, now)
        ahead = self.inner(self._gross(history), grid, now)
        if self.pv.series is None:
            self.pv.observe(self.measured_kw(now), now)
        pv = self.pv.per_line_a(grid)
        return {line: np.asarray(ahead[line], float) - pv[line] for line in LINES}


def generation_at(
    meters: Sequence[tuple[Sequence[datetime], Sequence[Reading], float]], t: datetime
) -> dict[Line, float]:
    """What the generation meters showed at ``t`` (each given as its reading times,
    readings and freshness): each its reading at or before it if still fresh
    then (0 otherwise, as the non-EV load counted it)."""
    out = dict.fromkeys(LINES, 0.0)
    for times, readings, stale_s in meters:
        i = bisect.bisect_right(times, t)
        if i == 0 or (t - readings[i - 1].at).total_seconds() > stale_s:
            continue
        for line, a in readings[i - 1].current_a.items():
            out[line] += a
    return out


def pv_forecast(config: PvConfig, voltage_v: float, timezone: str, base: Path | None) -> PvForecast:
    """The array's forecaster: its forecast file's (relative to ``base``), or pvlib's."""
    series = None
    if config.forecast_csv is not None:
        path = Path(config.forecast_csv)
        if base is not None and not path.is_absolute():
            path = base / path
        series = read_pv_csv(path, timezone)
    return PvForecast(config, voltage_v, series)


def attach_pv(building: BuildingLoad, pv: PvForecast) -> None:
    """Plan the slots ahead with the array's generation forecast (pvlib loaded
    now, at start: its first use reads tables for a few seconds)."""
    if pv.series is None:
        clear_sky_slots(pv.config, TimeGrid(datetime(2000, 6, 21, tzinfo=UTC), 60, 1))
    building.forecast = WithPv(building.forecast, building, pv)
