"""A PV array on the connection, in a simulation (``gridshare simulate --pv``).

The file is a ``start,kw`` generation series (`forecasts.pv`: each row the mean
kW from its start to the next row's). The array feeds the site's root group
(the connection), its power split evenly over the three lines.

* What the planner is told: the file's generation as the forecast (a perfect
  one: the study is of the planner, not of the forecaster), less from the
  non-EV load of the root group, per line and slot. What is left below zero is
  the surplus the solar charging modes draw on (`optimizer.solar`); the
  chargers' limits never rise above the static ones (`Capacity.with_non_ev`).
* The truth: the building's load less the generation on the root group's rows,
  never below zero (a generator frees capacity only as far as the building
  used it), so the simulator's limit check sees the connection as metered.
* Every session charges in one mode (``--pv-mode``, default the site file's
  ``[charge_modes] default``): the planner and the rules that read its rows
  honour it; ``uncontrolled`` and ``offline-optimal`` do not.
* Figures per strategy: ``pv_generated_kwh`` and ``pv_self_consumption_pct``,
  the share of it used on site (by the building and the cars) rather than
  exported, step by step.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np

from forecasts.pv import PvSeries
from gridshare.simulation.capacity import SiteLimits
from gridshare.simulation.site_load import SiteLoadSetting
from optimizer import Capacity, Site, TimeGrid
from optimizer.modes import ChargeMode
from optimizer.site import LINES


@dataclass(frozen=True)
class SimPv:
    series: PvSeries
    mode: ChargeMode = ChargeMode.FAST
    source: str = ""

    def kw(self, start: datetime, step: timedelta, n: int) -> np.ndarray:
        """Mean generation (kW) in each of ``n`` steps from ``start``."""
        return self.series.slots(TimeGrid(start, int(step.total_seconds() // 60), max(n, 1)))[:n]

    def capacity(self, site: Site, base: Capacity, grid: TimeGrid) -> Capacity:
        """``base`` with the generation taken off the root group's non-EV load."""
        zero = np.zeros(grid.slots)
        per_line = self.series.slots(grid) * 1000.0 / (3 * site.site.voltage_v)
        loads = {
            g: {ln: np.asarray(v, float) for ln, v in by.items()} for g, by in base.non_ev_a.items()
        }
        root = loads.get(site.root.id, {})
        loads[site.root.id] = {ln: root.get(ln, zero) - per_line for ln in LINES}
        return base.with_non_ev(loads)

    def net_building(
        self, building: np.ndarray, limits: SiteLimits, start: datetime, step: timedelta
    ) -> None:
        """Take the generation off the building's draw (steps, limit rows) on the
        root group's rows, in place."""
        site = limits.site
        gen_kw = self.kw(start, step, len(building))
        per_line = gen_kw * 1000.0 / (3 * site.site.voltage_v)
        for r, row in enumerate(limits.rows):
            if row.group_id != site.root.id or row.quantity == "weighted":
                continue
            off = gen_kw if row.quantity == "kW" else per_line
            building[:, r] = np.maximum(building[:, r] - off, 0.0)

    def figures(
        self,
        site: Site,
        cars_kw: np.ndarray,
        start: datetime,
        step: timedelta,
        site_load: SiteLoadSetting | None,
    ) -> dict[str, float]:
        """What the array made and the share of it used on site (``cars_kw``: the
        chargers' power in each step)."""
        n = len(cars_kw)
        gen = self.kw(start, step, n)
        used = np.asarray(cars_kw, float).copy()
        if site_load is not None:
            volts = site.site.voltage_v
            for gid in site_load.load.group_ids:
                used += site_load.load.over(gid, start, step, n).sum(axis=1) * volts / 1000.0
        hours = step.total_seconds() / 3600.0
        made = float(gen.sum()) * hours
        kept = float(np.minimum(gen, used).sum()) * hours
        return {
            "pv_generated_kwh": round(made, 3),
            "pv_self_consumption_pct": round(100.0 * kept / made, 3) if made > 0 else 0.0,
        }
