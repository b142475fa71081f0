"""A capacity provider's OPTIMUM forecast as a soft target: the power it
would like the group to draw, per planning slot (advice, never a limit).

A block in A counts at ``voltage_v`` on each of the lines its phase names
(ALL, THREE and UNKNOWN: three lines); a block in kW as it is. A slot takes
the time-weighted mean of the blocks over it, NaN where none lies (no
target there)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta

import numpy as np

from forecasts.model import Block, Phase, Unit
from forecasts.units import normalize

_LINES = {Phase.ONE: 1, Phase.TWO: 2}


def block_kw(block: Block, voltage_v: float) -> float:
    b = normalize(block)
    if b.unit is Unit.A:
        return b.capacity * voltage_v * _LINES.get(b.phase, 3) / 1000.0
    return b.capacity


def optimum_kw(
    blocks: Iterable[Block], start: datetime, step: timedelta, slots: int, voltage_v: float
) -> np.ndarray:
    """Per slot from ``start``: the OPTIMUM power in kW (NaN: no block)."""
    weight = np.zeros(slots)
    total = np.zeros(slots)
    step_s = step.total_seconds()
    for b in blocks:
        first = max(int((b.start - start).total_seconds() // step_s), 0)
        last = min(int(np.ceil((b.end - start).total_seconds() / step_s)), slots)
        kw = block_kw(b, voltage_v)
        for k in range(first, last):
            s0 = start + k * step
            overlap = (min(b.end, s0 + step) - max(b.start, s0)).total_seconds()
            if overlap > 0:
                weight[k] += overlap
                total[k] += overlap * kw
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(weight > 0, total / np.maximum(weight, 1e-12), np.nan)
