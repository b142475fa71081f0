"""The limit in force a station computes from its stored charging profiles."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from gridshare.peers.limits import (
    ConnectorContext,
    ProfileError,
    ProfileStore,
    Purpose,
    profile_from_v16,
    profile_from_v201,
)

T0 = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
CTX = ConnectorContext(voltage_v=230.0, phases=3, transaction_id="7", tx_start=T0)
NO_TX = ConnectorContext(voltage_v=230.0, phases=3)
MAX_A = 32.0


def _iso(t: datetime) -> str:
    return t.isoformat().replace("+00:00", "Z")


def v16(
    pid: int,
    purpose: str,
    limits: list[tuple[int, float]],
    *,
    stack: int = 0,
    kind: str = "Absolute",
    unit: str = "A",
    start: datetime | None = T0,
    **extra: Any,
) -> dict[str, Any]:
    sched: dict[str, Any] = {
        "chargingRateUnit": unit,
        "chargingSchedulePeriod": [{"startPeriod": s, "limit": lim} for s, lim in limits],
    }
    if start is not None and kind != "Relative":
        sched["startSchedule"] = _iso(start)
    for k in ("duration", "numberPhases"):
        if k in extra:
            if k == "numberPhases":
                for p in sched["chargingSchedulePeriod"]:
                    p["numberPhases"] = extra.pop(k)
            else:
                sched[k] = extra.pop(k)
    return {
        "chargingProfileId": pid,
        "stackLevel": stack,
        "chargingProfilePurpose": purpose,
        "chargingProfileKind": kind,
        "chargingSchedule": sched,
        **extra,
    }


def store_with(*items: tuple[int, dict[str, Any]], active_tx: str | None = "7") -> ProfileStore:
    store = ProfileStore()
    for connector, raw in items:
        store.install(profile_from_v16(connector, raw), active_tx=active_tx, max_connector=2)
    return store


def test_no_profile_gives_the_connector_max() -> None:
    assert ProfileStore().limit_a(1, T0, CTX, MAX_A) == MAX_A


def test_highest_stack_level_wins_and_falls_through_when_its_schedule_ends() -> None:
    store = store_with(
        (1, v16(1, "TxProfile", [(0, 20.0)], stack=0)),
        (1, v16(2, "TxProfile", [(0, 10.0)], stack=1, duration=600)),
    )
    assert store.limit_a(1, T0 + timedelta(minutes=5), CTX, MAX_A) == 10.0
    assert store.limit_a(1, T0 + timedelta(minutes=11), CTX, MAX_A) == 20.0


def test_same_stack_level_and_purpose_replaces() -> None:
    store = store_with(
        (1, v16(1, "TxProfile", [(0, 20.0)])),
        (1, v16(2, "TxProfile", [(0, 12.0)])),
    )
    assert list(store.profiles) == [2]
    assert store.limit_a(1, T0, CTX, MAX_A) == 12.0


def test_tx_profile_beats_tx_default_even_when_higher() -> None:
    store = store_with(
        (0, v16(1, "TxDefaultProfile", [(0, 8.0)], stack=5)),
        (1, v16(2, "TxProfile", [(0, 20.0)])),
    )
    assert store.limit_a(1, T0, CTX, MAX_A) == 20.0
    # connector 2 has no transaction: the station-wide TxDefault applies
    assert store.limit_a(2, T0, NO_TX, MAX_A) == 8.0


def test_connector_tx_default_overrides_connector_zero() -> None:
    store = store_with(
        (0, v16(1, "TxDefaultProfile", [(0, 8.0)], stack=3)),
        (2, v16(2, "TxDefaultProfile", [(0, 16.0)], stack=0)),
    )
    assert store.limit_a(2, T0, NO_TX, MAX_A) == 16.0
    assert store.limit_a(1, T0, NO_TX, MAX_A) == 8.0


def test_station_max_caps_the_tx_profile() -> None:
    store = store_with(
        (0, v16(1, "ChargePointMaxProfile", [(0, 14.0)])),
        (1, v16(2, "TxProfile", [(0, 20.0)])),
    )
    assert store.limit_a(1, T0, CTX, MAX_A) == 14.0


def test_tx_profile_for_another_transaction_does_not_apply() -> None:
    store = store_with((1, v16(1, "TxProfile", [(0, 6.0)], transactionId=7)))
    other = ConnectorContext(230.0, 3, transaction_id="8", tx_start=T0)
    assert store.limit_a(1, T0, other, MAX_A) == MAX_A
    assert store.limit_a(1, T0, CTX, MAX_A) == 6.0


def test_validity_window() -> None:
    store = store_with(
        (
            0,
            v16(
                1,
                "TxDefaultProfile",
                [(0, 10.0)],
                validFrom=_iso(T0 + timedelta(hours=1)),
                validTo=_iso(T0 + timedelta(hours=2)),
            ),
        )
    )
    assert store.limit_a(1, T0, NO_TX, MAX_A) == MAX_A
    assert store.limit_a(1, T0 + timedelta(minutes=90), NO_TX, MAX_A) == 10.0
    assert store.limit_a(1, T0 + timedelta(hours=2), NO_TX, MAX_A) == MAX_A


def test_watts_become_amps_by_voltage_and_phases_in_use() -> None:
    store = store_with((1, v16(1, "TxProfile", [(0, 6900.0)], unit="W")))
    assert store.limit_a(1, T0, CTX, MAX_A) == pytest.approx(10.0)
    one_phase = ConnectorContext(230.0, 1, transaction_id="7", tx_start=T0)
    assert store.limit_a(1, T0, one_phase, MAX_A) == pytest.approx(30.0)
    # numberPhases=1 in the schedule: the whole power on one phase
    store = store_with((1, v16(1, "TxProfile", [(0, 2300.0)], unit="W", numberPhases=1)))
    assert store.limit_a(1, T0, CTX, MAX_A) == pytest.approx(10.0)


def test_relative_profile_counts_from_the_transaction_start() -> None:
    store = store_with((1, v16(1, "TxProfile", [(0, 10.0), (1800, 20.0)], kind="Relative")))
    late = ConnectorContext(230.0, 3, transaction_id="7", tx_start=T0 + timedelta(hours=1))
    at = T0 + timedelta(hours=1, minutes=10)
    assert store.limit_a(1, at, late, MAX_A) == 10.0
    assert store.limit_a(1, at + timedelta(minutes=25), late, MAX_A) == 20.0


def test_daily_recurring_profile_repeats() -> None:
    night = v16(
        1,
        "TxDefaultProfile",
        [(0, 32.0), (10 * 3600, 10.0), (14 * 3600, 32.0)],
        kind="Recurring",
        recurrencyKind="Daily",
        start=datetime(2026, 3, 1, 0, 0, tzinfo=UTC),
    )
    store = store_with((0, night))
    for day in range(3):
        noon = datetime(2026, 3, 2 + day, 12, 0, tzinfo=UTC)
        assert store.limit_a(1, noon, NO_TX, MAX_A) == 10.0
        assert store.limit_a(1, noon + timedelta(hours=3), NO_TX, MAX_A) == 32.0


def test_install_rejects_what_the_spec_forbids() -> None:
    store = ProfileStore()
    with pytest.raises(ProfileError, match="no transaction"):
        store.install(
            profile_from_v16(1, v16(1, "TxProfile", [(0, 10.0)])), active_tx=None, max_connector=2
        )
    with pytest.raises(ProfileError, match="connector 0"):
        store.install(
            profile_from_v16(1, v16(1, "ChargePointMaxProfile", [(0, 10.0)])),
            active_tx=None,
            max_connector=2,
        )
    with pytest.raises(ProfileError, match="start at 0"):
        profile_from_v16(1, v16(1, "TxProfile", [(60, 10.0)]))
    with pytest.raises(ProfileError, match="no connector"):
        store.install(
            profile_from_v16(3, v16(1, "TxDefaultProfile", [(0, 10.0)])),
            active_tx=None,
            max_connector=2,
        )


def test_end_of_transaction_removes_its_tx_profile_only() -> None:
    store = store_with(
        (0, v16(1, "TxDefaultProfile", [(0, 8.0)])),
        (1, v16(2, "TxProfile", [(0, 20.0)])),
    )
    store.end_transaction(1)
    assert [p.purpose for p in store.profiles.values()] == [Purpose.TX_DEFAULT]


def test_clear_by_id_and_by_criteria() -> None:
    store = store_with(
        (0, v16(1, "TxDefaultProfile", [(0, 8.0)])),
        (0, v16(2, "TxDefaultProfile", [(0, 9.0)], stack=1)),
        (1, v16(3, "TxProfile", [(0, 20.0)])),
    )
    assert store.clear(profile_id=3)
    assert not store.clear(profile_id=3)
    assert store.clear(purpose=Purpose.TX_DEFAULT, stack_level=1)
    assert list(store.profiles) == [1]


def test_v201_profile_is_read_the_same_way() -> None:
    raw = {
        "id": 4,
        "stackLevel": 0,
        "chargingProfilePurpose": "ChargingStationMaxProfile",
        "chargingProfileKind": "Absolute",
        "chargingSchedule": [
            {
                "id": 1,
                "startSchedule": _iso(T0),
                "chargingRateUnit": "W",
                "chargingSchedulePeriod": [{"startPeriod": 0, "limit": 11040.0}],
            }
        ],
    }
    store = ProfileStore()
    store.install(profile_from_v201(0, raw), active_tx=None, max_connector=1)
    assert store.limit_a(1, T0, NO_TX, MAX_A) == pytest.approx(16.0)


def test_composite_schedule_merges_the_stack_and_the_max() -> None:
    store = store_with(
        (0, v16(1, "ChargePointMaxProfile", [(0, 25.0), (3600, 12.0)])),
        (1, v16(2, "TxProfile", [(0, 16.0), (1800, 30.0), (5400, 30.0)])),
    )
    periods = store.composite(1, T0, 7200, CTX, MAX_A)
    assert [(p.start_s, p.limit) for p in periods] == [(0, 16.0), (1800, 25.0), (3600, 12.0)]
    watts = store.composite(1, T0, 7200, CTX, MAX_A, unit="W")
    assert watts[0].limit == pytest.approx(16.0 * 230 * 3)


def test_composite_schedule_shows_the_tx_profile_ending() -> None:
    store = store_with(
        (0, v16(1, "TxDefaultProfile", [(0, 10.0)])),
        (1, v16(2, "TxProfile", [(0, 20.0)], duration=900)),
    )
    periods = store.composite(1, T0, 3600, CTX, MAX_A)
    assert [(p.start_s, p.limit) for p in periods] == [(0, 20.0), (900, 10.0)]
