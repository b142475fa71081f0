"""One log line per plan: what the operator follows of the planner.

    plan made id=42 status=optimal reason="session started" sessions=2
        requested_kwh=60 planned_kwh=52.4 unmet_kwh=7.6 binding=grid:L1 solve_ms=14.2

``binding`` names the groups at capacity in the slot being dispatched now
(``group:quantity``, ``-`` when none). A plan the heuristic made (the solver
failed) is a warning.
"""

from __future__ import annotations

import logging

from gridshare.logs import fields
from optimizer.plan import Plan, SolverStatus

log = logging.getLogger(__name__)


def log_plan(plan: Plan, reason: str, plan_id: int | None) -> None:
    binding = sorted({f"{b.group_id}:{b.quantity}" for b in plan.binding if b.slot == 0})
    level = logging.WARNING if plan.status is SolverStatus.HEURISTIC else logging.INFO
    log.log(
        level,
        "plan made %s",
        fields(
            id=plan_id,
            status=plan.status,
            reason=reason,
            sessions=len(plan.requested_kwh),
            requested_kwh=plan.energy_requested_kwh,
            planned_kwh=plan.energy_planned_kwh,
            unmet_kwh=plan.total_unmet_kwh,
            binding=",".join(binding) or None,
            solve_ms=plan.solve_ms,
        ),
    )
