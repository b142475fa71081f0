"""Charging profiles as a station keeps them, and the limit in force they give.

Pure: no clock, no I/O. Both OCPP versions are read into one `Profile` type;
`ProfileStore` holds a station's profiles (by connector, purpose and stack
level) and answers "what may this connector draw at time t" and
GetCompositeSchedule the way OCPP 1.6 §3.13 / 2.0.1 K08 describe:

* per purpose the valid profile with the highest stackLevel whose schedule
  covers t wins (a finished schedule falls through to the next level);
* a running transaction's TxProfile, else TxDefaultProfile (connector-specific
  over connector 0; a 2.0.1 station refuses the two at one level, K01.FR.52/53);
* then the minimum with the station-wide max profile;
* W limits become A through voltage × phases in use; no profile → no limit.

2.1 adds (read by `profile_from_v21`):

* per-phase limits (``limit_L2``/``limit_L3``; ``limit`` is then L1's): one
  pilot current serves every phase the car loads, so the car gets the lowest
  of those phases' limits (a one-phase car: L1's alone);
* ``randomizedDelay``: each period starts up to that many seconds late (the
  first too: until then the profile gives nothing); the simulated station
  takes the whole delay, the latest a station may start it;
* ``maxOfflineDuration``: offline for longer (`ProfileStore.offline_since`)
  the profile gives nothing, and with ``invalidAfterOfflineDuration`` it is
  dropped for good (`ProfileStore.online`);
* Dynamic profiles (K28): one period, its limit replaced by
  ``UpdateDynamicSchedule`` or a pull's answer (`ProfileStore.update_dynamic`);
  the station pulls ``dynUpdateInterval`` after the last update
  (`ProfileStore.pulls_due`), and a profile not updated for
  ``dynUpdateInterval`` + ``maxOfflineDuration`` gives nothing: the station
  falls back to its TxDefault.

Connector numbers are 1.6 connector ids or 2.0.1/2.1 EVSE ids; 0 is the station.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from gridshare.errors import GridshareError


class Purpose(StrEnum):
    STATION_MAX = "StationMax"
    TX_DEFAULT = "TxDefaultProfile"
    TX = "TxProfile"


class Kind(StrEnum):
    ABSOLUTE = "Absolute"
    RECURRING = "Recurring"
    RELATIVE = "Relative"
    DYNAMIC = "Dynamic"


class ProfileError(GridshareError, ValueError):
    """A profile the station must reject; the message says why."""


_PURPOSES = {
    "ChargePointMaxProfile": Purpose.STATION_MAX,
    "ChargingStationMaxProfile": Purpose.STATION_MAX,
    "TxDefaultProfile": Purpose.TX_DEFAULT,
    "TxProfile": Purpose.TX,
}
_RECURRENCE = {"Daily": timedelta(days=1), "Weekly": timedelta(days=7)}


def purpose_from_ocpp(name: str) -> Purpose:
    try:
        return _PURPOSES[name]
    except KeyError:
        raise ProfileError(f"unsupported chargingProfilePurpose {name!r}") from None


def purpose_to_ocpp(purpose: Purpose, version: str) -> str:
    if purpose is Purpose.STATION_MAX:
        return "ChargePointMaxProfile" if version == "1.6" else "ChargingStationMaxProfile"
    return purpose.value


def parse_time(value: str) -> datetime:
    t = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if t.tzinfo is None:
        raise ProfileError(f"time without zone: {value!r}")
    return t


@dataclass(frozen=True)
class Period:
    start_s: int
    limit: float
    number_phases: int | None = None
    phase_limits: tuple[float, float, float] | None = None
    """2.1: (L1, L2, L3) when the period gives ``limit_L2``/``limit_L3``."""
    setpoint: float | None = None
    """2.1 CentralSetpoint: the ``setpoint`` (L1's when per phase; negative:
    discharge), followed by a bidirectional car (`gridshare.peers.v2x`)."""
    discharge_limit: float | None = None

    def limit_on(self, lines: int) -> float:
        """The limit for a car loading the station's first ``lines`` phases."""
        if self.phase_limits is None:
            return self.limit
        return min(self.phase_limits[: max(1, lines)])


