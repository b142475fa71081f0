"""How a session wants to charge (its charging mode): the planner's vocabulary,
shared by the site file, the API, the store and the simulator."""

from __future__ import annotations

from enum import StrEnum


class ChargeMode(StrEnum):
    """fast (as much as the limits allow), solar (the PV surplus only: never an
    import from the grid, pauses without one) or min+solar (the connector's
    minimum current always, the surplus above it)."""

    FAST = "fast"
    """As much as the limits allow (the default)."""
    SOLAR = "solar"
    """Only from the site's PV surplus: never imports from the grid; pauses without one."""
    MIN_SOLAR = "min+solar"
    """The connector's minimum current always, the PV surplus above it."""


CHARGE_MODES = tuple(m.value for m in ChargeMode)
"""The names a site file or the API accepts."""
