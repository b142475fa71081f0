"""Errors of the optimizer package.

    OptimizerError
    └── ProblemError   the problem is malformed (unknown connector, overlap, bad shape)

A solver that fails is not an error: `solve` falls back to a heuristic and says
so in the plan's status.
"""


class OptimizerError(Exception):
    """Root of the optimizer's errors."""


class ProblemError(OptimizerError, ValueError):
    """The planning problem is malformed."""
