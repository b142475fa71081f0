"""gridshare's planning engine: a pure function from a typed problem to a typed plan.

    from optimizer import solve, PlanningProblem
    plan = solve(problem)

No I/O, no clock, no globals: the caller passes ``now`` and every input.
"""

from optimizer.errors import OptimizerError, ProblemError
from optimizer.highs_backend import HighsPlanner
from optimizer.plan import BindingLimit, Plan, SolverStatus
from optimizer.problem import Bidirectional, Capacity, PlanningProblem, SessionDemand, TimeGrid
from optimizer.site import Charger, Connector, ConnectorInfo, Group, Line, Site, SiteInfo
from optimizer.solve import Backend, solve

__all__ = [
    "Backend",
    "Bidirectional",
    "BindingLimit",
    "Capacity",
    "Charger",
    "Connector",
    "ConnectorInfo",
    "Group",
    "HighsPlanner",
    "Line",
    "OptimizerError",
    "Plan",
    "PlanningProblem",
    "ProblemError",
    "SessionDemand",
    "Site",
    "SiteInfo",
    "SolverStatus",
    "TimeGrid",
    "solve",
]
