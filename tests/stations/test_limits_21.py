"""What a simulated 2.1 station makes of 2.1's per-phase limits, randomized delay and
offline bound (profiles written by hand, checked against the official 2.1 schema)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import jsonschema
import pytest

from gridshare.peers.limits import ConnectorContext, ProfileStore, profile_from_v21
from ocpp_adapter.rpc import OcppVersion, load_schema

T0 = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
MAX_A = 32.0


def ctx(lines: int, phases: int | None = None) -> ConnectorContext:
    """A car loading the station's first ``lines`` phases."""
    power_phases = phases if phases is not None else (3 if lines == 3 else 1)
    return ConnectorContext(230.0, power_phases, "T-1", T0, lines)


def profile(
    pid: int,
    purpose: str,
    periods: list[dict[str, Any]],
    *,
    unit: str = "A",
    stack: int = 0,
    **extra: Any,
) -> dict[str, Any]:
    schedule: dict[str, Any] = {
        "id": pid,
        "startSchedule": T0.isoformat().replace("+00:00", "Z"),
        "chargingRateUnit": unit,
        "chargingSchedulePeriod": periods,
    }
    if "randomizedDelay" in extra:
        schedule["randomizedDelay"] = extra.pop("randomizedDelay")
    raw = {
        "id": pid,
        "stackLevel": stack,
        "chargingProfilePurpose": purpose,
        "chargingProfileKind": "Absolute",
        "chargingSchedule": [schedule],
        **extra,
    }
    if purpose == "TxProfile":
        raw["transactionId"] = "T-1"
    schema = load_schema(OcppVersion.V21, "SetChargingProfile", response=False)
    jsonschema.validate({"evseId": 1, "chargingProfile": raw}, schema)
    return raw


def store_with(*raws: dict[str, Any]) -> ProfileStore:
    store = ProfileStore()
    for raw in raws:
        store.install(profile_from_v21(1, raw), active_tx="T-1", max_connector=2, v201=True)
    return store


def test_a_car_gets_the_lowest_limit_of_the_phases_it_loads() -> None:
    per_phase = {"startPeriod": 0, "limit": 16.0, "limit_L2": 0.0, "limit_L3": 0.0}
    store = store_with(profile(1, "TxProfile", [per_phase]))
    assert store.limit_a(1, T0, ctx(1), MAX_A) == 16.0  # a one-phase car: L1 alone
    assert store.limit_a(1, T0, ctx(3), MAX_A) == 0.0  # a three-phase car: L2 and L3 hold it
    uneven = {"startPeriod": 0, "limit": 20.0, "limit_L2": 12.0, "limit_L3": 16.0}
    store = store_with(profile(1, "TxProfile", [uneven]))
    assert store.limit_a(1, T0, ctx(3), MAX_A) == 12.0
    assert store.limit_a(1, T0, ctx(2, phases=1), MAX_A) == 12.0  # a line pair: L1, L2
    # without L2/L3 the one figure holds on every phase, as in 2.0.1
    store = store_with(profile(1, "TxProfile", [{"startPeriod": 0, "limit": 10.0}]))
    assert store.limit_a(1, T0, ctx(1), MAX_A) == store.limit_a(1, T0, ctx(3), MAX_A) == 10.0


def test_per_phase_watts_are_each_phases_own() -> None:
    per_phase = {"startPeriod": 0, "limit": 3680.0, "limit_L2": 0.0, "limit_L3": 0.0}
    store = store_with(profile(1, "TxProfile", [per_phase], unit="W"))
    assert store.limit_a(1, T0, ctx(1), MAX_A) == pytest.approx(16.0)
    # a total in W without L2/L3 is shared by the phases in use, as before
    total = {"startPeriod": 0, "limit": 11040.0, "numberPhases": 3}
    store = store_with(profile(1, "TxProfile", [total], unit="W"))
    assert store.limit_a(1, T0, ctx(3), MAX_A) == pytest.approx(16.0)


