"""OCPP 2.1 V2X (`ocpp_adapter.v2x`): a discharge goes out as a CentralSetpoint
valid against the official 2.1 schema, never to an older station and never
Dynamic; a car announcing BPT is read as bidirectional."""

from __future__ import annotations

from typing import Any

import jsonschema
import pytest

from ocpp_adapter.dynamic import applies
from ocpp_adapter.events import (
    ChargingLimitSpec,
    CommandOutcome,
    EvChargingNeeds,
    LimitPeriod,
    LimitPurpose,
    StationCapabilities,
)
from ocpp_adapter.profiles import (
    LimitSpecError,
    resolve,
    set_profile_16,
    set_profile_21,
    set_profile_201,
)
from ocpp_adapter.v2x import read_needs
from tests.ocpp.helpers import TS, running, station
from tests.ocpp.test_v21 import NOW, POLICY, V21, official, periods


def spec(*limits: float, phases: int = 3, used: tuple[int, ...] | None = None) -> ChargingLimitSpec:
    return ChargingLimitSpec(
        LimitPurpose.TX,
        1,
        NOW,
        tuple(LimitPeriod(i * 900, a, phases) for i, a in enumerate(limits)),
        transaction_id="T-1",
        station_phases=used,
    )


AMPS = StationCapabilities("CP1", NOW, rate_units=("A",), max_periods=10)


def test_a_discharge_is_a_central_setpoint_within_the_schema() -> None:
    s = spec(0.0, -16.0, -10.05, 12.0)
    payload = set_profile_21(s, resolve(s, AMPS, NOW), POLICY)
    official(V21, "SetChargingProfile", payload)
    first, dis, less, charge = periods(payload)
    assert "operationMode" not in first and first["limit"] == 0.0
    for p, amps in ((dis, 16.0), (less, 10.0)):  # rounded toward 0: never more than planned
        assert p["operationMode"] == "CentralSetpoint"
        assert p["limit"] == 0.0
        for suffix in ("", "_L2", "_L3"):
            assert p[f"setpoint{suffix}"] == -amps
            assert p[f"dischargeLimit{suffix}"] == -amps
    assert charge["limit"] == 12.0 and "setpoint" not in charge


def test_a_one_phase_car_discharges_on_its_phase_only() -> None:
    s = spec(-16.0, used=(1,))
    [p] = periods(set_profile_21(s, resolve(s, AMPS, NOW), POLICY))
    assert (p["setpoint"], p["setpoint_L2"], p["setpoint_L3"]) == (-16.0, 0.0, 0.0)
    assert (p["dischargeLimit"], p["dischargeLimit_L2"]) == (-16.0, 0.0)
    assert (p["limit"], p["limit_L2"], p["limit_L3"]) == (0.0, 0.0, 0.0)


def test_in_watts_the_setpoint_is_the_total_rounded_toward_zero() -> None:
    s = spec(-10.0)
    watts = StationCapabilities("CP1", NOW, rate_units=("W",))
    payload = set_profile_21(s, resolve(s, watts, NOW), POLICY)
    official(V21, "SetChargingProfile", payload)
    [p] = periods(payload)
    assert p["setpoint"] == p["dischargeLimit"] == -10.0 * 230 * 3
    assert "setpoint_L2" not in p and p["limit"] == 0.0


def test_older_versions_and_dynamic_profiles_never_carry_a_discharge() -> None:
    s = spec(-16.0)
    for build in (set_profile_16, set_profile_201):
        with pytest.raises(LimitSpecError, match=r"2\.1"):
            build(s, resolve(s, AMPS, NOW))
    assert not applies(s) and applies(spec(16.0))
    # a discharge is never held for ever past the station's period count
    many = spec(10.0, -16.0, -16.0, -8.0, phases=3)
    short = resolve(many, StationCapabilities("CP1", NOW, max_periods=2), NOW)
    assert short.periods[-1][1] == 0.0