@dataclass(frozen=True)
class Schedule:
    rate_unit: str
    """``A`` (per phase) or ``W`` (total)."""
    periods: tuple[Period, ...]
    start: datetime | None = None
    duration_s: int | None = None
    min_rate: float | None = None
    randomized_delay_s: int = 0
    """2.1: every period, the first included, starts this late (the whole delay: the
    latest a station may start it)."""


@dataclass(frozen=True)
class Profile:
    id: int
    connector: int
    purpose: Purpose
    stack_level: int
    kind: Kind
    schedule: Schedule
    recurrency: str | None = None
    valid_from: datetime | None = None
    valid_to: datetime | None = None
    transaction_id: str | None = None
    max_offline_s: int | None = None
    """2.1 ``maxOfflineDuration``."""
    invalid_after_offline: bool = False
    dyn_update_interval_s: int | None = None
    """2.1 Dynamic: ``dynUpdateInterval`` (None or 0: never pulled)."""
    dyn_update_time: datetime | None = None
    """2.1 Dynamic: when its limit was last updated."""

    def dynamic_expiry(self) -> datetime | None:
        """When a Dynamic profile not updated since stops giving a limit (None: never)."""
        if self.kind is not Kind.DYNAMIC or self.dyn_update_time is None:
            return None
        bound = (self.dyn_update_interval_s or 0) + (self.max_offline_s or 0)
        return self.dyn_update_time + timedelta(seconds=bound) if bound else None

    def is_valid(self, t: datetime, offline_since: datetime | None = None) -> bool:
        if self.valid_from is not None and t < self.valid_from:
            return False
        if self.offline_too_long(t, offline_since):
            return False
        return self.valid_to is None or t < self.valid_to

    def offline_too_long(self, t: datetime, offline_since: datetime | None) -> bool:
        if self.max_offline_s is None or offline_since is None:
            return False
        return (t - offline_since).total_seconds() >= self.max_offline_s

    def anchor(self, t: datetime, tx_start: datetime | None) -> datetime | None:
        """When the schedule's second 0 is for time t (None: not running)."""
        s = self.schedule
        if self.kind is Kind.RELATIVE:
            return tx_start if tx_start is not None else t
        start = s.start if s.start is not None else self.valid_from
        if start is None:
            return tx_start
        if self.kind is Kind.RECURRING:
            step = _RECURRENCE.get(self.recurrency or "Daily", timedelta(days=1))
            return start + step * math.floor((t - start) / step)
        return start

    def value_at(
        self, t: datetime, tx_start: datetime | None, offline_since: datetime | None = None
    ) -> Period | None:
        """The schedule period in force at t, or None if the profile gives nothing then."""
        if not self.is_valid(t, offline_since):
            return None
        if self.kind is Kind.DYNAMIC:
            expiry = self.dynamic_expiry()
            return self.schedule.periods[0] if expiry is None or t < expiry else None
        anchor = self.anchor(t, tx_start)
        if anchor is None:
            return None
        offset = (t - anchor).total_seconds()
        s = self.schedule
        if offset < 0 or (s.duration_s is not None and offset >= s.duration_s):
            return None
        current: Period | None = None
        for p in s.periods:
            if p.start_s + s.randomized_delay_s > offset:
                break
            current = p
        return current


def _period(p: Mapping[str, Any]) -> Period:
    phase_limits = None
    if "limit_L2" in p or "limit_L3" in p:
        l1 = float(p["limit"])
        phase_limits = (l1, float(p.get("limit_L2", l1)), float(p.get("limit_L3", l1)))
        if min(phase_limits) < 0:
            raise ProfileError("negative limit")
    setpoint, discharge_limit = _setpoint(p)
    return Period(
        int(p["startPeriod"]),
        float(p["limit"]),
        p.get("numberPhases"),
        phase_limits,
        setpoint,
        discharge_limit,
    )


