"""What a site pays and emits, as the planner is told it: per-slot energy
prices, a carbon forecast, the peak-demand charge with the billing period's
peak so far, and an optional soft target (a DSO's optimum). Plain data over
the problem's grid; the LP terms that read it are in `optimizer.costs`."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from optimizer.errors import ProblemError


@dataclass(frozen=True)
class PeakCharge:
    """A price per kW of the billing period's highest import, averaged over
    ``interval_minutes`` (clock-aligned), of the whole connection (chargers,
    building, less generation)."""

    price_per_kw: float
    so_far_kw: float = 0.0
    """The period's peak so far (from the meters): only a rise above it costs."""
    interval_minutes: int = 15
    elapsed_kwh: float = 0.0
    """Energy the connection imported in the interval in force before now
    (metered): the rest of that interval's average is planned from now on."""
    reset_slot: int | None = None
    """First slot of the next billing period, if it starts within the grid:
    from there on the peak so far is 0 and a new rise is paid."""

    def __post_init__(self) -> None:
        if not (self.price_per_kw >= 0 and math.isfinite(self.price_per_kw)):
            raise ProblemError("peak price must be ≥ 0")
        if not (self.so_far_kw >= 0 and math.isfinite(self.so_far_kw)):
            raise ProblemError("peak so far must be ≥ 0")
        if self.interval_minutes <= 0 or 60 % self.interval_minutes:
            raise ProblemError("peak interval must divide an hour")


@dataclass(frozen=True)
class CostSignal:
    """Money and carbon over the grid's slots (arrays of ``grid.slots``)."""

    energy_price: np.ndarray | None = None
    """Price per kWh imported, per slot."""
    carbon_kg_per_kwh: np.ndarray | None = None
    """Marginal emission rate the planner is told (a forecast), per slot."""
    carbon_price_per_kg: float = 0.0
    peak: PeakCharge | None = None
    generation_kw: np.ndarray | None = None
    """Generation behind the connection, per slot (lowers the import)."""
    value_of_unmet_kwh: float | None = None
    """None: drivers first (money trades only among plans delivering the same
    energy). Else unmet energy is worth this much money per kWh, and the
    planner may leave a car short where that saves more."""
    optimum_kw: np.ndarray | None = None
    """A soft target for the chargers' total power per slot (OSCP OPTIMUM; NaN: none)."""
    hedge_share: float = 0.25
    """Drivers leave earlier than they state: the money and carbon terms may
    move a session's energy only up to a conservative departure, this share of
    its stated stay (at least `optimizer.costs.HEDGE_MIN_MINUTES`) before the
    stated one. 0: up to the stated departure (no hedge)."""

    def check(self, slots: int) -> None:
        for name in ("energy_price", "carbon_kg_per_kwh", "generation_kw", "optimum_kw"):
            arr = getattr(self, name)
            if arr is None:
                continue
            if np.shape(arr) != (slots,):
                raise ProblemError(f"costs.{name}: expected {slots} slots")
            if name != "optimum_kw" and not np.all(np.isfinite(arr)):
                raise ProblemError(f"costs.{name}: values must be finite")
        if not (self.carbon_price_per_kg >= 0 and math.isfinite(self.carbon_price_per_kg)):
            raise ProblemError("costs.carbon_price_per_kg must be ≥ 0")
        if not 0 <= self.hedge_share < 1:
            raise ProblemError("costs.hedge_share must be in [0, 1)")
        v = self.value_of_unmet_kwh
        if v is not None and not (v > 0 and math.isfinite(v)):
            raise ProblemError("costs.value_of_unmet_kwh must be > 0")

    def priced(self) -> bool:
        """Whether anything here is priced (else the planner ignores it)."""
        return (
            self.energy_price is not None
            or (self.carbon_kg_per_kwh is not None and self.carbon_price_per_kg > 0)
            or (self.peak is not None and self.peak.price_per_kw > 0)
        )
