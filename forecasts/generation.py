"""The DSO's GENERATION forecasts as export limits (`Capacity.export_a`): how
much current a group may feed back per line when a bidirectional car is
discharged (`optimizer.v2x`).

A group's export limit per slot is the lowest of

* what the site file allows (``export_limit_a``; by default 0 at the root:
  nothing fed back beyond the connection, whatever the DSO would take),
* the GENERATION blocks over the slot, and
* while the provider that sent them is offline, the FALLBACK_GENERATION blocks.

Blocks are read as `forecasts.units.block_limit` reads capacity: an ampere
figure per line; a total power spread over three lines at the site's
voltage (a one- or two-line power over one or two). Groups without a
generation block are left out (the planner's default applies).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Protocol

import numpy as np

from forecasts.model import Block, ForecastType
from forecasts.units import block_limit
from optimizer.problem import TimeGrid
from optimizer.site import Group, Site


class _Piece(Protocol):
    @property
    def block(self) -> Block: ...
    @property
    def source(self) -> str: ...


class _Book(Protocol):
    """What this reads of `forecasts.capacity_book.CapacityBook`."""

    def window(
        self,
        group_id: str,
        type_: ForecastType,
        start: datetime | None = None,
        end: datetime | None = None,
    ) -> Sequence[_Piece]: ...

    def is_offline(self, source: str, now: datetime) -> bool: ...


def _fold_a(blocks: Iterable[Block], grid: TimeGrid, voltage_v: float) -> np.ndarray:
    """Per slot, the lowest per-line current of the blocks over it (inf: none)."""
    out = np.full(grid.slots, np.inf)
    for b in blocks:
        lo = max(int(np.floor(grid.position(b.start))), 0)
        hi = min(int(np.ceil(grid.position(b.end))), grid.slots)
        if lo >= hi:
            continue
        lim = block_limit(b, voltage_v)
        per_line = min(lim.limit_a, lim.limit_kw * 1000.0 / (3.0 * voltage_v))
        out[lo:hi] = np.minimum(out[lo:hi], per_line)
    return out


def static_export_a(g: Group) -> float:
    """What the site file lets a group feed back per line (see the module doc)."""
    if g.export_limit_a is not None:
        return g.export_limit_a
    if g.parent is None:
        return 0.0
    return g.limit_a if g.limit_a is not None else np.inf


def export_limits(book: _Book, site: Site, grid: TimeGrid, now: datetime) -> dict[str, np.ndarray]:
    """Group → per-slot export limit, for the groups the DSO sent generation for."""
    out: dict[str, np.ndarray] = {}
    v = site.site.voltage_v
    for g in site.groups:
        gid = g.oscp_group_id
        if gid is None:
            continue
        gen = book.window(gid, ForecastType.GENERATION, grid.start, grid.end)
        fb = [
            p
            for p in book.window(gid, ForecastType.FALLBACK_GENERATION, grid.start, grid.end)
            if book.is_offline(p.source, now)
        ]
        if not gen and not fb:
            continue
        limit = np.minimum(_fold_a((p.block for p in gen), grid, v), static_export_a(g))
        out[g.id] = np.minimum(limit, _fold_a((p.block for p in fb), grid, v))
    return out
