"""The building's forecast as the service plans with it: a `NonEvForecast`.

Per metered group, a `forecasts.building_load.BuildingLoadForecaster` fitted
on the group's stored history (the 15-minute roll-ups of its non-EV load,
each at its highest sample: the safe side; the gross load, generation added
back, when the history it is asked with is gross: a PV forecast is then taken
off its answer, `gridshare.meters.pv`), refitted at most once an hour of
the service's clock — off the event loop, the previous fit serving meanwhile.
Its prior, where a day type and time of day has too few days of readings: the
BDEW profile of the meters' ``annual_kwh`` (summed over the group's meters
that give one), else the group's worst case (``max_non_ev_a``). The latest
sample corrects the next hour.

What it answers only ever lowers what the chargers get (`Capacity.with_non_ev`
counts a negative load as 0); where the group has a worst case, no slot is
forecast above it (as `hold_latest`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import numpy as np
import pandas as pd

from forecasts.building_load import (
    LINE_COLUMNS,
    BuildingLoadForecaster,
    ConstantLoad,
    ForecastSettings,
    Prior,
    Reading,
    StandardProfile,
)
from gridshare.meters.building import GroupHistory
from gridshare.meters.config import Measures, MeterConfig
from gridshare.store import Store
from optimizer.problem import TimeGrid
from optimizer.site import LINES, Line, Site

log = logging.getLogger(__name__)

REFIT_EVERY = timedelta(hours=1)
CORRECTION_MAX_AGE = timedelta(hours=1)
"""A latest sample older than this says nothing of the next hour."""

History = Callable[[str, datetime, bool], pd.DataFrame]
"""(group id, since, gross) → its stored non-EV load (gross: with the generation
under it added back): aware index, columns l1_a, l2_a, l3_a."""

Key = tuple[str, bool]
"""(group id, gross): a group's net and gross loads are fitted apart."""


@dataclass(frozen=True)
class SummedPrior:
    """The sum of several priors (the BDEW profiles of a group's meters)."""

    parts: tuple[Prior, ...]

    def amps(self, local: pd.DatetimeIndex, day_type: np.ndarray) -> np.ndarray:
        out = np.zeros((len(local), 3))
        for p in self.parts:
            out += np.asarray(p.amps(local, day_type), dtype=float)
        return out


def group_prior(
    site: Site, meters: Iterable[MeterConfig], group_id: str, worst: Mapping[Line, float]
) -> Prior:
    """The BDEW profiles of the group's meters (its own and below) that give an
    ``annual_kwh``; without any, the group's worst case."""
    under = _subtree(site, group_id)
    parts: list[Prior] = [
        StandardProfile(m.profile, m.annual_kwh, voltage_v=site.site.voltage_v)
        for m in meters
        if m.group in under
        and m.profile is not None
        and m.annual_kwh is not None
        and m.measures is not Measures.GENERATION
    ]
    if parts:
        return SummedPrior(tuple(parts))
    return ConstantLoad((worst[LINES[0]], worst[LINES[1]], worst[LINES[2]]))


def _subtree(site: Site, group_id: str) -> set[str]:
    out = {group_id}
    for child in site.children(group_id):
        out |= _subtree(site, child)
    return out


@dataclass
class _Fitted:
    forecaster: BuildingLoadForecaster
    at: datetime | None
    """The service's time of the fit (None: the prior alone, never fitted)."""