def _setpoint(p: Mapping[str, Any]) -> tuple[float | None, float | None]:
    """(setpoint, dischargeLimit) of a 2.1 period in CentralSetpoint, else (None, None)."""
    if p.get("operationMode") != "CentralSetpoint" or "setpoint" not in p:
        return None, None
    limit = p.get("dischargeLimit")
    if limit is not None and float(limit) > 0:
        raise ProfileError("dischargeLimit must not be positive")
    return float(p["setpoint"]), None if limit is None else float(limit)


def _schedule(raw: Mapping[str, Any]) -> Schedule:
    periods = tuple(_period(p) for p in raw["chargingSchedulePeriod"])
    if not periods or periods[0].start_s != 0:
        raise ProfileError("the first period must start at 0")
    if any(b.start_s <= a.start_s for a, b in itertools.pairwise(periods)):
        raise ProfileError("period starts must increase")
    if any(p.limit < 0 for p in periods):
        raise ProfileError("negative limit")
    unit = raw["chargingRateUnit"]
    if unit not in ("A", "W"):
        raise ProfileError(f"unknown chargingRateUnit {unit!r}")
    start = raw.get("startSchedule")
    return Schedule(
        rate_unit=unit,
        periods=periods,
        start=parse_time(start) if start else None,
        duration_s=raw.get("duration"),
        min_rate=raw.get("minChargingRate"),
        randomized_delay_s=max(0, int(raw.get("randomizedDelay", 0))),
    )


def _common(raw: Mapping[str, Any], connector: int, schedule: Schedule, pid: int) -> Profile:
    kind = Kind(raw["chargingProfileKind"])
    vf, vt = raw.get("validFrom"), raw.get("validTo")
    tx = raw.get("transactionId")
    return Profile(
        id=pid,
        connector=connector,
        purpose=purpose_from_ocpp(raw["chargingProfilePurpose"]),
        stack_level=int(raw["stackLevel"]),
        kind=kind,
        schedule=schedule,
        recurrency=raw.get("recurrencyKind"),
        valid_from=parse_time(vf) if vf else None,
        valid_to=parse_time(vt) if vt else None,
        transaction_id=None if tx is None else str(tx),
    )


def profile_from_v16(connector_id: int, cs_charging_profiles: Mapping[str, Any]) -> Profile:
    """Read ``SetChargingProfile.req``'s ``csChargingProfiles``."""
    raw = cs_charging_profiles
    return _common(
        raw, connector_id, _schedule(raw["chargingSchedule"]), int(raw["chargingProfileId"])
    )


def profile_from_v201(evse_id: int, charging_profile: Mapping[str, Any]) -> Profile:
    """Read ``SetChargingProfileRequest``'s ``chargingProfile`` (first schedule used)."""
    if charging_profile["chargingProfileKind"] == Kind.DYNAMIC:
        raise ProfileError("Dynamic profiles are 2.1's")
    return _profile_v2(evse_id, charging_profile)


def _profile_v2(evse_id: int, charging_profile: Mapping[str, Any]) -> Profile:
    raw = charging_profile
    schedules = raw["chargingSchedule"]
    if not schedules:
        raise ProfileError("no chargingSchedule")
    return _common(raw, evse_id, _schedule(schedules[0]), int(raw["id"]))


