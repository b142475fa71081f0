"""The bill of a realised import trace: energy, the billing periods' peaks,
carbon. Used by the simulator's report, every strategy billed alike."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np

from gridshare.tariff.tariff import Tariff


@dataclass(frozen=True)
class Bill:
    energy_kwh: float
    """Imported."""
    energy_cost: float
    """Import at the energy price, less export at the feed-in price."""
    peak_kw: float
    """Highest interval average of any billing period."""
    peak_charge: float
    """Σ over billing periods of the peak price × that period's peak."""
    carbon_kg: float | None
    """Imported energy × the real marginal rate (None without a signal)."""

    @property
    def total_cost(self) -> float:
        return self.energy_cost + self.peak_charge

    def figures(self) -> dict[str, float | None]:
        return {
            "energy_cost": round(self.energy_cost, 2),
            "peak_kw": round(self.peak_kw, 3),
            "peak_charge": round(self.peak_charge, 2),
            "total_cost": round(self.total_cost, 2),
            "carbon_kg": None if self.carbon_kg is None else round(self.carbon_kg, 2),
        }


def interval_peaks(
    tariff: Tariff, start: datetime, step: timedelta, kw: np.ndarray
) -> dict[datetime, float]:
    """Per billing period (its start): the highest average import over a
    clock-aligned peak interval (steps shorter than or equal to the interval)."""
    n_min = tariff.config.peak_interval_minutes
    step_min = step.total_seconds() / 60.0
    if not len(kw):
        return {}
    t0 = tariff.interval_start(start)
    offset = (start - t0).total_seconds() / 60.0
    interval = ((offset + np.arange(len(kw)) * step_min) // n_min).astype(np.int64)
    energy = np.bincount(interval, weights=np.maximum(kw, 0.0) * step_min / 60.0)
    avg = energy / (n_min / 60.0)
    out: dict[datetime, float] = {}
    for k in np.flatnonzero(energy > 0):
        at = t0 + timedelta(minutes=int(k) * n_min)
        p = tariff.period_start(at)
        out[p] = max(out.get(p, 0.0), float(avg[k]))
    return out


def bill(
    tariff: Tariff,
    start: datetime,
    step: timedelta,
    import_kw: np.ndarray,
    moer: np.ndarray | None = None,
) -> Bill:
    """The bill of ``import_kw`` per step from ``start`` (negative: export)."""
    kw = np.asarray(import_kw, dtype=float)
    hours = step.total_seconds() / 3600.0
    times = [start + k * step for k in range(len(kw))]
    imported = np.maximum(kw, 0.0) * hours
    exported = np.maximum(-kw, 0.0) * hours
    price = tariff.price_at(times) if tariff.has_energy_price else np.zeros(len(kw))
    cost = float(np.dot(imported, price)) - tariff.config.feed_in_price * float(exported.sum())
    peaks = interval_peaks(tariff, start, step, kw)
    carbon = None
    if moer is not None:
        carbon = float(np.nansum(imported * moer))
    return Bill(
        energy_kwh=float(imported.sum()),
        energy_cost=cost,
        peak_kw=max(peaks.values(), default=0.0),
        peak_charge=tariff.config.peak_price_per_kw * sum(peaks.values()),
        carbon_kg=carbon,
    )
