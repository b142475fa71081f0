"""Group limits over time for a simulation: the site's static limits, lowered by
a capacity CSV (``group_id,start,end,limit_a|limit_kw``; the lowest applies),
read by the planner's own reader, `gridshare.csvio.read_capacity`.

Two views of the same data: `SiteLimits.at` gives the limits in force at one
moment (to check what the cars really draw), `SiteLimits.capacity` the
`optimizer.Capacity` over a planning grid.

A group with ``phasor = true`` limits the magnitude of each line's phasor
current: its rows have complex coefficients (the unit phasor of what one
ampere of a connector puts on the line), and a row's load is |coefficients ·
currents|. Written here from the wiring alone, apart from the planner's own
model, so that the check stays independent of it.
"""

from __future__ import annotations

import cmath
import math
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


_LINE_DEG = {"L1": 0.0, "L2": -120.0, "L3": 120.0}


def _volts(line: str) -> complex:
    return cmath.rect(1.0, math.radians(_LINE_DEG[line]))


def line_phasor(lines: tuple[str, ...], line: str) -> complex:
    """Current on ``line`` per ampere a load wired on ``lines`` draws at unity
    power factor: in phase with its voltage (a pair's line-to-line one, drawn
    out of its first line and back into its second); 0 if not wired there."""
    if line not in lines:
        return 0j
    if len(lines) == 2:
        across = _volts(lines[0]) - _volts(lines[1])
        unit = across / abs(across)
        return unit if line == lines[0] else -unit
    return _volts(line)


def own_phasor(lines: tuple[str, ...]) -> complex:
    """A load's own current per ampere: a pair's line-to-line, else its first line's."""
    return line_phasor(lines, lines[0])


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
                v = np.zeros(len(col), dtype=complex if g.phasor else float)
                for key, w in site.weighted_members(g, signed=g.phasor).items():
                    lines = tuple(x.value for x in site.connectors[key].lines)
                    v[col[key]] = w * own_phasor(lines) if g.phasor else w
                rows.append(LimitRow(g.id, "weighted"))
                coef.append(v)
                static.append(g.limit_a if g.limit_a is not None else np.inf)
                continue
            under = list(site.connectors_under(g.id))
            for line in LINES:
                v = np.zeros(len(col), dtype=complex if g.phasor else float)
                for info in under:
                    wired = tuple(x.value for x in info.lines)
                    if line in info.lines:
                        v[col[info.key]] = line_phasor(wired, line.value) if g.phasor else 1.0
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
        """(rows, connectors); complex where a group has ``phasor`` (load: |row · currents|)."""
        self.static = np.array(static)
        self._row_group = np.array([r.group_id for r in rows])
        self._row_is_kw = np.array([r.quantity == "kW" for r in rows])

    def column(self, connector_id: str, lines: tuple[str, ...] | None = None) -> np.ndarray:
        """Coefficient of every row for a car at ``connector_id`` loading ``lines``
        (default: the connector's own lines); complex on a ``phasor`` group's rows."""
        info = self.site.connectors[connector_id]
        loaded = tuple(Line(x) for x in lines) if lines else info.lines
        out = np.zeros(len(self.rows), dtype=self.matrix.dtype)
        for r, row in enumerate(self.rows):
            if row.quantity == "weighted":
                out[r] = self.matrix[r, self._col[connector_id]]
            elif row.group_id not in info.ancestors:
                continue
            elif row.quantity == "kW":
                out[r] = info.kw_per_amp(loaded)
            elif Line(row.quantity) in loaded:
                exact = self.site.group_by_id[row.group_id].phasor
                wired = tuple(x.value for x in loaded)
                out[r] = line_phasor(wired, row.quantity) if exact else 1.0
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

    @staticmethod
    def load(coef: np.ndarray, currents: np.ndarray) -> np.ndarray:
        """Load of every row: |coefficients · currents| (a plain sum where real)."""
        return np.abs(coef @ currents)

    def capacity(self, grid: TimeGrid) -> Capacity:
        return Capacity.static(self.site, grid).limited(grid, self.overrides)