def profile_from_v21(evse_id: int, charging_profile: Mapping[str, Any]) -> Profile:
    """Read a 2.1 ``chargingProfile``: the 2.0.1 one and its offline bound."""
    raw = charging_profile
    kind = raw["chargingProfileKind"]
    if kind not in {k.value for k in Kind}:
        raise ProfileError(f"chargingProfileKind {kind} is not supported")
    profile = _profile_v2(evse_id, raw)
    offline = raw.get("maxOfflineDuration")
    profile = replace(
        profile,
        max_offline_s=None if offline is None else int(offline),
        invalid_after_offline=bool(raw.get("invalidAfterOfflineDuration", False)),
    )
    if profile.kind is not Kind.DYNAMIC:
        return profile
    if len(profile.schedule.periods) != 1:
        raise ProfileError("a Dynamic profile has one period")
    updated = raw.get("dynUpdateTime")
    return replace(
        profile,
        dyn_update_interval_s=int(raw.get("dynUpdateInterval") or 0),
        dyn_update_time=parse_time(updated) if updated else None,
    )


def _scheduled_update(update: Mapping[str, Any]) -> Period:
    """A ``ChargingScheduleUpdateType`` as the period it puts in force."""
    if "limit" not in update:
        raise ProfileError("an update without a limit")
    return _period({**update, "startPeriod": 0})


@dataclass(frozen=True)
class ConnectorContext:
    """What the store needs to know about a connector to resolve its limit."""

    voltage_v: float
    phases: int
    """Phases in use (the EV's, bounded by the connector's wiring)."""
    transaction_id: str | None = None
    tx_start: datetime | None = None
    lines: int | None = None
    """Station phases the car loads, from L1 (None: ``phases``), for 2.1 per-phase limits."""


def to_amps(value: float, unit: str, voltage_v: float, phases: int) -> float:
    return value if unit == "A" else value / (voltage_v * max(phases, 1))


