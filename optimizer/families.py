"""The limit families of a site: what every limit is checked on.

A family is (group, ``L1``/``L2``/``L3``) with coefficient 1 for every line a
connector loads, (group, ``kW``) with the connector's kW per A, or a weighted
group with |weight|. The planner's limit rows (`optimizer.prepare`) and the
rollout's load checks use these same families, built here.

Phasor families: a line's current is the phasor sum of what its connectors
draw (unity power factor): a connector on one line or three draws in phase with
the line's own voltage, one on a line pair (L1, L2) draws I·e^(jθ(V12)) from L1
and the opposite from L2, 30° off each line's own angle. Where a group's line
has members at different angles (chargers on two pairs, or on a pair and a
single line) |Σ| is below Σ|·|. In a group with ``phasor = true`` such a line
is a *phasor family*, its limit the second-order cone |Σ cᵢ·Iᵢ| ≤ limit
(`SiteFamilies.phasors`); so is a weighted group with ``phasor = true``.
Everywhere else magnitudes are summed, as before (never looser).
"""

from __future__ import annotations

import cmath
import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

import numpy as np

from optimizer.problem import Capacity
from optimizer.site import LINES, ConnectorInfo, Line, Site

KW = "kW"
WEIGHTED = "weighted"

FamilyKey = tuple[str, str]
"""(group id, quantity): quantity ``L1``/``L2``/``L3``, `KW` or `WEIGHTED`."""

LINE_ANGLE_DEG = {Line.L1: 0.0, Line.L2: -120.0, Line.L3: 120.0}
"""Angle of each line's voltage to neutral (positive sequence)."""


def line_voltage(line: Line) -> complex:
    return cmath.rect(1.0, math.radians(LINE_ANGLE_DEG[line]))


def line_currents(lines: tuple[Line, ...]) -> dict[Line, complex]:
    """Unit phasor of the current each wired line carries per ampere drawn."""
    if len(lines) == 2:
        a, b = lines
        u = (line_voltage(a) - line_voltage(b)) / math.sqrt(3.0)
        return {a: u, b: -u}
    return {line: line_voltage(line) for line in lines}


def current_phasor(lines: tuple[Line, ...]) -> complex:
    """Unit phasor of a connector's own current: that of its voltage (a pair's
    line-to-line, else its first line's)."""
    return line_currents(lines)[lines[0]]


@dataclass(frozen=True)
class SiteFamilies:
    """Which limit families each connector of a site loads, and by how much."""

    site: Site
    weighted: tuple[tuple[str, Mapping[str, float]], ...]
    """(group id, connector → |weight|) of every weighted group."""
    phasor_weighted: tuple[tuple[str, Mapping[str, float]], ...] = ()
    """(group id, connector → signed weight) of the weighted groups with ``phasor``
    whose members draw in different directions."""
    phasor_keys: frozenset[FamilyKey] = field(default_factory=frozenset)
    """The phasor families of the site (see the module docstring)."""

    @classmethod
    def of(cls, site: Site) -> SiteFamilies:
        weighted = tuple(
            (g.id, site.weighted_members(g)) for g in site.groups if g.weights is not None
        )
        signed = tuple(
            (g.id, members)
            for g in site.groups
            if g.phasor and g.weights is not None
            for members in [site.weighted_members(g, signed=True)]
            if _spread({w * current_phasor(site.connectors[k].lines) for k, w in members.items()})
        )  # members all in one direction: Σ |w|·I is already exact
        angles: dict[FamilyKey, set[complex]] = {}
        exact = {g.id for g in site.groups if g.phasor}
        for info in site.connectors.values() if exact else ():
            for line, u in line_currents(info.lines).items():
                for gid in exact.intersection(info.ancestors):
                    angles.setdefault((gid, line.value), set()).add(u)
        keys = {k for k, us in angles.items() if _spread(us)}
        keys |= {(gid, WEIGHTED) for gid, _ in signed}
        return cls(site, weighted, signed, frozenset(keys))

    def phasors(
        self, info: ConnectorInfo, lines: tuple[Line, ...] | None = None
    ) -> tuple[tuple[FamilyKey, complex], ...]:
        """(family, complex coefficient) of every phasor family the connector
        loads when it draws on ``lines`` (its own wiring if None)."""
        if not self.phasor_keys:
            return ()
        used = lines or info.lines
        out: list[tuple[FamilyKey, complex]] = []
        for gid in info.ancestors:
            for line, u in line_currents(used).items():
                if (gid, line.value) in self.phasor_keys:
                    out.append(((gid, line.value), u))
        for gid, members in self.phasor_weighted:
            w = members.get(info.key)
            if w:
                out.append(((gid, WEIGHTED), w * current_phasor(info.lines)))
        return tuple(out)

    def loaded_by(
        self, info: ConnectorInfo, lines: tuple[Line, ...] | None = None
    ) -> tuple[tuple[FamilyKey, float], ...]:
        """(family, coefficient) of every family the connector loads when it
        draws on ``lines`` (its own wiring if None): for each group from its own
        up, one per line then kW; then the weighted groups that name it."""
        used = lines or info.lines
        kw_per_a = info.kw_per_amp(used)
        out: list[tuple[FamilyKey, float]] = []
        for gid in info.ancestors:
            out.extend(((gid, line.value), 1.0) for line in used)
            out.append(((gid, KW), kw_per_a))
        for gid, members in self.weighted:
            if members.get(info.key):
                out.append(((gid, WEIGHTED), members[info.key]))
        return tuple(out)

    def line_keys(self) -> Iterator[FamilyKey]:
        """(group, line) of every line of every group of the tree (not the weighted ones)."""
        for g in self.site.groups:
            if g.weights is None:
                for line in LINES:
                    yield (g.id, line.value)


