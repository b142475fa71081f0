"""ChargingLimitSpec → profiles: anchoring, merging, truncation, units, both versions' shapes."""

from __future__ import annotations

import decimal
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import jsonschema
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ocpp_adapter.events import (
    ChargingLimitSpec,
    LimitPeriod,
    LimitPurpose,
    StationCapabilities,
)
from ocpp_adapter.profiles import (
    LimitSpecError,
    charging_profile_16,
    clear_profile_16,
    clear_profile_201,
    profile_id,
    resolve,
    set_profile_16,
    set_profile_201,
)
from ocpp_adapter.rpc import OcppVersion, load_schema

NOW = datetime(2026, 3, 2, 12, 0, 0, 400000, tzinfo=UTC)


def spec(
    *limits: float,
    purpose: LimitPurpose = LimitPurpose.TX,
    connector: int = 1,
    start: datetime = NOW,
    step: int = 900,
    phases: int = 3,
    tx: str | None = "42",
) -> ChargingLimitSpec:
    return ChargingLimitSpec(
        purpose,
        connector,
        start,
        tuple(LimitPeriod(i * step, a, phases) for i, a in enumerate(limits)),
        transaction_id=tx if purpose is LimitPurpose.TX else None,
    )


def caps(units: tuple[str, ...] = ("A",), periods: int | None = None) -> StationCapabilities:
    return StationCapabilities("CP", NOW, units, periods)


def strict(version: OcppVersion, action: str, payload: dict[str, Any]) -> None:
    """The published schema, multipleOf included (decimals parsed exactly, as the spec means)."""
    schema = load_schema(version, action, response=False)
    exact = json.loads(json.dumps(payload), parse_float=decimal.Decimal)
    schema = json.loads(json.dumps(schema), parse_float=decimal.Decimal)
    jsonschema.validators.validator_for(schema)(schema).validate(exact)


def test_backdated_start_and_whole_seconds() -> None:
    s = resolve(spec(16, 10), None, NOW)
    assert s.start == datetime(2026, 3, 2, 11, 59, 55, tzinfo=UTC)
    # NOW + 900 s is 905.4 s after the anchor: a lower limit is rounded to start earlier
    assert s.periods == ((0, 16.0, 3), (905, 10.0, 3))
    assert resolve(spec(10, 16), None, NOW).periods == ((0, 10.0, 3), (906, 16.0, 3))


def test_expired_periods_dropped_and_rest_shifted() -> None:
    s = resolve(spec(32, 20, 10, start=NOW - timedelta(seconds=1000)), None, NOW)
    # the 20 A period (900 s .. 1800 s) is in force at the anchor
    # the 10 A period starts at NOW + 800 s, i.e. 805.4 s after the anchor
    assert s.periods == ((0, 20.0, 3), (805, 10.0, 3))


def test_far_future_start_kept() -> None:
    later = NOW + timedelta(hours=2)
    s = resolve(spec(10, start=later.replace(microsecond=0)), None, NOW)
    assert s.start == later.replace(microsecond=0)


def test_equal_neighbours_merged() -> None:
    s = resolve(spec(16, 16, 16, 8, 8, 16), None, NOW)
    assert [v for _, v, _ in s.periods] == [16.0, 8.0, 16.0]


def test_phase_change_is_not_merged() -> None:
    sp = ChargingLimitSpec(
        LimitPurpose.TX, 1, NOW, (LimitPeriod(0, 16, 3), LimitPeriod(60, 16, 1)), "1"
    )
    assert [n for _, _, n in resolve(sp, None, NOW).periods] == [3, 1]


def test_truncated_to_max_periods_with_lowest_tail() -> None:
    s = resolve(spec(32, 30, 28, 6, 20), caps(periods=3), NOW)
    assert len(s.periods) == 3
    # the third period stays in force beyond its end: it takes the lowest cut-off limit
    assert [v for _, v, _ in s.periods] == [32.0, 30.0, 6.0]
    assert len(resolve(spec(*range(6, 40)), None, NOW, default_max_periods=24).periods) == 24


def test_watts_when_station_only_takes_w() -> None:
    s = resolve(spec(16, phases=1), caps(("W",)), NOW)
    assert s.unit == "W" and s.periods[0][1:] == (3680.0, 1)
    assert resolve(spec(16), caps(("A", "W")), NOW).unit == "A"


def test_rounded_down_to_one_decimal() -> None:
    assert resolve(spec(16.29), None, NOW).periods[0][1] == 16.2
    # negative: a V2X discharge setpoint (`ocpp_adapter.v2x`), rounded toward 0
    assert resolve(spec(-3.05), None, NOW).periods[0][1] == -3.0