@dataclass
class ProfileStore:
    """A station's installed profiles."""

    profiles: dict[int, Profile] = field(default_factory=dict)
    offline_since: datetime | None = None
    """When the station lost the central system (None: connected)."""
    pulled: dict[int, datetime] = field(default_factory=dict)
    """Dynamic profile id → when it was last pulled."""

    def offline(self, t: datetime) -> None:
        if self.offline_since is None:
            self.offline_since = t

    def online(self, t: datetime) -> None:
        """Back online: a profile offline too long with ``invalidAfterOfflineDuration`` is gone."""
        for p in list(self.profiles.values()):
            if p.invalid_after_offline and p.offline_too_long(t, self.offline_since):
                del self.profiles[p.id]
        self.offline_since = None

    def install(
        self,
        profile: Profile,
        *,
        active_tx: str | None,
        max_connector: int,
        v201: bool = False,
    ) -> None:
        """Add or replace a profile; raise `ProfileError` if the station must reject it."""
        p = profile
        if not 0 <= p.connector <= max_connector:
            raise ProfileError(f"no connector {p.connector}")
        if p.purpose is Purpose.STATION_MAX and p.connector != 0:
            raise ProfileError("a station max profile belongs on connector 0")
        if p.purpose is Purpose.TX:
            if p.connector == 0:
                raise ProfileError("a TxProfile needs a connector")
            if active_tx is None:
                raise ProfileError("no transaction on the connector")
            if p.transaction_id is not None and p.transaction_id != active_tx:
                raise ProfileError(f"transaction {p.transaction_id} is not running")
        if p.kind is Kind.RELATIVE and p.purpose is Purpose.STATION_MAX:
            raise ProfileError("a station max profile cannot be Relative")
        if v201 and p.purpose is Purpose.TX_DEFAULT:
            # K01.FR.52/53: EVSE 0 and an EVSE may not share a TxDefault level
            for old in self.profiles.values():
                if (
                    old.purpose is Purpose.TX_DEFAULT
                    and old.id != p.id
                    and old.stack_level == p.stack_level
                    and (old.connector == 0) != (p.connector == 0)
                ):
                    raise ProfileError("DuplicateTxDefaultProfileFound")
        for old in list(self.profiles.values()):
            same_slot = (old.connector, old.purpose, old.stack_level) == (
                p.connector,
                p.purpose,
                p.stack_level,
            )
            if old.id == p.id or same_slot:
                del self.profiles[old.id]
        self.profiles[p.id] = p

    def clear(
        self,
        *,
        profile_id: int | None = None,
        connector: int | None = None,
        purpose: Purpose | None = None,
        stack_level: int | None = None,
    ) -> bool:
        """ClearChargingProfile: an id alone matches by id; otherwise all criteria given."""
        if profile_id is not None:
            return self.profiles.pop(profile_id, None) is not None
        gone = [
            p.id
            for p in self.profiles.values()
            if (connector is None or p.connector == connector)
            and (purpose is None or p.purpose is purpose)
            and (stack_level is None or p.stack_level == stack_level)
        ]
        for pid in gone:
            del self.profiles[pid]
        return bool(gone)

    def update_dynamic(self, profile_id: int, update: Mapping[str, Any], t: datetime) -> None:
        """UpdateDynamicSchedule (or a pull's answer): the Dynamic profile's new limit from t."""
        p = self.profiles.get(profile_id)
        if p is None or p.kind is not Kind.DYNAMIC:
            raise ProfileError(f"no Dynamic profile {profile_id}")
        old = p.schedule.periods[0]
        new = replace(_scheduled_update(update), number_phases=old.number_phases)
        if new.limit < 0:
            raise ProfileError("negative limit")
        self.profiles[profile_id] = replace(
            p, schedule=replace(p.schedule, periods=(new,)), dyn_update_time=t
        )

    def pulls_due(self, t: datetime) -> list[int]:
        """Dynamic profiles to pull at t: ``dynUpdateInterval`` after the last update,
        and again each interval while no answer comes. Each is marked as pulled."""
        due = [p.id for p in self.profiles.values() if (d := self._due(p)) is not None and d <= t]
        for pid in due:
            self.pulled[pid] = t
        return due

    def next_pull(self) -> datetime | None:
        """When the first Dynamic profile is to be pulled (None: none is)."""
        return min((d for p in self.profiles.values() if (d := self._due(p))), default=None)

    def _due(self, p: Profile) -> datetime | None:
        if p.kind is not Kind.DYNAMIC or not p.dyn_update_interval_s or not p.dyn_update_time:
            return None
        step = timedelta(seconds=p.dyn_update_interval_s)
        last = max(p.dyn_update_time, self.pulled.get(p.id, p.dyn_update_time))
        return last + step

    def end_transaction(self, connector: int) -> None:
        """A TxProfile lives only as long as its transaction."""
        for p in list(self.profiles.values()):
            if p.purpose is Purpose.TX and p.connector == connector:
                del self.profiles[p.id]

    # --- resolution ----------------------------------------------------------

    def _phases_a(
        self, candidates: list[Profile], t: datetime, ctx: ConnectorContext
    ) -> tuple[float, float, float] | None:
        """The winning profile's limit on each of the station's phases (A)."""
        for p in sorted(candidates, key=lambda p: -p.stack_level):
            v = p.value_at(t, ctx.tx_start, self.offline_since)
            if v is None:
                continue
            unit = p.schedule.rate_unit
            if v.phase_limits is not None:  # per phase, in W too
                a1, a2, a3 = (to_amps(x, unit, ctx.voltage_v, 1) for x in v.phase_limits)
                return a1, a2, a3
            a = to_amps(v.limit, unit, ctx.voltage_v, min(ctx.phases, v.number_phases or 3))
            return a, a, a
        return None

    def _amps(self, candidates: list[Profile], t: datetime, ctx: ConnectorContext) -> float | None:
        per_phase = self._phases_a(candidates, t, ctx)
        return None if per_phase is None else min(per_phase[: max(1, ctx.lines or ctx.phases)])

    def connector_limit_a(self, connector: int, t: datetime, ctx: ConnectorContext) -> float | None:
        """Tx or TxDefault limit for the connector (per phase, A), None if none applies."""
        per_phase = self.connector_phases_a(connector, t, ctx)
        return None if per_phase is None else min(per_phase[: max(1, ctx.lines or ctx.phases)])

    def connector_phases_a(
        self, connector: int, t: datetime, ctx: ConnectorContext
    ) -> tuple[float, float, float] | None:
        """Tx or TxDefault limit on each of the station's phases (A), None if none applies."""
        by = [p for p in self.profiles.values() if p.is_valid(t, self.offline_since)]
        if ctx.transaction_id is not None:
            tx = [
                p
                for p in by
                if p.purpose is Purpose.TX
                and p.connector == connector
                and p.transaction_id in (None, ctx.transaction_id)
            ]
            amps = self._phases_a(tx, t, ctx)
            if amps is not None:
                return amps
        for where in (connector, 0):
            default = [p for p in by if p.purpose is Purpose.TX_DEFAULT and p.connector == where]
            amps = self._phases_a(default, t, ctx)
            if amps is not None:
                return amps
        return None

    def station_limit_a(self, t: datetime, ctx: ConnectorContext) -> float | None:
        """Station-wide max (per phase, A), None if none applies."""
        mx = [p for p in self.profiles.values() if p.purpose is Purpose.STATION_MAX]
        return self._amps(mx, t, ctx)

    def limit_a(
        self, connector: int, t: datetime, ctx: ConnectorContext, connector_max_a: float
    ) -> float:
        """The limit in force at t: min(Tx|TxDefault, station max, connector max)."""
        out = connector_max_a
        for v in (self.connector_limit_a(connector, t, ctx), self.station_limit_a(t, ctx)):
            if v is not None:
                out = min(out, v)
        return max(out, 0.0)

    def breakpoints(
        self, start: datetime, end: datetime, tx_start: datetime | None
    ) -> list[datetime]:
        """Every time in [start, end) where some profile's value may change."""
        out = {start}
        for p in self.profiles.values():
            for b in (p.valid_from, p.valid_to, p.dynamic_expiry()):
                if b is not None:
                    out.add(b)
            t = start
            while t < end:
                anchor = p.anchor(t, tx_start)
                if anchor is None:
                    break
                delay = p.schedule.randomized_delay_s
                for q in p.schedule.periods:
                    out.add(anchor + timedelta(seconds=q.start_s + delay))
                if p.schedule.duration_s is not None:
                    out.add(anchor + timedelta(seconds=p.schedule.duration_s))
                if p.kind is not Kind.RECURRING:
                    break
                t = anchor + _RECURRENCE.get(p.recurrency or "Daily", timedelta(days=1))
                out.add(t)
        return sorted(b for b in out if start <= b < end)

    def composite(
        self,
        connector: int,
        start: datetime,
        duration_s: int,
        ctx: ConnectorContext,
        connector_max_a: float,
        unit: str = "A",
    ) -> list[Period]:
        """GetCompositeSchedule: the limits the station will apply, equal neighbours merged.

        Connector 0 gives the station max alone.
        """
        end = start + timedelta(seconds=duration_s)
        out: list[Period] = []
        for b in self.breakpoints(start, end, ctx.tx_start):
            if connector == 0:
                amps = self.station_limit_a(b, ctx)
                a = connector_max_a if amps is None else min(amps, connector_max_a)
            else:
                a = self.limit_a(connector, b, ctx, connector_max_a)
            value = a if unit == "A" else a * ctx.voltage_v * ctx.phases
            value = math.floor(value * 10 + 1e-9) / 10  # one decimal, never above the limit
            if out and out[-1].limit == value:
                continue
            offset = int((b - start).total_seconds())
            if out and out[-1].start_s == offset:
                out[-1] = Period(offset, value, ctx.phases)
            else:
                out.append(Period(offset, value, ctx.phases))
        return out