def test_the_package_s_key_conversion_would_break_the_setpoint_names() -> None:
    s = spec(-16.0)
    payload = set_profile_21(s, resolve(s, AMPS, NOW), POLICY)
    [p] = periods(payload)
    p["setpointL2"] = p.pop("setpoint_L2")
    with pytest.raises(jsonschema.ValidationError, match="setpointL2"):
        official(V21, "SetChargingProfile", payload)


def needs_bpt(**v2x: Any) -> dict[str, Any]:
    return {
        "evseId": 1,
        "timestamp": TS,
        "chargingNeeds": {
            "requestedEnergyTransfer": "AC_BPT",
            "availableEnergyTransfer": ["AC_three_phase", "AC_BPT"],
            "controlMode": "DynamicControl",
            "departureTime": "2026-03-02T17:00:00Z",
            "v2xChargingParameters": {
                "evTargetEnergyRequest": 20000,
                "minChargeCurrent": 6,
                "maxChargeCurrent": 32,
                "maxDischargeCurrent": 16,
                "evMinV2XEnergyRequest": -8000,
                "evMaxV2XEnergyRequest": 30000,
                **v2x,
            },
        },
    }


def test_bpt_needs_are_read_and_others_are_not() -> None:
    got = read_needs(needs_bpt()["chargingNeeds"])
    assert got is not None
    assert (got.max_discharge_a, got.min_v2x_energy_wh, got.max_v2x_energy_wh) == (
        16.0,
        -8000.0,
        30000.0,
    )
    plain = needs_bpt()["chargingNeeds"] | {"requestedEnergyTransfer": "AC_three_phase"}
    assert read_needs(plain) is None
    # bidirectional but no discharge figure: nothing to plan with
    assert read_needs(needs_bpt(maxDischargeCurrent=0)["chargingNeeds"]) is None
    watts = read_needs(needs_bpt(maxDischargeCurrent=None, maxDischargePower=7400)["chargingNeeds"])
    assert watts is not None and watts.max_discharge_w == 7400.0


async def test_a_21_station_announces_bpt_and_accepts_a_setpoint() -> None:
    async with running() as (cs, rec), station(cs, "CP1", V21) as st:
        await st.boot()
        official(V21, "NotifyEVChargingNeeds", needs_bpt())
        assert await st.call("NotifyEVChargingNeeds", needs_bpt()) == {"status": "Accepted"}
        s = ChargingLimitSpec(
            LimitPurpose.TX, 1, cs.clock(), (LimitPeriod(0, -16.0, 3),), transaction_id="T-1"
        )
        assert (await cs.set_limit("CP1", s)).outcome is CommandOutcome.ACCEPTED
        [sent] = st.sent("SetChargingProfile")  # Absolute, not Dynamic
        official(V21, "SetChargingProfile", sent)
        assert sent["chargingProfile"]["chargingProfileKind"] == "Absolute"
        [p] = sent["chargingProfile"]["chargingSchedule"][0]["chargingSchedulePeriod"]
        assert p["operationMode"] == "CentralSetpoint" and p["setpoint"] < 0
    [needs] = rec.of(EvChargingNeeds)
    assert needs.v2x is not None and needs.v2x.max_discharge_a == 16.0
    assert needs.energy_wh == 20000


async def test_after_a_discharge_a_charge_installs_a_dynamic_profile_again() -> None:
    """The Absolute CentralSetpoint profile replaced the Dynamic one of the same
    id at the station: the next charge installs a Dynamic profile anew rather
    than updating one the station no longer holds."""
    async with running() as (cs, _), station(cs, "CP1", V21) as st:
        await st.boot()
        for amps in (16.0, -16.0, 10.0):
            s = ChargingLimitSpec(
                LimitPurpose.TX, 1, cs.clock(), (LimitPeriod(0, amps, 3),), transaction_id="T-1"
            )
            assert (await cs.set_limit("CP1", s)).outcome is CommandOutcome.ACCEPTED
        kinds = [p["chargingProfile"]["chargingProfileKind"] for p in st.sent("SetChargingProfile")]
        assert kinds == ["Dynamic", "Absolute", "Dynamic"]
        assert st.sent("UpdateDynamicSchedule") == []
