"""What each strategy's charging costs the site and emits (``--tariff``,
``--carbon``): the realised import (cars + the building's real load) billed
with the same tariff and the REAL marginal emission rate (`cost_figures`);
what an online planner is told at each step (`OnlineCosts`: the prices, the
carbon forecast published by then, the billing period's peak so far from
what was really drawn); and the same objective in the offline optimum, which
knows the real rates (`add_offline_terms`)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from forecasts.carbon import CarbonSignal, read_carbon
from gridshare.tariff.bill import bill, interval_peaks
from gridshare.tariff.peak import PeakTracker
from gridshare.tariff.tariff import SignalInputs, Tariff, cost_signal
from optimizer import TimeGrid
from optimizer.cost_signal import CostSignal
from optimizer.costs import MONEY_WEIGHT, PEAK_SHARE

COST_KEYS = ("energy_cost", "peak_kw", "peak_charge", "total_cost", "carbon_kg")
"""Figures each strategy carries with a tariff or a carbon signal (`cost_figures`;
more may follow them)."""


@dataclass(frozen=True)
class SimCosts:
    """The tariff and the carbon signal of a simulation (either may be None)."""

    tariff: Tariff | None = None
    carbon: CarbonSignal | None = None
    extra_figures: tuple[Callable[[Any, Any], dict[str, object]], ...] = ()
    """More per-strategy figures, each ``(simulation, run) -> figures``."""


def building_kw(sim: Any) -> np.ndarray:
    """(steps,) the building's real import at the connection (0 without a site load)."""
    out = np.zeros(sim.n_steps)
    if sim.site_load is None:
        return out
    load = sim.site_load.load
    volts = sim.site.site.voltage_v
    for gid in load.group_ids:
        out += load.over(gid, sim.start, sim.step, sim.n_steps).sum(axis=1) * volts / 1000.0
    return out


def cost_figures(sim: Any, run: Any, costs: SimCosts) -> dict[str, object]:
    """A run's bill: `COST_KEYS` (a tariff needed for the money, a signal for carbon)."""
    total = np.asarray(run.power_kw, dtype=float) + building_kw(sim)
    moer = None
    if costs.carbon is not None:
        moer = costs.carbon.real([sim.time_of(k) for k in range(len(total))])
    out: dict[str, object] = {}
    if costs.tariff is not None:
        out |= bill(costs.tariff, sim.start, sim.step, total, moer).figures()
    elif moer is not None:
        out["carbon_kg"] = round(float(np.nansum(total * sim.step_hours * moer)), 2)
    for more in costs.extra_figures:
        out |= more(sim, run)
    return out


@dataclass
class OnlineCosts:
    """What an online planner is told at each step, from what really happened."""

    costs: SimCosts
    tracker: PeakTracker | None = None
    seen: int = 0
    """Steps whose import the tracker has had."""
    ev_kw: dict[int, float] = field(default_factory=dict)

    def observe(self, k: int, kw: float) -> None:
        """The cars' draw in step ``k`` (from the engine, after the step)."""
        self.ev_kw[k] = kw

    def signal(self, sim: Any, grid: TimeGrid, now: datetime, step: int) -> CostSignal | None:
        tariff = self.costs.tariff
        if tariff is not None and self.tracker is None:
            self.tracker = PeakTracker(tariff)
        inputs = SignalInputs()
        if self.tracker is not None:
            self._catch_up(sim, step)
            inputs = SignalInputs(
                peak_so_far_kw=self.tracker.so_far(now),
                elapsed_kwh=self.tracker.elapsed_kwh(now),
            )
        return cost_signal(tariff, self.costs.carbon, grid, now, inputs)

    def _catch_up(self, sim: Any, step: int) -> None:
        """Feed the tracker every step before ``step``: cars and building as metered."""
        assert self.tracker is not None
        if self.seen >= step:
            return
        house = _building_cache(sim)
        for k in range(self.seen, step):
            kw = self.ev_kw.pop(k, 0.0) + float(house[k])
            self.tracker.hold(sim.time_of(k), sim.time_of(k + 1), kw)
        self.seen = step


_BUILDING: dict[int, np.ndarray] = {}


def _building_cache(sim: Any) -> np.ndarray:
    key = id(sim)
    if key not in _BUILDING:
        _BUILDING.clear()
        _BUILDING[key] = building_kw(sim)
    return _BUILDING[key]


class PeriodLP(Protocol):
    x_cost: np.ndarray

    def add_cols(self, n: int, cost: np.ndarray | None = None) -> np.ndarray: ...
    def add_rows(self, lo: np.ndarray, hi: np.ndarray) -> np.ndarray: ...
    def add_entries(self, rows: np.ndarray, cols: np.ndarray, vals: np.ndarray) -> None: ...


@dataclass
class OfflinePeaks:
    """The offline optimum's peak so far per billing period, carried from one
    busy period to the next (each solved on its own, in time order)."""

    peaks: dict[datetime, float] = field(default_factory=dict)


def seed_offline_peaks(sim: Any) -> OfflinePeaks:
    """The building's own interval peaks per billing period: the offline
    optimum knows the building will set them whatever the cars do."""
    peaks = OfflinePeaks()
    tariff = sim.costs.tariff if sim.costs is not None else None
    if tariff is not None:
        peaks.peaks = interval_peaks(tariff, sim.start, sim.step, _building_cache(sim))
    return peaks


