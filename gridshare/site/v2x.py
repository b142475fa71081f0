"""V2X at the site: which running cars may be discharged, how far, and what of
a discharge counts as in force.

A car is bidirectional when its last ``NotifyEVChargingNeeds`` announced BPT
(`ocpp_adapter.v2x`) and the site allows V2X (``[v2x] enabled``). Its figures
are those of that message, carried forward as a driver's bound does: the
lowest (and highest) energy allowed for cycling is kept as a level counted
from the session's start, so what the car took since counts (as its need
does, `gridshare.site.state`). A car in ISO 15118-20 Dynamic mode sends its
needs again as they change; what it fed back since its last message is not
read from the meter (export registers are not read), so the next message
sets it right.

What counts as in force: the plan sends a discharge as a negative limit (a
CentralSetpoint), and the limit book records it like any limit: accepted, it
is in force; unanswered, the worst of what was and what was sent counts. So
`Bidirectional.confirmed_a` (and ``confirmed_ahead_a``, slot by slot) is the
discharge the book holds in force, the only discharge the dispatch counts as
room for the others (`optimizer.v2x`), and the rollout's own checks count it
the same way: as the connector's worst case in each slot. With
``reserve_for_arrivals`` that worst case includes its fallback limit (the
car may unplug at any moment, and with it the discharge ends), so a
discharge frees nothing for the others there. Without the reserve, a
confirmed discharge is room, at the risk an arrival is taken at.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Protocol

import numpy as np

from gridshare.rollout import LimitBook
from ocpp_adapter.events import V2xNeeds
from optimizer import Bidirectional, Plan, SessionDemand
from optimizer.problem import TimeGrid
from optimizer.site import ConnectorInfo


@dataclass(frozen=True)
class V2xSettings:
    """``[v2x]``: whether bidirectional cars may be discharged, and at what cost."""

    enabled: bool = False
    degradation_cost_per_kwh: float = 0.0
    """Battery wear per kWh discharged, in the planner's units beside
    `optimizer.v2x.CYCLE_WEIGHT` (a kWh of need left unmet costs 1000)."""


@dataclass(frozen=True)
class V2xLevels:
    """A car's V2X bounds as levels counted from its session's start (Wh)."""

    needs: V2xNeeds
    floor_wh: float | None
    ceiling_wh: float | None

    @classmethod
    def of(cls, needs: V2xNeeds, delivered_wh: float) -> V2xLevels:
        low, high = needs.min_v2x_energy_wh, needs.max_v2x_energy_wh
        return cls(
            needs,
            None if low is None else delivered_wh + low,
            None if high is None else delivered_wh + high,
        )


class Session(Protocol):
    """What this reads of a running session (`gridshare.site.state.SessionState`)."""

    @property
    def v2x(self) -> V2xLevels | None: ...
    @property
    def delivered_kwh(self) -> float: ...


def max_discharge_a(needs: V2xNeeds, info: ConnectorInfo) -> float:
    """The most the car may be discharged at, per line, within the connector."""
    amps = needs.max_discharge_a
    if amps is None and needs.max_discharge_w is not None:
        amps = needs.max_discharge_w / 1000.0 / info.kw_per_amp()
    return max(0.0, min(amps or 0.0, info.max_current_a))


def bidirectional(
    s: Session, info: ConnectorInfo, settings: V2xSettings, in_force_a: np.ndarray
) -> Bidirectional | None:
    """``s``'s discharge bounds now (None: not discharged); ``in_force_a``: the
    limit the book holds in force in each slot of the grid (negative: a discharge)."""
    levels = s.v2x
    if not settings.enabled or levels is None:
        return None
    most = max_discharge_a(levels.needs, info)
    if most <= 0:
        return None
    delivered_wh = s.delivered_kwh * 1000.0
    floor = 0.0 if levels.floor_wh is None else (levels.floor_wh - delivered_wh) / 1000.0
    ceiling = None if levels.ceiling_wh is None else (levels.ceiling_wh - delivered_wh) / 1000.0
    return Bidirectional(
        max_discharge_a=most,
        min_kwh=floor,
        max_kwh=ceiling,
        cycle_cost_per_kwh=settings.degradation_cost_per_kwh,
        confirmed_a=max(0.0, -float(in_force_a[0])),
        confirmed_ahead_a=tuple(np.maximum(-in_force_a[1:], 0.0).tolist()),
    )


def with_v2x(
    demands: Sequence[SessionDemand],
    sessions: Mapping[str, Session],
    connectors: Mapping[str, ConnectorInfo],
    book: LimitBook,
    grid: TimeGrid,
    settings: V2xSettings,
) -> list[SessionDemand]:
    """``demands`` with the bidirectional cars' discharge bounds."""
    if not settings.enabled:
        return list(demands)
    out = []
    for d in demands:
        s = sessions.get(d.connector_id)
        if s is not None and s.v2x is not None:
            in_force = book.worst(d.connector_id, grid)
            v = bidirectional(s, connectors[d.connector_id], settings, in_force)
            if v is not None:
                d = replace(d, v2x=v)
        out.append(d)
    return out


def targets(plan: Plan, cid: str) -> np.ndarray:
    """What the rollout sends a connector: its charging less its discharge
    (negative where it is discharged)."""
    charge = plan.schedule(cid)
    discharge = plan.discharge_a.get(cid)
    return charge if discharge is None else charge - discharge


def charging_part(limit_a: float | None) -> float | None:
    """The charging side of a limit in force: what a meter reading of the
    current drawn is checked against (a discharge is not, see the module doc)."""
    return None if limit_a is None else max(limit_a, 0.0)
