"""`ChargingLimitSpec` → SetChargingProfile / ClearChargingProfile payloads for 1.6, 2.0.1 and 2.1.

What the station gets:

- an Absolute profile whose ``startSchedule`` is a little before now
  (``backdate_s``) so a station clock running slightly behind still has a
  limit in force; periods already over are dropped and the rest shifted so the
  limit in force at every instant stays the one the spec asked for;
- equal neighbouring periods merged, then at most the station's
  ``max_periods``: the last kept period takes the lowest limit of those cut
  off, because it stays in force after its own end (never more than planned);
- limits in A (per line), or in W = A × voltage × phases when the station only
  takes W, rounded *down* to one decimal as the 1.6 schema demands;
- a profile id fixed per (connector, purpose), so a new profile replaces the
  one it follows at the station;
- a stack level fixed per (connector, purpose) (`stack_level`): a connector's
  own TxDefaultProfile goes one level above the station-wide one (connector 0).
  Two TxDefaultProfiles on EVSE 0 and an EVSE at the same level are refused by
  a 2.0.1 station (K01.FR.52/53, DuplicateTxDefaultProfileFound) and may be
  read by a 1.6 station as one replacing the other; one level apart, the
  highest-level-wins rule of both versions makes the connector's own limit the
  one in force on its connector and the station-wide one on the others, which
  is what the fallback policy intends.

ChargingStationExternalConstraints is never produced (K01.FR.22).

2.1 gets the 2.0.1 profile plus (`charging_profile_21`): per-phase limits
(``limit_L2``/``limit_L3``, exactly the schema's names) where the car loads
fewer phases than the period's, and on a TxProfile ``maxOfflineDuration`` with
``invalidAfterOfflineDuration`` (`OfflinePolicy`): a station cut off from
gridshare drops to its TxDefault after a bounded time. ``randomizedDelay``
only where it can postpone raisings alone.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from ocpp_adapter import v2x
from ocpp_adapter.events import ChargingLimitSpec, LimitPurpose, StationCapabilities

PURPOSE_16 = {
    LimitPurpose.TX: "TxProfile",
    LimitPurpose.TX_DEFAULT: "TxDefaultProfile",
    LimitPurpose.STATION_MAX: "ChargePointMaxProfile",
}
PURPOSE_201 = {
    LimitPurpose.TX: "TxProfile",
    LimitPurpose.TX_DEFAULT: "TxDefaultProfile",
    LimitPurpose.STATION_MAX: "ChargingStationMaxProfile",
}
_PURPOSE_BASE = {
    LimitPurpose.STATION_MAX: 1000,
    LimitPurpose.TX_DEFAULT: 2000,
    LimitPurpose.TX: 3000,
}


class LimitSpecError(ValueError):
    """The spec cannot be expressed as a valid profile (e.g. a TxProfile on connector 0)."""


def profile_id(connector: int, purpose: LimitPurpose) -> int:
    """Stable id per (connector, purpose): a new profile replaces the previous one."""
    return _PURPOSE_BASE[purpose] + connector


def stack_level(spec: ChargingLimitSpec) -> int:
    """The stack level sent: ``spec.stack_level``, one higher for a connector's own
    TxDefaultProfile (see module doc)."""
    if spec.purpose is LimitPurpose.TX_DEFAULT and spec.connector > 0:
        return spec.stack_level + 1
    return spec.stack_level


@dataclass(frozen=True)
class Schedule:
    """A spec resolved for one station at one time: what goes on the wire."""

    start: datetime
    unit: str
    periods: tuple[tuple[int, float, int], ...]
    """(startPeriod s, limit in ``unit``, numberPhases)."""


def _floor1(x: float) -> float:
    # Down, not nearest: a limit must never exceed what was planned.
    return math.floor(x * 10 + 1e-9) / 10


def resolve(
    spec: ChargingLimitSpec,
    caps: StationCapabilities | None,
    now: datetime,
    *,
    backdate_s: float = 5.0,
    future_tolerance_s: float = 300.0,
    default_max_periods: int = 24,
) -> Schedule:
    """Anchor, convert, merge and truncate the spec's periods (see module doc)."""
    if not spec.periods:
        raise LimitSpecError("a charging limit needs at least one period")
    top = caps.max_stack_level if caps is not None else None
    if top is not None and stack_level(spec) > top:
        raise LimitSpecError(f"stack level {stack_level(spec)} above the station's {top}")
    periods = sorted(spec.periods, key=lambda p: p.start_offset_s)
    start = spec.start if spec.start.tzinfo else spec.start.replace(tzinfo=UTC)
    # Whole seconds: startSchedule goes on the wire without fractions.
    anchor = (now - timedelta(seconds=backdate_s)).replace(microsecond=0)
    if start > now + timedelta(seconds=future_tolerance_s):
        anchor = (start + timedelta(seconds=periods[0].start_offset_s)).replace(microsecond=0)
    units = caps.rate_units if caps is not None else ("A",)
    unit = "A" if "A" in units or not units else "W"

    out: list[tuple[int, float, int]] = []
    for i, p in enumerate(periods):
        p_start = start + timedelta(seconds=p.start_offset_s)
        nxt = periods[i + 1] if i + 1 < len(periods) else None
        if nxt is not None and start + timedelta(seconds=nxt.start_offset_s) <= anchor:
            continue  # over before the anchor
        limit = p.limit_a  # negative: a V2X discharge setpoint (`ocpp_adapter.v2x`)
        if unit == "W":
            limit *= spec.voltage_v * p.number_phases
        value = _floor1(limit) if limit >= 0 else -_floor1(-limit)  # toward 0: never more
        if out and out[-1][1] == value and out[-1][2] == p.number_phases:
            continue  # equal to the one before: merged
        # Whole seconds on the wire: a lower limit starts early, a higher one late.
        since = (p_start - anchor).total_seconds()
        rounded = math.floor(since) if out and value < out[-1][1] else math.ceil(since)
        offset = max(0, rounded) if out else 0
        if out and offset <= out[-1][0]:
            out[-1] = (out[-1][0], value, p.number_phases)
            continue
        out.append((offset, value, p.number_phases))

    max_periods = caps.max_periods if caps is not None and caps.max_periods else default_max_periods
    if len(out) > max_periods:
        # held for ever after the last period: a discharge there never is
        tail_min = max(min(v for _, v, _ in out[max_periods - 1 :]), 0.0)
        last = out[max_periods - 1]
        out = [*out[: max_periods - 1], (last[0], tail_min, last[2])]
    return Schedule(start=anchor, unit=unit, periods=tuple(out))


