"""The non-EV load behind a site's connection, in a simulation.

The site-load CSV (``start,group_id,l1_a,l2_a,l3_a``: a group's non-EV load per
line from ``start`` until the group's next row; nothing before its first row),
read by `gridshare.csvio.read_site_load`, is drawn on the group and on every
group above it. Two views of it:

* `SiteLoad` — the truth. Per step and limit row of `SiteLimits`, what the
  building draws: the highest value in force during the step (A on a line row,
  kW at the site's voltage on a power row). The simulator checks chargers +
  building against every limit with it, and the offline optimum plans with it.
* `LoadView` — what an online strategy is told at a moment, as the service
  would be: the readings so far, never a later one. ``forecast`` (the
  service's way): slot 0 is the reading now, later slots the
  `forecasts.building_load` forecaster refitted every local midnight on the
  readings so far (before a day type and time of day has three days of
  readings: the highest reading so far on each line). ``peak``: a static
  reservation of the building's peak per line over the whole file (what
  operators do today: a static EV limit sized for the building's worst
  hour). ``blind``: nothing (the chargers planned as if alone).

The planner is told the reservation as the capacity's non-EV load
(`Capacity.non_ev_a`), per group and line: each line keeps what the building
draws on it, and a kW limit its power at the site's voltage. A weighted group
(a transformer's primary, modelled by its chargers' weights) has no weight for
the building: its limit sees the chargers alone.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd

from forecasts.building_load import (
    LINE_COLUMNS,
    BuildingLoadForecaster,
    ConstantLoad,
    ForecastSettings,
    Reading,
)
from gridshare.simulation.capacity import SiteLimits
from optimizer import Capacity, Site, TimeGrid
from optimizer.site import LINES, Line

VIEWS = ("forecast", "peak", "blind")
"""What an online strategy is told of the site load (see the module docstring)."""

Rows = Mapping[str, Sequence[tuple[datetime, tuple[float, float, float]]]]


class SiteLoad:
    """The site-load file's rows per group, as step functions of time."""

    def __init__(self, site: Site, rows: Rows) -> None:
        self.site = site
        self._t: dict[str, np.ndarray] = {}
        self._a: dict[str, np.ndarray] = {}
        for gid, series in rows.items():
            self._t[gid] = np.array([t.timestamp() for t, _ in series], dtype=float)
            self._a[gid] = np.array([a for _, a in series], dtype=float).reshape(-1, 3)

    @property
    def group_ids(self) -> tuple[str, ...]:
        return tuple(self._t)

    def at(self, group_id: str, t: datetime) -> np.ndarray:
        """A per line in force at ``t`` (0 before the group's first row)."""
        i = int(np.searchsorted(self._t[group_id], t.timestamp(), side="right")) - 1
        return self._a[group_id][i].copy() if i >= 0 else np.zeros(3)

    def over(self, group_id: str, start: datetime, step: timedelta, n: int) -> np.ndarray:
        """(n, 3): the highest A per line in force during each step from ``start``."""
        t, a = self._t[group_id], self._a[group_id]
        s = step.total_seconds()
        starts = start.timestamp() + s * np.arange(n)
        i = np.searchsorted(t, starts, side="right") - 1
        out = np.where((i >= 0)[:, None], a[np.maximum(i, 0)], 0.0)
        # rows that start inside a step raise it too
        k = np.floor((t - start.timestamp()) / s).astype(np.int64)
        inside = (k >= 0) & (k < n) & ~np.isin(t, starts)
        np.maximum.at(out, k[inside], a[inside])
        return np.asarray(out)

    def peak(self, group_id: str) -> np.ndarray:
        return np.asarray(self._a[group_id].max(axis=0))

    def readings(self, group_id: str, until: datetime) -> pd.DataFrame:
        """The rows of the group up to ``until`` (included), as readings."""
        t, a = self._t[group_id], self._a[group_id]
        n = int(np.searchsorted(t, until.timestamp(), side="right"))
        index = pd.to_datetime(t[:n], unit="s", utc=True)
        return pd.DataFrame(a[:n], index=index, columns=list(LINE_COLUMNS))

    def row_matrix(
        self, limits: SiteLimits, start: datetime, step: timedelta, n: int
    ) -> np.ndarray:
        """(n, limit rows): what the building draws in each row, step by step."""
        out = np.zeros((n, len(limits.rows)))
        volts = self.site.site.voltage_v
        for gid in self.group_ids:
            amps = self.over(gid, start, step, n)
            above = set(self.site.ancestors(gid))
            for r, row in enumerate(limits.rows):
                if row.group_id not in above or row.quantity == "weighted":
                    continue
                if row.quantity == "kW":
                    out[:, r] += amps.sum(axis=1) * volts / 1000.0
                else:
                    out[:, r] += amps[:, LINES.index(Line(row.quantity))]
        return out


