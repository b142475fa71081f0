"""Does a group keep its capacity? The check behind a GroupCapacityComplianceError.

Pure: the caller passes the measured per-line currents and total power of the
group and the limit in force; the answer says which limit is exceeded and by
how much, after a tolerance (meters and stations are not exact).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from forecasts.units import Limit
from optimizer.site import Line


@dataclass(frozen=True)
class Excess:
    quantity: str
    """``"L1"``, ``"L2"``, ``"L3"`` (amperes) or ``"kW"``."""
    measured: float
    limit: float

    def __str__(self) -> str:
        unit = "kW" if self.quantity == "kW" else "A"
        where = "" if self.quantity == "kW" else f" on {self.quantity}"
        return f"{self.measured:.1f} {unit}{where} over the limit of {self.limit:.1f} {unit}"


def excesses(
    limit: Limit,
    current_a: Mapping[Line, float],
    power_kw: float,
    *,
    tolerance_a: float = 1.0,
    tolerance_kw: float = 0.5,
) -> list[Excess]:
    """Every limit the measurement exceeds by more than the tolerance."""
    out = [
        Excess(line.value, a, limit.limit_a)
        for line, a in sorted(current_a.items())
        if a > limit.limit_a + tolerance_a
    ]
    if power_kw > limit.limit_kw + tolerance_kw:
        out.append(Excess("kW", power_kw, limit.limit_kw))
    return out
