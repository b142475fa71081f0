"""OSCP units and phases → the site's per-line limit model.

A site group has two limits (see `optimizer.site.Group`): ``limit_a``, the same
current limit on every line the group carries, and ``limit_kw``, a total power
over all lines. A block becomes one of them:

=====================  ===============================  =========================
block                  limit                            why it is never looser
=====================  ===============================  =========================
A, any phase           ``limit_a = C`` on every line    an ampere capacity is per
                                                        line; a block for one
                                                        line is applied to all
W/KW, ONE              ``limit_a = P / V``              one line carries ≤ P
W/KW, TWO              ``limit_a = P / (2 V)``          two lines carry ≤ P
W/KW, THREE/ALL/UNK.   ``limit_kw = P``                 the total bounds any line
WH/KWH over a block    as W/KW with P = E / duration    average power
=====================  ===============================  =========================

``V`` is the site's line-to-neutral voltage, a line's power taken as V × its
current. ONE/TWO/THREE are read both as "phase 1/2/3" and as "one/two/three
phases"; the limit chosen holds under either reading, so it is never more
permissive than the block (possibly stricter). UNKNOWN is treated like ALL: a
total power, or an ampere figure per line.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from forecasts.model import Block, Phase, Unit

INF = math.inf


@dataclass(frozen=True)
class Limit:
    """A per-line current limit and a total power limit; ``inf`` = no limit."""

    limit_a: float = INF
    limit_kw: float = INF

    def tighter(self, other: Limit) -> Limit:
        return Limit(min(self.limit_a, other.limit_a), min(self.limit_kw, other.limit_kw))

    @property
    def unlimited(self) -> bool:
        return math.isinf(self.limit_a) and math.isinf(self.limit_kw)


NO_LIMIT = Limit()


def normalize(block: Block) -> Block:
    """The same block in A or KW: W → KW, energy → average power over the block."""
    c, u = block.capacity, block.unit
    if u is Unit.A or u is Unit.KW:
        return block
    if u is Unit.W:
        kw = c / 1000.0
    elif u is Unit.KWH:
        kw = c / block.hours
    else:  # WH
        kw = c / 1000.0 / block.hours
    return Block(kw, Unit.KW, block.phase, block.start, block.end)


def block_limit(block: Block, voltage_v: float) -> Limit:
    """The site limit a block imposes (see the module's table)."""
    if not voltage_v > 0:
        raise ValueError("voltage_v must be > 0")
    b = normalize(block)
    if b.unit is Unit.A:
        return Limit(limit_a=b.capacity)
    kw = b.capacity
    if b.phase is Phase.ONE:
        return Limit(limit_a=kw * 1000.0 / voltage_v)
    if b.phase is Phase.TWO:
        return Limit(limit_a=kw * 1000.0 / (2.0 * voltage_v))
    return Limit(limit_kw=kw)


def max_power_kw(limit: Limit, voltage_v: float, lines: int = 3) -> float:
    """The most power ``lines`` lines can draw under ``limit`` (for display/checks)."""
    return min(limit.limit_kw, limit.limit_a * voltage_v * lines / 1000.0)