@settings(deadline=None)  # no timed assertion on a shared machine
@given(st.lists(st.floats(min_value=0, max_value=80), min_size=1, max_size=40))
def test_never_above_the_plan(limits: list[float]) -> None:
    """At every period start of the spec, the schedule's limit is at most the spec's."""
    s = resolve(spec(*limits), caps(periods=5), NOW)
    anchor = s.start
    for i, a in enumerate(limits):
        t = (NOW + timedelta(seconds=i * 900) - anchor).total_seconds()
        in_force = [v for start, v, _ in s.periods if start <= t][-1]
        assert in_force <= a + 1e-9


@pytest.mark.parametrize("purpose", list(LimitPurpose))
def test_v16_payloads_valid(purpose: LimitPurpose) -> None:
    connector = 0 if purpose is LimitPurpose.STATION_MAX else 1
    sp = spec(16.3, 6.1, purpose=purpose, connector=connector)
    payload = set_profile_16(sp, resolve(sp, None, NOW))
    strict(OcppVersion.V16, "SetChargingProfile", payload)
    profile = payload["csChargingProfiles"]
    assert profile["chargingProfileId"] == profile_id(connector, purpose)
    assert profile["chargingSchedule"]["startSchedule"] == "2026-03-02T11:59:55Z"
    assert ("transactionId" in profile) == (purpose is LimitPurpose.TX)
    assert (
        profile["chargingProfilePurpose"]
        == {
            LimitPurpose.TX: "TxProfile",
            LimitPurpose.TX_DEFAULT: "TxDefaultProfile",
            LimitPurpose.STATION_MAX: "ChargePointMaxProfile",
        }[purpose]
    )
    assert profile["chargingSchedule"]["chargingSchedulePeriod"][0]["numberPhases"] == 3
    strict(OcppVersion.V16, "ClearChargingProfile", clear_profile_16(connector, purpose))


@pytest.mark.parametrize("purpose", list(LimitPurpose))
def test_v201_payloads_valid(purpose: LimitPurpose) -> None:
    connector = 0 if purpose is LimitPurpose.STATION_MAX else 1
    sp = spec(16.3, 6.1, purpose=purpose, connector=connector, tx="uuid-1")
    payload = set_profile_201(sp, resolve(sp, caps(("W",)), NOW))
    strict(OcppVersion.V201, "SetChargingProfile", payload)
    profile = payload["chargingProfile"]
    assert payload["evseId"] == connector
    assert profile["chargingProfilePurpose"] != "ChargingStationExternalConstraints"
    assert profile["chargingSchedule"][0]["chargingRateUnit"] == "W"
    assert profile.get("transactionId") == ("uuid-1" if purpose is LimitPurpose.TX else None)
    strict(OcppVersion.V201, "ClearChargingProfile", clear_profile_201(connector, purpose))


def test_stable_ids_differ_by_connector_and_purpose() -> None:
    ids = {profile_id(c, p) for c in range(0, 10) for p in LimitPurpose}
    assert len(ids) == 30
    assert profile_id(2, LimitPurpose.TX) == profile_id(2, LimitPurpose.TX)


@pytest.mark.parametrize(
    "bad",
    [
        spec(10, purpose=LimitPurpose.STATION_MAX, connector=1),
        spec(10, connector=0),
        spec(10, tx=None),
        spec(10, tx="not-an-int"),
    ],
)
def test_impossible_profiles_refused(bad: ChargingLimitSpec) -> None:
    with pytest.raises(LimitSpecError):
        set_profile_16(bad, resolve(bad, None, NOW))


def test_remote_start_profile_has_no_transaction() -> None:
    sp = spec(10, tx=None)
    profile = charging_profile_16(sp, resolve(sp, None, NOW), in_remote_start=True)
    assert "transactionId" not in profile
    strict(
        OcppVersion.V16,
        "RemoteStartTransaction",
        {"connectorId": 1, "idTag": "X", "chargingProfile": profile},
    )


def test_no_periods_refused() -> None:
    with pytest.raises(LimitSpecError):
        resolve(ChargingLimitSpec(LimitPurpose.TX, 1, NOW, (), "1"), None, NOW)


def test_stack_level_within_the_station_maximum() -> None:
    high = ChargingLimitSpec(LimitPurpose.TX, 1, NOW, (LimitPeriod(0, 6, 3),), "1", stack_level=4)
    stations_max = StationCapabilities("CP", NOW, ("A",), None, 3)
    with pytest.raises(LimitSpecError):
        resolve(high, stations_max, NOW)
    assert resolve(high, None, NOW).periods  # unknown maximum: the station decides