def _iso(at: datetime) -> str:
    return at.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _check_target(spec: ChargingLimitSpec, in_remote_start: bool) -> None:
    if spec.purpose is LimitPurpose.STATION_MAX and spec.connector != 0:
        raise LimitSpecError("a station maximum profile goes on connector 0")
    if spec.purpose is LimitPurpose.TX:
        if spec.connector <= 0:
            raise LimitSpecError("a TxProfile needs a connector > 0")
        if spec.transaction_id is None and not in_remote_start:
            raise LimitSpecError("a TxProfile needs the transaction id")
    if spec.connector < 0 or spec.stack_level < 0:
        raise LimitSpecError("connector and stack level must not be negative")


def _periods(schedule: Schedule) -> list[dict[str, Any]]:
    if any(v < 0 for _, v, _ in schedule.periods):
        raise LimitSpecError("a discharge setpoint needs OCPP 2.1")
    return [{"startPeriod": s, "limit": v, "numberPhases": n} for s, v, n in schedule.periods]


def charging_profile_16(
    spec: ChargingLimitSpec, schedule: Schedule, *, in_remote_start: bool = False
) -> dict[str, Any]:
    """The 1.6 ``csChargingProfiles`` object."""
    _check_target(spec, in_remote_start)
    profile: dict[str, Any] = {
        "chargingProfileId": profile_id(spec.connector, spec.purpose),
        "stackLevel": stack_level(spec),
        "chargingProfilePurpose": PURPOSE_16[spec.purpose],
        "chargingProfileKind": "Absolute",
        "chargingSchedule": {
            "startSchedule": _iso(schedule.start),
            "chargingRateUnit": schedule.unit,
            "chargingSchedulePeriod": _periods(schedule),
        },
    }
    if spec.purpose is LimitPurpose.TX and spec.transaction_id is not None:
        try:
            profile["transactionId"] = int(spec.transaction_id)
        except ValueError:
            raise LimitSpecError(
                f"1.6 transaction ids are integers, not {spec.transaction_id!r}"
            ) from None
    return profile


def set_profile_16(spec: ChargingLimitSpec, schedule: Schedule) -> dict[str, Any]:
    return {
        "connectorId": spec.connector,
        "csChargingProfiles": charging_profile_16(spec, schedule),
    }


def charging_profile_201(
    spec: ChargingLimitSpec, schedule: Schedule, *, in_remote_start: bool = False
) -> dict[str, Any]:
    _check_target(spec, in_remote_start)
    pid = profile_id(spec.connector, spec.purpose)
    profile: dict[str, Any] = {
        "id": pid,
        "stackLevel": stack_level(spec),
        "chargingProfilePurpose": PURPOSE_201[spec.purpose],
        "chargingProfileKind": "Absolute",
        "chargingSchedule": [
            {
                "id": pid,
                "startSchedule": _iso(schedule.start),
                "chargingRateUnit": schedule.unit,
                "chargingSchedulePeriod": _periods(schedule),
            }
        ],
    }
    if spec.purpose is LimitPurpose.TX and spec.transaction_id is not None:
        profile["transactionId"] = spec.transaction_id
    return profile


