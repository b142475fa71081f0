"""OCPP 2.1 Dynamic charging profiles (K28): one TxProfile per transaction, then
``UpdateDynamicSchedule`` on each re-plan and an answer to the station's
``PullDynamicScheduleUpdate``. Pure: payloads and what the station holds.

A Dynamic profile has a single period, so it cannot carry a lowering the plan
already knows (a DSO cut ahead). What the station gets is therefore the
*lowest* limit of the plan over the time one value may stay in force:

- the station pulls ``dynUpdateInterval`` s after the last update; we answer
  with the lowest planned limit from then on, so values chain without a gap;
- a station that stops hearing from us keeps the value at most
  ``maxOfflineDuration`` more, then drops the profile
  (``invalidAfterOfflineDuration``) for its TxDefault;
- and should a station not pull, a cut coming into the window is pushed as an
  update all the same (`lowering_due`, `ocpp_adapter.dynamic_sender.DynamicKeeper`).

So each value covers ``dynUpdateInterval + maxOfflineDuration`` (`DynamicPolicy.horizon_s`)
from when it is sent, and is never above the plan anywhere in that window.
Lowerings before raisings still hold: the rollout's order is untouched; an
update replaces the limit at once, and while one is unanswered a pull gets
the lowest of the values that may be in force (`DynamicProfile.candidates`).

Limits go out per phase (``limit``, ``limit_L2``, ``limit_L3``: L1's when
L2/L3 are given) on every update, so an update never leaves a per-phase limit
of an earlier one in force by omission.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from ocpp_adapter import v2x
from ocpp_adapter.events import ChargingLimitSpec, LimitPurpose, StationCapabilities
from ocpp_adapter.profiles import (
    Schedule,
    _floor1,
    _iso,
    charging_profile_201,
    profile_id,
    resolve,
)


@dataclass(frozen=True)
class DynamicPolicy:
    """How long one dynamic value may stay in force (see the module doc)."""

    update_interval_s: int = 60
    """``dynUpdateInterval``: the station pulls this long after the last update."""
    offline_s: int = 300
    """``maxOfflineDuration`` of the profile."""

    @property
    def horizon_s(self) -> int:
        return self.update_interval_s + self.offline_s


@dataclass
class DynamicProfile:
    """A Dynamic TxProfile installed at a station, as we last sent it."""

    profile_id: int
    connector: int
    transaction_id: str | None
    policy: DynamicPolicy
    candidates: list[ChargingLimitSpec] = field(default_factory=list)
    """The specs whose values may be in force: the last accepted one, plus any
    sent and not (yet) answered. A pull gets the lowest of them."""
    sent: dict[str, float] | None = None
    """The per-phase limit the station last took from us (install, update or pull)."""


def applies(spec: ChargingLimitSpec) -> bool:
    """Only a running transaction's profile goes Dynamic, and never a discharge."""
    return spec.purpose is LimitPurpose.TX and spec.connector > 0 and not v2x.discharges(spec)


def window_limit(schedule: Schedule, now: datetime, horizon_s: int) -> tuple[float, int]:
    """The lowest (limit, numberPhases) of ``schedule`` over [now, now + horizon_s]."""
    end = now + timedelta(seconds=horizon_s)
    best: tuple[float, int] | None = None
    periods = schedule.periods
    for i, (start_s, value, phases) in enumerate(periods):
        p_start = schedule.start + timedelta(seconds=start_s)
        p_end = (
            schedule.start + timedelta(seconds=periods[i + 1][0]) if i + 1 < len(periods) else None
        )
        if p_start > end or (p_end is not None and p_end <= now):
            continue
        if best is None or value < best[0]:
            best = (value, phases)
    assert best is not None  # the last period never ends
    return best


def schedule_update(
    spec: ChargingLimitSpec, schedule: Schedule, now: datetime, horizon_s: int
) -> dict[str, Any]:
    """A ``ChargingScheduleUpdateType``: the window's lowest limit on each phase."""
    value, phases = window_limit(schedule, now, horizon_s)
    used = set(spec.station_phases or range(1, phases + 1))
    per = value if schedule.unit == "A" else _floor1(value / max(phases, 1))
    keys = ("limit", "limit_L2", "limit_L3")
    return {key: per if k in used else 0.0 for k, key in enumerate(keys, start=1)}


def lowest_update(
    candidates: list[ChargingLimitSpec],
    caps: StationCapabilities | None,
    now: datetime,
    horizon_s: int,
    backdate_s: float,
) -> dict[str, Any]:
    """The per-phase minimum of every candidate's update."""
    updates = [
        schedule_update(s, resolve(s, caps, now, backdate_s=backdate_s), now, horizon_s)
        for s in candidates
    ]
    return {k: min(u[k] for u in updates) for k in updates[0]}


def set_dynamic_profile(
    spec: ChargingLimitSpec, schedule: Schedule, now: datetime, policy: DynamicPolicy
) -> dict[str, Any]:
    """``SetChargingProfileRequest`` installing ``spec`` as a Dynamic TxProfile."""
    profile = charging_profile_201(spec, schedule)
    profile["chargingProfileKind"] = "Dynamic"
    [sched] = profile["chargingSchedule"]
    _, phases = window_limit(schedule, now, policy.horizon_s)
    period: dict[str, Any] = {"startPeriod": 0}
    period.update(schedule_update(spec, schedule, now, policy.horizon_s))
    period["numberPhases"] = phases
    sched["chargingSchedulePeriod"] = [period]
    profile["dynUpdateInterval"] = policy.update_interval_s
    profile["dynUpdateTime"] = _iso(now)
    profile["maxOfflineDuration"] = policy.offline_s
    profile["invalidAfterOfflineDuration"] = True
    return {"evseId": spec.connector, "chargingProfile": profile}


def update_dynamic_schedule(pid: int, update: dict[str, Any]) -> dict[str, Any]:
    """``UpdateDynamicScheduleRequest``."""
    return {"chargingProfileId": pid, "scheduleUpdate": update}


def pull_reply(
    profiles: dict[int, DynamicProfile],
    pid: int,
    caps: StationCapabilities | None,
    now: datetime,
    backdate_s: float,
) -> dict[str, Any]:
    """``PullDynamicScheduleUpdateResponse`` for profile ``pid`` (noted as sent)."""
    entry = profiles.get(pid)
    if entry is None or not entry.candidates:
        return {"status": "Rejected", "statusInfo": {"reasonCode": "NoDynamicProfile"}}
    update = lowest_update(entry.candidates, caps, now, entry.policy.horizon_s, backdate_s)
    entry.sent = update
    return {"status": "Accepted", "scheduleUpdate": update}


def lowering_due(
    entry: DynamicProfile, caps: StationCapabilities | None, now: datetime, backdate_s: float
) -> dict[str, float] | None:
    """The update to push now when the window's lowest limit fell below what the
    station holds (a cut ahead coming into the window), else None."""
    if entry.sent is None or not entry.candidates:
        return None
    need = lowest_update(entry.candidates, caps, now, entry.policy.horizon_s, backdate_s)
    return need if any(need[k] < entry.sent.get(k, 0.0) - 1e-9 for k in need) else None


def tx_profile_id(connector: int) -> int:
    return profile_id(connector, LimitPurpose.TX)
