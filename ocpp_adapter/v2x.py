"""OCPP 2.1 V2X: what a bidirectional car announces, and the setpoints that
discharge it.

In: ``NotifyEVChargingNeeds`` (2.1, ISO 15118-20). A car is bidirectional when
``requestedEnergyTransfer`` (or, failing it, ``availableEnergyTransfer``) is a
BPT mode (``AC_BPT``, ``AC_BPT_DER``, ``DC_BPT``, ``DC_ACDP_BPT``) and its
``v2xChargingParameters`` say how far: ``maxDischargeCurrent`` (A) or
``maxDischargePower`` (W, converted by the application, which knows the
connector's voltage and lines), ``evMinV2XEnergyRequest`` (Wh to the lowest
state of charge the driver allows for cycling: negative, how far it may be
discharged from now) and ``evMaxV2XEnergyRequest``.

Out: a period with a discharge (a negative `LimitPeriod.limit_a`) goes to a
2.1 station as ``operationMode = CentralSetpoint`` with

* ``setpoint`` = charge − discharge (negative: discharge),
* ``dischargeLimit`` = −discharge: the car never feeds back more than planned
  (the group's export limit holds), and
* ``limit`` = the charging limit as ever, so what is in force on the charging
  side is what the plan counts.

In A every figure is per line and goes with its ``_L2``/``_L3`` (one-phase
cars: 0 on the lines they do not load), since without them the schema reads a
figure as the sum of all phases; in W they are totals, discharges rounded
down in magnitude. The schema's names are sent exactly (the ``ocpp``
package's key conversion would turn ``setpoint_L2`` into ``setpointL2``).
Older versions have no setpoint: such a profile is refused before it is sent
(`ocpp_adapter.profiles.LimitSpecError`), so no discharge counts as in force.
A discharge never goes Dynamic (a Dynamic profile's single value is the
lowest of its window, which for a setpoint is the most discharge): it goes
as an Absolute profile of the same id, which replaces it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from ocpp_adapter.events import ChargingLimitSpec, V2xNeeds

BPT_MODES = frozenset({"AC_BPT", "AC_BPT_DER", "DC_BPT", "DC_ACDP_BPT"})
CENTRAL_SETPOINT = "CentralSetpoint"


def _number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def read_needs(needs: Mapping[str, Any]) -> V2xNeeds | None:
    """The car's V2X figures from a ``chargingNeeds`` object; None if it is not
    bidirectional or gives no discharge figure."""
    requested = needs.get("requestedEnergyTransfer")
    modes = {requested} if requested else set(needs.get("availableEnergyTransfer") or ())
    if not modes & BPT_MODES:
        return None
    v2x = needs.get("v2xChargingParameters") or {}
    max_a = _number(v2x.get("maxDischargeCurrent"))
    max_w = _number(v2x.get("maxDischargePower"))
    if not ((max_a or 0) > 0 or (max_w or 0) > 0):
        return None
    return V2xNeeds(
        max_discharge_a=max_a,
        max_discharge_w=max_w,
        min_v2x_energy_wh=_number(v2x.get("evMinV2XEnergyRequest")),
        max_v2x_energy_wh=_number(v2x.get("evMaxV2XEnergyRequest")),
    )


def charging_only(
    periods: tuple[tuple[int, float, int], ...],
) -> tuple[tuple[int, float, int], ...]:
    """The periods with every discharge at 0 (what the limit of each is)."""
    return tuple((start, max(value, 0.0), phases) for start, value, phases in periods)


def discharges(spec: ChargingLimitSpec) -> bool:
    """Whether ``spec`` commands a discharge anywhere."""
    return any(p.limit_a < 0 for p in spec.periods)


def _down(x: float) -> float:
    return math.floor(x * 10 + 1e-9) / 10


def setpoint_fields(
    spec: ChargingLimitSpec, unit: str, limit: float, discharge: float, phases: int
) -> dict[str, Any]:
    """The CentralSetpoint fields of one period (``limit`` and ``discharge`` as
    the schedule has them: per line in A, totals in W)."""
    if discharge <= 0:
        return {}
    out: dict[str, Any] = {"operationMode": CENTRAL_SETPOINT}
    if unit != "A":
        give = _down(discharge)
        out["setpoint"] = round(limit - give, 1)
        out["dischargeLimit"] = -give
        return out
    used = spec.station_phases or tuple(range(1, phases + 1))
    for k, suffix in enumerate(("", "_L2", "_L3"), start=1):
        on = k in used and k <= phases
        out[f"setpoint{suffix}"] = round(limit - discharge, 1) if on else 0.0
        out[f"dischargeLimit{suffix}"] = -discharge if on else 0.0
    return out