def set_profile_201(spec: ChargingLimitSpec, schedule: Schedule) -> dict[str, Any]:
    return {"evseId": spec.connector, "chargingProfile": charging_profile_201(spec, schedule)}


# --- OCPP 2.1 ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class OfflinePolicy:
    """What a 2.1 profile does when the station loses gridshare (see the module doc).

    ``max_offline_s``: ``maxOfflineDuration``. After this long offline the
    TxProfile stops counting and the station falls back to its TxDefault (the
    fallback installed at boot, shared so every group's fallback capacity
    holds); with ``invalidAfterOfflineDuration`` it stays invalid after the
    link is back, until the next plan sends a fresh one. None: no bound.
    ``randomized_delay_s``: ``randomizedDelay``, the spread of the profile's
    raisings so stations do not all step up at the same second.
    """

    max_offline_s: int | None = 300
    randomized_delay_s: int = 30


def _per_phase(spec: ChargingLimitSpec, unit: str, value: float, phases: int) -> dict[str, float]:
    """``limit``/``limit_L2``/``limit_L3`` for a car on fewer phases than the period's
    (empty: one figure for all). In W, ``value`` is the total over ``phases``;
    per phase it is that share (2.1: with L2/L3 given, ``limit`` is L1's)."""
    used = spec.station_phases
    if used is None or set(range(1, phases + 1)) <= set(used):
        return {}
    per = value if unit == "A" else _floor1(value / phases)
    keys = ("limit", "limit_L2", "limit_L3")
    return {key: per if k in used else 0.0 for k, key in enumerate(keys, start=1)}


def _periods_21(spec: ChargingLimitSpec, schedule: Schedule, shift: int) -> list[dict[str, Any]]:
    out = []
    for i, (start, value, phases) in enumerate(schedule.periods):
        charge = max(value, 0.0)
        period: dict[str, Any] = {"startPeriod": start + shift if i else 0, "limit": charge}
        period.update(_per_phase(spec, schedule.unit, charge, phases))
        period.update(v2x.setpoint_fields(spec, schedule.unit, charge, charge - value, phases))
        period["numberPhases"] = phases
        out.append(period)
    return out


def charging_profile_21(
    spec: ChargingLimitSpec,
    schedule: Schedule,
    offline: OfflinePolicy,
    *,
    in_remote_start: bool = False,
) -> dict[str, Any]:
    """The 2.0.1 profile with 2.1's per-phase limits and, on a TxProfile, its offline bound.

    ``randomizedDelay`` postpones the start of every period by up to that
    many seconds, lowerings included, so it is only set on a schedule that
    never goes down after its first period; there ``startSchedule`` moves
    back by the delay (the first period is in force on receipt) and the
    later periods forward by it (each raising comes up to the delay late,
    never early).
    """
    charging = Schedule(schedule.start, schedule.unit, v2x.charging_only(schedule.periods))
    profile = charging_profile_201(spec, charging, in_remote_start=in_remote_start)
    values = [v for _, v, _ in schedule.periods]
    delay = offline.randomized_delay_s
    rising = all(b >= a for a, b in itertools.pairwise(values))
    delay = delay if spec.purpose is not LimitPurpose.STATION_MAX and rising else 0
    [sched] = profile["chargingSchedule"]
    sched["chargingSchedulePeriod"] = _periods_21(spec, schedule, delay)
    if delay:
        sched["startSchedule"] = _iso(schedule.start - timedelta(seconds=delay))
        sched["randomizedDelay"] = delay
    if spec.purpose is LimitPurpose.TX and offline.max_offline_s is not None:
        profile["maxOfflineDuration"] = offline.max_offline_s
        profile["invalidAfterOfflineDuration"] = True
    return profile


def set_profile_21(
    spec: ChargingLimitSpec, schedule: Schedule, offline: OfflinePolicy
) -> dict[str, Any]:
    profile = charging_profile_21(spec, schedule, offline)
    return {"evseId": spec.connector, "chargingProfile": profile}


def clear_profile_16(connector: int, purpose: LimitPurpose) -> dict[str, Any]:
    return {"connectorId": connector, "chargingProfilePurpose": PURPOSE_16[purpose]}


def clear_profile_201(connector: int, purpose: LimitPurpose) -> dict[str, Any]:
    return {
        "chargingProfileCriteria": {
            "evseId": connector,
            "chargingProfilePurpose": PURPOSE_201[purpose],
        }
    }
