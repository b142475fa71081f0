"""What limits each connector loads: the site's limit families as a matrix."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from optimizer.families import FamilyKey, SiteFamilies, family_limit
from optimizer.problem import Capacity, TimeGrid
from optimizer.site import Line, Site


@dataclass(frozen=True)
class LoadModel:
    """The site's limit families and each connector's share of them.

    A family is (group, ``L1``/``L2``/``L3``) with coefficient 1 for every line
    the connector loads, (group, ``kW``) with the connector's kW per A, or a
    weighted group with |weight|; the same families as the planner's rows
    (both from `optimizer.families`). A phasor family (a line of a group with
    ``phasor = true`` whose members draw at different angles) is loaded by the
    magnitude of its phasor sum, the planner's exact rule; its ``matrix`` and
    ``members`` coefficients are the magnitudes, an upper bound of what a
    raise adds to it.
    """

    keys: tuple[FamilyKey, ...]
    members: Mapping[str, tuple[tuple[int, float], ...]]
    matrix: np.ndarray
    """(families, connectors) coefficients, connectors in site order."""
    column: Mapping[str, int]
    phasor_rows: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.intp))
    """Families loaded by a phasor sum..."""
    phasor_matrix: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), dtype=complex))
    """...and their (phasor families, connectors) complex coefficients."""
    lines: Mapping[str, tuple[Line, ...]] = field(default_factory=dict)
    """Connector → the lines it is counted on (its wiring unless told fewer)."""

    @classmethod
    def build(cls, site: Site, lines: Mapping[str, tuple[Line, ...]] | None = None) -> LoadModel:
        """Families in the order connectors (in site order) first load them, then
        the lines of groups no connector loads."""
        lines = lines or {}
        families = SiteFamilies.of(site)
        keys: list[FamilyKey] = []
        index: dict[FamilyKey, int] = {}

        def fam(key: FamilyKey) -> int:
            if key not in index:
                index[key] = len(keys)
                keys.append(key)
            return index[key]

        members: dict[str, tuple[tuple[int, float], ...]] = {}
        for cid, info in site.connectors.items():
            loaded = families.loaded_by(info, lines.get(cid) or info.lines)
            members[cid] = tuple((fam(key), coef) for key, coef in loaded)
        for key in families.line_keys():  # families with no member still exist (capacity view)
            fam(key)
        column = {cid: i for i, cid in enumerate(site.connectors)}
        matrix = np.zeros((len(keys), len(column)))
        for cid, fams in members.items():
            for f, coef in fams:
                matrix[f, column[cid]] += coef
        rows = np.array(sorted(index[k] for k in families.phasor_keys if k in index), np.intp)
        position = {int(f): i for i, f in enumerate(rows)}
        exact = np.zeros((len(rows), len(column)), dtype=complex)
        for cid, info in site.connectors.items():
            for key, c in families.phasors(info, lines.get(cid) or info.lines):
                exact[position[index[key]], column[cid]] += c
        used = {cid: lines.get(cid) or info.lines for cid, info in site.connectors.items()}
        return cls(tuple(keys), members, matrix, column, rows, exact, used)

    def widened(
        self, site: Site, wider: Mapping[str, tuple[Line, ...]], cap: np.ndarray
    ) -> tuple[LoadModel, np.ndarray]:
        """The model with some connectors counted on more lines, and ``cap`` (this
        model's capacity) in its family order. Every model of a site has the same
        families, in the order connectors first load them."""
        if not wider:
            return self, cap
        model = LoadModel.build(site, {**self.lines, **wider})
        row = {key: f for f, key in enumerate(self.keys)}
        return model, cap[[row[key] for key in model.keys]]

    def capacity(self, site: Site, capacity: Capacity, grid: TimeGrid) -> np.ndarray:
        """(families, slots) upper bounds; ``inf`` where there is no limit."""
        out = np.full((len(self.keys), grid.slots), np.inf)
        for f, key in enumerate(self.keys):
            out[f] = family_limit(site, capacity, key, grid.slots)
        return out

    def load(self, schedules: Mapping[str, np.ndarray], slots: int) -> np.ndarray:
        """(families, slots): the sum of ``schedules`` (connector → per-slot A) per family."""
        if not schedules:
            return np.zeros((len(self.keys), slots))
        pattern, coef = self.patterns
        cols = np.fromiter(
            (self.column[cid] for cid in schedules), dtype=np.intp, count=len(schedules)
        )
        values = np.stack([np.asarray(v, dtype=float) for v in schedules.values()])
        # connectors with the same coefficients are summed first: a site has few
        # such patterns (groups × wirings), so what is left to multiply is small
        # (einsum, not BLAS: a threaded BLAS stalls for milliseconds on a busy host)
        p = pattern[cols]
        order = np.argsort(p, kind="stable")
        p = p[order]
        starts = np.flatnonzero(np.concatenate(([True], p[1:] != p[:-1])))
        sums = np.add.reduceat(values[order], starts, axis=0)
        out = np.einsum("fp,ps->fs", coef[:, p[starts]], sums)
        if len(self.phasor_rows):
            out[self.phasor_rows] = np.abs(
                np.einsum("fc,cs->fs", self.phasor_matrix[:, cols], values)
            )
        return out

    @property
    def patterns(self) -> tuple[np.ndarray, np.ndarray]:
        """(each connector column's pattern, (families, patterns) coefficients):
        connectors with the same coefficient in every family share a pattern."""
        cached = self.__dict__.get("_patterns")
        if cached is None:
            unique, inverse = np.unique(self.matrix.T, axis=0, return_inverse=True)
            cached = (inverse.reshape(-1), np.ascontiguousarray(unique.T))
            object.__setattr__(self, "_patterns", cached)
        return cached

    @property
    def entries(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(family, connector column, coefficient) of every non-zero coefficient."""
        cached = self.__dict__.get("_entries")
        if cached is None:
            fam, col = np.nonzero(self.matrix)
            cached = (fam, col, self.matrix[fam, col])
            object.__setattr__(self, "_entries", cached)
        return cached

    def fits(self, load: np.ndarray, cap: np.ndarray) -> bool:
        return bool(np.all(load <= cap + 1e-6 * np.maximum(1.0, np.abs(cap))))
