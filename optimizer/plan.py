"""The plan: what the optimizer answers.

Currents are per line (the same figure on every line the connector's car
loads), in amperes, one row per connector of the site (zero where no session),
one column per slot of the grid.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum

import numpy as np

from optimizer.problem import TimeGrid
from optimizer.site import Line


class SolverStatus(StrEnum):
    OPTIMAL = "optimal"
    """The LP was solved to optimality (then made dispatchable)."""
    FEASIBLE = "feasible"
    """The solver stopped early (time limit) with a feasible, not proven optimal point."""
    HEURISTIC = "heuristic"
    """The solver failed or timed out without a point; the water-filling heuristic planned."""
    EMPTY = "empty"
    """No session to plan: every connector at 0 A."""


@dataclass(frozen=True)
class BindingLimit:
    group_id: str
    quantity: str
    """``L1``/``L2``/``L3`` (per-line current), ``kW`` or ``weighted``."""
    slot: int


@dataclass(frozen=True)
class Plan:
    grid: TimeGrid
    connector_ids: tuple[str, ...]
    current_a: np.ndarray
    """(connectors, slots) per-line current in A."""
    power_kw: np.ndarray
    """(connectors, slots) total power in kW the car is expected to draw: the
    current × kW per ampere, less where the car takes less than it is offered
    (its own maximum below the station's minimum, or full within the slot).
    Times the hours of each slot the car is there, it sums to `energy_kwh`."""
    lines: Mapping[str, tuple[Line, ...]]
    """Connector → lines the plan loads (learned car phases applied)."""
    session_connector: Mapping[str, str]
    energy_kwh: Mapping[str, float]
    """Session → energy the plan's own rows deliver over the horizon (every slot
    under the minimum-current rule); never more than the session needs."""
    requested_kwh: Mapping[str, float]
    unmet_kwh: Mapping[str, float]
    binding: tuple[BindingLimit, ...]
    status: SolverStatus
    solve_ms: float
    backend: str
    objective: float | None = None
    dispatch_cost_kwh: float = 0.0
    """Energy the minimum-current rule cost against the pure LP in slot 0."""
    notes: tuple[str, ...] = field(default_factory=tuple)
    discharge_a: Mapping[str, np.ndarray] = field(default_factory=dict)
    """Connector → per-slot discharge (A per line, ≥ 0) of a V2X car
    (`optimizer.v2x`); absent: not discharged. ``current_a`` holds its charging."""
    _row: dict[str, int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_row", {cid: i for i, cid in enumerate(self.connector_ids)})

    def schedule(self, connector_id: str) -> np.ndarray:
        """Per-slot current of one connector (A per line)."""
        return self.current_a[self._row[connector_id]]

    def now_a(self, connector_id: str) -> float:
        """Current for the slot being dispatched now."""
        return float(self.current_a[self._row[connector_id], 0])

    @property
    def energy_requested_kwh(self) -> float:
        return float(sum(self.requested_kwh.values()))

    @property
    def energy_planned_kwh(self) -> float:
        return float(sum(self.energy_kwh.values()))

    @property
    def total_unmet_kwh(self) -> float:
        return float(sum(self.unmet_kwh.values()))

    def summary(self) -> dict[str, object]:
        return {
            "status": self.status.value,
            "backend": self.backend,
            "solve_ms": round(self.solve_ms, 3),
            "connectors": len(self.connector_ids),
            "sessions": len(self.requested_kwh),
            "slots": self.grid.slots,
            "energy_requested_kwh": round(self.energy_requested_kwh, 3),
            "energy_planned_kwh": round(self.energy_planned_kwh, 3),
            "unmet_kwh": round(self.total_unmet_kwh, 3),
            "dispatch_cost_kwh": round(self.dispatch_cost_kwh, 4),
            "binding_now": sorted(
                {f"{b.group_id}:{b.quantity}" for b in self.binding if b.slot == 0}
            ),
        }
