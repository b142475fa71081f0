"""Bidirectional EVs in the simulated 2.1 stations (`gridshare.peers.v2x`): a car
announcing BPT follows the CentralSetpoint gridshare sends, its battery going
down, never below its driver's minimum, its import meter never negative."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from gridshare.peers.connectors import ConnectorBank
from gridshare.peers.ev import Ev, EvSpec
from gridshare.peers.specs import SimConnectorSpec, SimStationSpec
from gridshare.peers.station_messages import MESSAGES, charging_needs, sampled_values
from ocpp_adapter.events import ChargingLimitSpec, LimitPeriod, LimitPurpose
from ocpp_adapter.profiles import OfflinePolicy, resolve, set_profile_21
from ocpp_adapter.v2x import read_needs
from tests.ocpp.test_v21 import V21, official

T0 = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
CAR = EvSpec(battery_kwh=60.0, soc_start=0.5, max_discharge_a=16.0, v2x_min_soc=0.45, lag_s=0)


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


def bank_with_car(car: EvSpec = CAR) -> tuple[ConnectorBank, Clock]:
    clock = Clock()
    spec = SimStationSpec("CP1", (SimConnectorSpec(1),), version="2.1")
    bank = ConnectorBank(spec, clock)
    c = bank.connector(1)
    c.ev, c.in_tx, c.tx_id, c.tx_start = Ev.plugged(car), True, "T-1", T0
    return bank, clock


def send(bank: ConnectorBank, *amps: float) -> None:
    """The profile gridshare's adapter writes for these 15-minute periods."""
    spec = ChargingLimitSpec(
        LimitPurpose.TX,
        1,
        T0,
        tuple(LimitPeriod(i * 900, a, 3) for i, a in enumerate(amps)),
        transaction_id="T-1",
    )
    payload = set_profile_21(spec, resolve(spec, None, T0, backdate_s=0), OfflinePolicy(None, 0))
    official(V21, "SetChargingProfile", payload)
    assert bank.install(1, payload["chargingProfile"]) is None


def test_a_bidirectional_car_follows_the_setpoint_then_charges_again() -> None:
    bank, clock = bank_with_car()
    c = bank.connector(1)
    send(bank, -16.0, 10.0)
    clock.now = T0 + timedelta(minutes=15)
    bank.advance()
    expected_wh = 16.0 * 230 * 3 * 0.25
    assert c.export_wh == pytest.approx(expected_wh, rel=1e-6)
    assert c.energy_wh == 0.0  # the import register does not go down
    assert c.ev is not None and c.ev.soc == pytest.approx(0.5 - expected_wh / 60_000, rel=1e-6)
    # its meter reports no negative import while it discharges
    values = sampled_values(MESSAGES["2.1"], c, ["Current.Import", "Power.Active.Import"], "x")
    assert all(float(v["value"]) >= 0 for v in values)
    clock.now = T0 + timedelta(minutes=30)
    bank.advance()
    assert c.energy_wh > 0 and c.ev.current_a == pytest.approx(10.0)


def test_never_below_the_driver_s_minimum() -> None:
    bank, clock = bank_with_car()
    c = bank.connector(1)
    send(bank, -16.0)
    clock.now = T0 + timedelta(hours=2)
    bank.advance()
    assert c.ev is not None and c.ev.soc == pytest.approx(CAR.v2x_min_soc)
    assert c.export_wh == pytest.approx(0.05 * 60_000)


def test_a_charge_only_car_ignores_a_setpoint() -> None:
    bank, clock = bank_with_car(EvSpec(soc_start=0.5, lag_s=0))
    send(bank, -16.0)
    clock.now = T0 + timedelta(minutes=15)
    bank.advance()
    assert bank.connector(1).export_wh == 0.0


def test_its_needs_announce_bpt_within_the_schema_and_read_back() -> None:
    bank, _ = bank_with_car()
    c = bank.connector(1)
    c.energy_need_wh = 6000.0
    payload = charging_needs(c, "2.1")
    official(V21, "NotifyEVChargingNeeds", payload)
    got = read_needs(payload["chargingNeeds"])
    assert got is not None and got.max_discharge_a == CAR.max_discharge_a
    assert got.min_v2x_energy_wh == pytest.approx(-0.05 * 60_000)
    assert payload["chargingNeeds"]["v2xChargingParameters"]["evTargetEnergyRequest"] == 6000
    assert "v2xChargingParameters" not in charging_needs(c, "2.0.1")["chargingNeeds"]