@dataclass
class StoredHistoryForecast:
    """See the module. ``history`` reads the store (on the event loop's thread);
    the fit runs in a worker thread when a loop runs, else inline."""

    site: Site
    meters: tuple[MeterConfig, ...]
    history: History
    worst: Mapping[str, Mapping[Line, float]]
    """Per metered group, its worst case (`BuildingLoad.worst_all`)."""
    settings: ForecastSettings = field(default_factory=ForecastSettings)
    refit_every: timedelta = REFIT_EVERY
    _fits: dict[Key, _Fitted] = field(default_factory=dict, init=False)
    _refitting: set[Key] = field(default_factory=set, init=False)
    _tasks: set[asyncio.Task[None]] = field(default_factory=set, init=False)
    fits: int = field(default=0, init=False)
    """How many fits were made (tests, logs)."""

    def _new(self, group_id: str) -> BuildingLoadForecaster:
        worst = self.worst.get(group_id, dict.fromkeys(LINES, 0.0))
        return BuildingLoadForecaster(
            prior=group_prior(self.site, self.meters, group_id, worst),
            timezone=self.site.site.timezone,
            country=self._country(group_id),
            settings=self.settings,
        )

    def _country(self, group_id: str) -> str | None:
        """The country of the group's meters (its own first, then those above)."""
        for gid in self.site.ancestors(group_id):
            for m in self.meters:
                if m.group == gid and m.country is not None:
                    return m.country
        under = _subtree(self.site, group_id)
        return next((m.country for m in self.meters if m.group in under and m.country), None)

    def fit(self, group_id: str, now: datetime, gross: bool = False) -> BuildingLoadForecaster:
        """Fit the group's forecaster on its stored history now (inline)."""
        frame = self._frame((group_id, gross), now)
        return self._fitted((group_id, gross), self._new(group_id).fit(frame), now)

    def _frame(self, key: Key, now: datetime) -> pd.DataFrame:
        return self.history(key[0], now - timedelta(days=self.settings.window_days), key[1])

    def _fitted(self, key: Key, f: BuildingLoadForecaster, now: datetime) -> BuildingLoadForecaster:
        self._fits[key] = _Fitted(f, now)
        self.fits += 1
        return f

    def forecaster(
        self, group_id: str, now: datetime, gross: bool = False
    ) -> BuildingLoadForecaster:
        """The group's forecaster (of its gross load if ``gross``) as it stands, a
        refit started if one is due."""
        key = (group_id, gross)
        current = self._fits.get(key)
        due = current is None or current.at is None or now - current.at >= self.refit_every
        if not due or key in self._refitting:
            assert current is not None
            return current.forecaster
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return self.fit(group_id, now, gross)
        if current is None:
            self._fits[key] = current = _Fitted(self._new(group_id), None)
        frame = self._frame(key, now)
        self._refitting.add(key)
        task = loop.create_task(self._refit(key, frame, now), name=f"forecast {group_id}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return current.forecaster

    async def _refit(self, key: Key, frame: pd.DataFrame, now: datetime) -> None:
        group_id = key[0]
        try:
            f = await asyncio.to_thread(self._new(group_id).fit, frame)
            self._fitted(key, f, now)
            log.info("building forecast of %s fitted on %d rows", group_id, len(frame))
        except Exception:
            log.exception("building forecast of %s: fit failed (the previous one stays)", group_id)
            self._fits[key].at = now  # try again in an hour, not on every plan
        finally:
            self._refitting.discard(key)

    def __call__(
        self, history: GroupHistory, grid: TimeGrid, now: datetime
    ) -> dict[Line, np.ndarray]:
        f = self.forecaster(history.group_id, now, history.gross)
        reading = None
        if history.samples:
            last = history.samples[-1]
            if timedelta(0) <= now - last.at <= CORRECTION_MAX_AGE:
                l1, l2, l3 = (float(last.non_ev_a[line]) for line in LINES)
                reading = Reading(last.at, (l1, l2, l3))
        amps = f.forecast(grid.start, grid.slots, grid.slot_minutes, reading)
        out = {}
        for i, line in enumerate(LINES):
            worst = float(history.worst_a[line])
            col = np.asarray(amps[:, i], dtype=float)
            out[line] = np.minimum(col, worst) if worst > 0 else col
        return out


def stored_history(store: Store) -> History:
    """A group's roll-ups in ``store`` since a time, each at its highest sample
    (a quarter hour's peak, not its mean: the plan is to be rarely too optimistic),
    net or gross."""

    def read(group_id: str, since: datetime, gross: bool) -> pd.DataFrame:
        rows = store.group_non_ev_rollups(group_id, since)
        index = pd.DatetimeIndex(pd.to_datetime([r.start for r in rows], utc=True))
        peaks = [r.gross_max_a if gross else r.max_a for r in rows]
        values = np.asarray(peaks, dtype=float).reshape(-1, 3)
        return pd.DataFrame(values, index=index, columns=list(LINE_COLUMNS))

    return read


def store_forecast(
    store: Store,
    site: Site,
    meters: tuple[MeterConfig, ...],
    worst: Mapping[str, Mapping[Line, float]],
) -> StoredHistoryForecast:
    """The service's building forecast: fitted on what ``store`` keeps."""
    return StoredHistoryForecast(site, meters, stored_history(store), worst)