def _spread(phasors: set[complex]) -> bool:
    """Whether the non-zero ``phasors`` point in more than one direction."""
    units = {complex(round(u.real / abs(u), 9), round(u.imag / abs(u), 9)) for u in phasors if u}
    return len(units) > 1


def group_limit_a(site: Site, capacity: Capacity, group_id: str, slots: int) -> np.ndarray:
    """Per-slot current limit of a group (per line, or weighted): the capacity's
    if it has one, else the group's static limit; ``inf`` where there is none."""
    limit = capacity.limit_a.get(group_id)
    if limit is not None:
        return limit
    static = site.group_by_id[group_id].limit_a
    return np.full(slots, static if static is not None else np.inf)


def group_limit_kw(site: Site, capacity: Capacity, group_id: str, slots: int) -> np.ndarray:
    """Per-slot power limit of a group, like `group_limit_a`."""
    limit = capacity.limit_kw.get(group_id)
    if limit is not None:
        return limit
    static = site.group_by_id[group_id].limit_kw
    return np.full(slots, static if static is not None else np.inf)


def non_ev_a(capacity: Capacity, group_id: str, line: Line, slots: int) -> np.ndarray:
    """Per-slot non-EV load of a group on a line (0 where none is known)."""
    load = capacity.non_ev_a.get(group_id, {}).get(line)
    return np.zeros(slots) if load is None else load


def non_ev_kw(site: Site, capacity: Capacity, group_id: str, slots: int) -> np.ndarray:
    """Per-slot non-EV power of a group: its line currents at the site's voltage."""
    total = sum((non_ev_a(capacity, group_id, line, slots) for line in LINES), np.zeros(slots))
    return total * site.site.voltage_v / 1000.0


def line_limit_a(
    site: Site, capacity: Capacity, group_id: str, line: Line, slots: int
) -> np.ndarray:
    """Per-slot current left for the chargers on one line of a group: its limit
    less the non-EV load on that line (never below 0)."""
    limit = group_limit_a(site, capacity, group_id, slots)
    return np.maximum(limit - non_ev_a(capacity, group_id, line, slots), 0.0)


def ev_limit_kw(site: Site, capacity: Capacity, group_id: str, slots: int) -> np.ndarray:
    """Per-slot power left for the chargers of a group (never below 0)."""
    limit = group_limit_kw(site, capacity, group_id, slots)
    return np.maximum(limit - non_ev_kw(site, capacity, group_id, slots), 0.0)


def family_limit(site: Site, capacity: Capacity, key: FamilyKey, slots: int) -> np.ndarray:
    """Per-slot upper bound of a family, less the non-EV load; ``inf`` where there is none."""
    group_id, quantity = key
    if quantity == KW:
        return ev_limit_kw(site, capacity, group_id, slots)
    if quantity == WEIGHTED:
        return group_limit_a(site, capacity, group_id, slots)
    return line_limit_a(site, capacity, group_id, Line(quantity), slots)


@dataclass(frozen=True)
class PhasorRows:
    """The limit rows of an LP that bound a phasor sum (`optimizer.phasor`)."""

    rows: np.ndarray
    """LP row of each phasor row."""
    bound: np.ndarray
    """Its upper bound (capacity less fixed loads)."""
    direction: np.ndarray
    """Unit phasor the LP's own row projects the sum on (its first outer plane)."""
    entry: np.ndarray
    """Index into the LP's matrix values of every entry of those rows..."""
    entry_row: np.ndarray
    """...its phasor row (position in ``rows``)..."""
    entry_col: np.ndarray
    """...its x column..."""
    coef: np.ndarray
    """...and its complex coefficient."""
