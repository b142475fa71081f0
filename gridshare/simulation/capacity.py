"""Group limits over time for a simulation: the site's static limits, lowered by
a capacity CSV (``group_id,start,end,limit_a|limit_kw``; the lowest applies),
read by the planner's own reader, `gridshare.csvio.read_capacity`.

Two views of the same data: `SiteLimits.at` gives the limits in force at one
moment (to check what the cars really draw), `SiteLimits.capacity` the
`optimizer.Capacity` over a planning grid.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np

from gridshare.csvio import InputError, read_capacity
from gridshare.errors import UserError
from optimizer import Capacity, Site, TimeGrid
from optimizer.problem import LimitWindow
from optimizer.site import LINES, Line


class CapacityFileError(UserError, ValueError):
    """The capacity CSV is malformed; the message names the file, line and field."""


def read_capacity_csv(path: str | Path, site: Site) -> list[LimitWindow]:
    """The capacity CSV, read by `gridshare.csvio.read_capacity`; its errors cite
    the line as the simulation's other inputs do (``file: line 4: ...``)."""
    try:
        return read_capacity(path, site, cite=lambda p, line: f"{p}: line {line}")
    except InputError as e:
        raise CapacityFileError(str(e)) from None


@dataclass(frozen=True)
class LimitRow:
    group_id: str
    quantity: str
    """``L1``/``L2``/``L3``, ``kW`` or ``weighted``."""


class SiteLimits:
    """Every limit of a site as rows over its connectors (coefficient matrix), with
    the bounds in force at any moment. Built from the site model alone, apart
    from the optimizer's own limit structure, so it can check any strategy."""

    def __init__(self, site: Site, overrides: list[LimitWindow] | None = None) -> None:
        self.site = site
        self.overrides = list(overrides or [])
        self.connector_ids = tuple(site.connectors)
        col = {k: i for i, k in enumerate(self.connector_ids)}
        self._col = col
        rows: list[LimitRow] = []
        coef: list[np.ndarray] = []
        static: list[float] = []
        for g in site.groups:
            if g.weights is not None:
                v = np.zeros(len(col))
                for key, w in site.weighted_members(g).items():
                    v[col[key]] = w
                rows.append(LimitRow(g.id, "weighted"))
                coef.append(v)
                static.append(g.limit_a if g.limit_a is not None else np.inf)
                continue
            under = list(site.connectors_under(g.id))
            for line in LINES:
                v = np.zeros(len(col))
                for info in under:
                    if line in info.lines:
                        v[col[info.key]] = 1.0
                rows.append(LimitRow(g.id, line.value))
                coef.append(v)
                static.append(g.limit_a if g.limit_a is not None else np.inf)
            v = np.zeros(len(col))
            for info in under:
                v[col[info.key]] = info.kw_per_amp()
            rows.append(LimitRow(g.id, "kW"))
            coef.append(v)
            static.append(g.limit_kw if g.limit_kw is not None else np.inf)
        self.rows = tuple(rows)
        self.matrix = np.array(coef) if coef else np.zeros((0, len(col)))
        self.static = np.array(static)
        self._row_group = np.array([r.group_id for r in rows])
        self._row_is_kw = np.array([r.quantity == "kW" for r in rows])

    def column(self, connector_id: str, lines: tuple[str, ...] | None = None) -> np.ndarray:
        """Coefficient of every row for a car at ``connector_id`` loading ``lines``
        (default: the connector's own lines)."""
        info = self.site.connectors[connector_id]
        loaded = tuple(Line(x) for x in lines) if lines else info.lines
        out = np.zeros(len(self.rows))
        for r, row in enumerate(self.rows):
            if row.quantity == "weighted":
                out[r] = self.matrix[r, self._col[connector_id]]
            elif row.group_id not in info.ancestors:
                continue
            elif row.quantity == "kW":
                out[r] = info.kw_per_amp(loaded)
            elif Line(row.quantity) in loaded:
                out[r] = 1.0
        return out

    def at(self, t: datetime) -> np.ndarray:
        """Bound of every row at moment ``t``."""
        out = self.static.copy()
        for o in self.overrides:
            if o.covers(t, t):
                sel = self._row_group == o.group_id
                if o.limit_a is not None:
                    out[sel & ~self._row_is_kw] = np.minimum(out[sel & ~self._row_is_kw], o.limit_a)
                if o.limit_kw is not None:
                    out[sel & self._row_is_kw] = np.minimum(out[sel & self._row_is_kw], o.limit_kw)
        return out

    def capacity(self, grid: TimeGrid) -> Capacity:
        return Capacity.static(self.site, grid).limited(grid, self.overrides)