def add_offline_terms(
    lp: PeriodLP,
    sim: Any,
    costs: SimCosts,
    cols: tuple[np.ndarray, np.ndarray, np.ndarray],
    k0: int,
    k1: int,
    peaks: OfflinePeaks,
) -> None:
    """The online objective's money and carbon on the offline LP, whose energy
    costs −1 per kWh: money at the same ratio to energy as online (drivers
    first: `optimizer.costs`), with the real rates. ``cols``: (column, step,
    session) of every current."""
    tariff = costs.tariff
    if tariff is None:
        return
    col, step, sess = cols
    cfg = tariff.config
    times = [sim.time_of(k) for k in range(k0, k1)]
    per_kwh = tariff.price_at(times) if tariff.has_energy_price else np.zeros(k1 - k0)
    if costs.carbon is not None and cfg.carbon_price_per_kg > 0:
        per_kwh = per_kwh + cfg.carbon_price_per_kg * np.nan_to_num(costs.carbon.real(times))
    unmet = 1000.0  # the online LP's cost of an unmet kWh (optimizer.prepare.UNMET_WEIGHT)
    if cfg.value_of_unmet_kwh is not None:
        scale = 1.0 / cfg.value_of_unmet_kwh
    else:
        scale = np.inf
        if np.max(np.abs(per_kwh), initial=0.0) > 0:
            scale = MONEY_WEIGHT / float(np.max(np.abs(per_kwh))) / unmet
        if cfg.peak_price_per_kw > 0:
            rise_kwh = cfg.peak_price_per_kw / (cfg.peak_interval_minutes / 60.0)
            scale = min(scale, PEAK_SHARE / rise_kwh)
        scale = 0.0 if not np.isfinite(scale) else scale
    kwh = sim.kwh_per_a[sess]
    lp.x_cost[col] += scale * kwh * per_kwh[step - k0]
    if cfg.peak_price_per_kw > 0:
        _offline_peak_rows(lp, sim, tariff, (col, step, sess), k0, k1, peaks, scale)


def _offline_peak_rows(
    lp: PeriodLP,
    sim: Any,
    tariff: Tariff,
    cols: tuple[np.ndarray, np.ndarray, np.ndarray],
    k0: int,
    k1: int,
    peaks: OfflinePeaks,
    scale: float,
) -> None:
    """Per peak interval: its average import (cars + the real building) less
    the billing period's rise ≤ the period's peak so far."""
    col, step, sess = cols
    n = tariff.config.peak_interval_minutes
    step_min = sim.step.total_seconds() / 60.0
    t0 = tariff.interval_start(sim.time_of(k0))
    lead = (sim.time_of(k0) - t0).total_seconds() / 60.0
    interval = ((lead + (np.arange(k0, k1) - k0) * step_min) // n).astype(np.int64)
    share = step_min / n
    house = _building_cache(sim)[k0:k1]
    rest = np.bincount(interval, weights=house * share)
    starts = [t0 + timedelta(minutes=int(i) * n) for i in range(len(rest))]
    periods = [tariff.period_start(t) for t in starts]
    order = sorted(set(periods))
    rise = lp.add_cols(
        len(order), cost=np.full(len(order), scale * tariff.config.peak_price_per_kw)
    )
    which = np.array([order.index(p) for p in periods])
    so_far = np.array([peaks.peaks.get(p, 0.0) for p in periods])
    rows = lp.add_rows(np.full(len(rest), -np.inf), so_far - rest)
    lp.add_entries(rows[interval[step - k0]], col, sim.kw_per_a[sess] * share)
    lp.add_entries(rows, rise[which], -np.ones(len(rows)))


def record_offline_peaks(
    sim: Any, tariff: Tariff, peaks: OfflinePeaks, k0: int, ev_kw: np.ndarray
) -> None:
    """After a busy period: its realised interval peaks raise the periods' so far."""
    total = ev_kw + _building_cache(sim)[k0 : k0 + len(ev_kw)]
    for p, kw in interval_peaks(tariff, sim.time_of(k0), sim.step, total).items():
        peaks.peaks[p] = max(peaks.peaks.get(p, 0.0), kw)


def sim_costs(
    tariff: Any, carbon_files: list[Path] | None, zone: str, folder: Path
) -> SimCosts | None:
    """A simulation's costs from a `TariffConfig` and carbon files (None: neither)."""
    if tariff is None and not carbon_files:
        return None
    return SimCosts(
        tariff=Tariff.of(tariff, zone, folder) if tariff is not None else None,
        carbon=read_carbon(carbon_files) if carbon_files else None,
    )


def cost_table(report: dict[str, Any]) -> str:
    """Markdown: per run and strategy, what the site pays and emits."""
    keys = [
        k
        for k in COST_KEYS
        if any(k in f for r in report["runs"] for f in r["strategies"].values())
    ]
    lines = [
        "| capacity kW | strategy | delivered % | "
        + " | ".join(k.replace("_", " ") for k in keys)
        + " |",
        "|" + " --- |" * (3 + len(keys)),
    ]
    for run in report["runs"]:
        cap = "site" if run["capacity_kw"] is None else f"{run['capacity_kw']:g}"
        for name, f in run["strategies"].items():
            cells = ["" if f.get(k) is None else f"{f[k]:,.2f}" for k in keys]
            lines.append(
                f"| {cap} | {name} | {f['delivered_pct']:.2f} | " + " | ".join(cells) + " |"
            )
    caption = (
        "Each strategy's import (cars and the building) billed with the same tariff: "
        "total cost = energy + peak charge (the billing periods' highest interval "
        "averages × the peak price); carbon = import × the real marginal emission rate."
    )
    return "\n".join(lines) + "\n\n" + caption