@dataclass(frozen=True)
class SiteLoadSetting:
    """A simulation's site load: the truth, what online strategies are told of
    it (`VIEWS`) and whose public holidays the forecaster knows."""

    load: SiteLoad
    view: str = "forecast"
    holidays: str | None = None

    def __post_init__(self) -> None:
        if self.view not in VIEWS:
            raise ValueError(f"site-load view {self.view!r}: one of {', '.join(VIEWS)}")

    def told(self) -> LoadView:
        return LoadView(self.load, self.view, country=self.holidays)


class LoadView:
    """What an online strategy is told of the site load (see the module docstring)."""

    def __init__(
        self,
        load: SiteLoad,
        view: str = "forecast",
        *,
        country: str | None = None,
        settings: ForecastSettings | None = None,
    ) -> None:
        if view not in VIEWS:
            raise ValueError(f"site-load view {view!r}: one of {', '.join(VIEWS)}")
        self.load = load
        self.view = view
        self.country = country
        self.settings = settings or ForecastSettings()
        self._zone = ZoneInfo(load.site.site.timezone)
        self._fitted: dict[str, tuple[date, BuildingLoadForecaster]] = {}

    def _forecaster(self, group_id: str, now: datetime) -> BuildingLoadForecaster:
        day = now.astimezone(self._zone).date()
        cached = self._fitted.get(group_id)
        if cached is not None and cached[0] == day:
            return cached[1]
        midnight = datetime.combine(day, datetime.min.time(), self._zone)
        history = self.load.readings(group_id, midnight)
        highest = history.max().to_numpy(float) if len(history) else np.zeros(3)
        f = BuildingLoadForecaster(
            prior=ConstantLoad((float(highest[0]), float(highest[1]), float(highest[2]))),
            timezone=self.load.site.site.timezone,
            country=self.country,
            settings=self.settings,
        ).fit(history)
        self._fitted[group_id] = (day, f)
        return f

    def reserved(self, group_id: str, grid: TimeGrid, now: datetime) -> np.ndarray:
        """(slots, 3): A per line the planner keeps for the group's building."""
        if self.view == "blind":
            return np.zeros((grid.slots, 3))
        if self.view == "peak":
            return np.tile(self.load.peak(group_id), (grid.slots, 1))
        live = self.load.at(group_id, now)
        f = self._forecaster(group_id, now)
        reading = Reading(now, (float(live[0]), float(live[1]), float(live[2])))
        out = f.forecast(grid.start, grid.slots, grid.slot_minutes, reading)
        out[0] = live  # slot 0: the reading now (the service re-plans on every new one)
        return np.maximum(out, 0.0)

    def capacity(self, base: Capacity, grid: TimeGrid, now: datetime) -> Capacity:
        """``base`` with what the planner keeps for the buildings as the non-EV
        load of the group and every group above it, line by line (a weighted
        group has no weight for a building: it is left out)."""
        site = self.load.site
        per_line: dict[str, np.ndarray] = {}
        for gid in self.load.group_ids:
            r = self.reserved(gid, grid, now)
            for above in site.ancestors(gid):
                if site.group_by_id[above].weights is None:
                    per_line[above] = per_line.get(above, np.zeros((grid.slots, 3))) + r
        loads = {
            gid: {line: r[:, i].copy() for i, line in enumerate(LINES)}
            for gid, r in per_line.items()
        }
        return base.with_non_ev({**base.non_ev_a, **loads})
