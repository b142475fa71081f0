"""The limit families of a site: what every limit is checked on.

A family is (group, ``L1``/``L2``/``L3``) with coefficient 1 for every line a
connector loads, (group, ``kW``) with the connector's kW per A, or a weighted
group with |weight|. The planner's limit rows (`optimizer.prepare`) and the
rollout's load checks use these same families, built here.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass

import numpy as np

from optimizer.problem import Capacity
from optimizer.site import LINES, ConnectorInfo, Line, Site

KW = "kW"
WEIGHTED = "weighted"

FamilyKey = tuple[str, str]
"""(group id, quantity): quantity ``L1``/``L2``/``L3``, `KW` or `WEIGHTED`."""


@dataclass(frozen=True)
class SiteFamilies:
    """Which limit families each connector of a site loads, and by how much."""

    site: Site
    weighted: tuple[tuple[str, Mapping[str, float]], ...]
    """(group id, connector → |weight|) of every weighted group."""

    @classmethod
    def of(cls, site: Site) -> SiteFamilies:
        weighted = tuple(
            (g.id, site.weighted_members(g)) for g in site.groups if g.weights is not None
        )
        return cls(site, weighted)

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
