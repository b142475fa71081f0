"""The demo's view: what is sampled, the connectors a page at a time, the plot."""

from __future__ import annotations

import io
import math
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from optimizer.site import Site


@dataclass
class EveningCut:
    """The simulated DSO: the grid connection's limit is lowered for a time."""

    group: str
    limit_a: float
    start: datetime
    end: datetime

    def now_a(self, site: Site, now: datetime) -> float:
        g = site.group_by_id[self.group]
        base = g.limit_a if g.limit_a is not None else math.inf
        return min(base, self.limit_a) if self.start <= now < self.end else base


@dataclass
class Sample:
    at: datetime
    capacity: dict[str, float]
    limits: dict[str, dict[str, float]]
    measured: dict[str, dict[str, float]]


PAGE_S = 4.0
"""Real seconds each page of connectors stays on a terminal too short for all."""


def connector_page(plugged: list[str], room: int, wall_s: float) -> tuple[list[str], str]:
    """The connectors that fit in ``room`` rows (a page at a time, turning every
    `PAGE_S` seconds) and what the table's caption says of them."""
    room = max(1, room)
    if len(plugged) <= room:
        return plugged, f"{len(plugged)} cars plugged in"
    pages = math.ceil(len(plugged) / room)
    page = int(wall_s // PAGE_S) % pages
    shown = plugged[page * room : (page + 1) * room]
    first = page * room + 1
    return shown, (
        f"cars {first}-{first + len(shown) - 1} of {len(plugged)}, "
        f"page {page + 1}/{pages} (turns every {PAGE_S:g} s)"
    )


def lines_of(renderable: Any, width: int) -> int:
    """How many terminal lines ``renderable`` takes at ``width`` columns."""
    from rich.console import Console

    probe = Console(width=width, file=io.StringIO(), color_system=None)
    return len(probe.render_lines(renderable, probe.options, pad=False))


def plot(samples: list[Sample], path: Path, cut: EveningCut, site: Site) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups = [g.id for g in site.groups if g.weights is None]
    fig, axes = plt.subplots(len(groups), 1, figsize=(10, 3.2 * len(groups)), sharex=True)
    axes = np.atleast_1d(axes)
    times = [s.at for s in samples]
    for ax, gid in zip(axes, groups, strict=True):
        ax.step(
            times,
            [s.capacity.get(gid, np.nan) for s in samples],
            where="post",
            color="black",
            label="capacity (per line)",
        )
        ax.plot(
            times,
            [max(s.limits[gid].values()) for s in samples],
            color="tab:red",
            label="sum of limits in force (highest line)",
        )
        ax.plot(
            times,
            [max(s.measured[gid].values()) for s in samples],
            color="tab:blue",
            label="measured (highest line)",
        )
        ax.axvspan(cut.start, cut.end, color="orange", alpha=0.12, label="DSO evening cut")
        ax.set_ylabel("A per line")
        ax.set_title(gid)
        ax.legend(loc="upper right", fontsize=7)
    axes[-1].set_xlabel("time (UTC)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