def test_randomized_delay_starts_each_period_as_late_as_allowed() -> None:
    periods = [{"startPeriod": 0, "limit": 10.0}, {"startPeriod": 600, "limit": 20.0}]
    store = store_with(
        profile(1, "TxDefaultProfile", [{"startPeriod": 0, "limit": 6.0}]),
        profile(2, "TxProfile", periods, randomizedDelay=60),
    )
    # the first period too: until it starts the profile gives nothing, the default holds
    assert store.limit_a(1, T0 + timedelta(seconds=59), ctx(3), MAX_A) == 6.0
    assert store.limit_a(1, T0 + timedelta(seconds=60), ctx(3), MAX_A) == 10.0
    assert store.limit_a(1, T0 + timedelta(seconds=630), ctx(3), MAX_A) == 10.0
    assert store.limit_a(1, T0 + timedelta(seconds=660), ctx(3), MAX_A) == 20.0
    composite = store.composite(1, T0, 1200, ctx(3), MAX_A)
    assert [(p.start_s, p.limit) for p in composite] == [(0, 6.0), (60, 10.0), (660, 20.0)]


@pytest.mark.parametrize("invalid_after", [True, False])
def test_offline_too_long_falls_back_to_the_default(invalid_after: bool) -> None:
    store = store_with(
        profile(1, "TxDefaultProfile", [{"startPeriod": 0, "limit": 8.0}]),
        profile(
            2,
            "TxProfile",
            [{"startPeriod": 0, "limit": 24.0}],
            stack=1,
            maxOfflineDuration=300,
            invalidAfterOfflineDuration=invalid_after,
        ),
    )
    cut = T0 + timedelta(minutes=10)
    store.offline(cut)
    assert store.limit_a(1, cut + timedelta(seconds=299), ctx(3), MAX_A) == 24.0
    assert store.limit_a(1, cut + timedelta(seconds=300), ctx(3), MAX_A) == 8.0
    back = cut + timedelta(seconds=400)
    store.online(back)
    # invalid for good, or valid again once the link is back
    assert store.limit_a(1, back, ctx(3), MAX_A) == (8.0 if invalid_after else 24.0)
    # a short cut changes nothing, even for a profile invalid after a long one
    store.offline(back)
    store.online(back + timedelta(seconds=10))
    assert store.limit_a(1, back + timedelta(seconds=10), ctx(3), MAX_A) == (
        8.0 if invalid_after else 24.0
    )


def test_a_profile_without_an_offline_bound_outlives_any_cut() -> None:
    store = store_with(profile(1, "TxProfile", [{"startPeriod": 0, "limit": 24.0}]))
    store.offline(T0)
    assert store.limit_a(1, T0 + timedelta(days=1), ctx(3), MAX_A) == 24.0


def test_what_gridshare_sends_is_in_force_on_receipt_and_never_raised_early() -> None:
    """The adapter's 2.1 profile, evaluated as a station that delays every period by the
    whole randomizedDelay: the first limit holds at once, the raising comes late."""
    from ocpp_adapter.events import ChargingLimitSpec, LimitPeriod, LimitPurpose
    from ocpp_adapter.profiles import OfflinePolicy, charging_profile_21, resolve

    spec = ChargingLimitSpec(
        LimitPurpose.TX, 1, T0, (LimitPeriod(0, 10.0, 3), LimitPeriod(900, 16.0, 3)), "T-1"
    )
    schedule = resolve(spec, None, T0)
    raw = charging_profile_21(spec, schedule, OfflinePolicy(300, 30))
    store = store_with(profile(9, "TxDefaultProfile", [{"startPeriod": 0, "limit": 6.0}]), raw)
    assert store.limit_a(1, T0, ctx(3), MAX_A) == 10.0
    raise_at = T0 + timedelta(seconds=900)
    assert store.limit_a(1, raise_at - timedelta(seconds=1), ctx(3), MAX_A) == 10.0
    assert store.limit_a(1, raise_at + timedelta(seconds=31), ctx(3), MAX_A) == 16.0
