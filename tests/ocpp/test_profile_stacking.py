"""Station-wide and connector-level TxDefaultProfiles side by side: distinct
stack levels and ids, the limits in force the fallback policy means, and
clearing that removes only the one it names. Checked against the simulated
stations' profile store, which resolves limits as OCPP 1.6 §3.13 / 2.0.1 K08
describe and refuses what a 2.0.1 station refuses (K01.FR.52/53)."""

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
from ocpp_adapter.events import ChargingLimitSpec, LimitPeriod, LimitPurpose, StationCapabilities
from ocpp_adapter.profiles import (
    LimitSpecError,
    clear_profile_16,
    clear_profile_201,
    resolve,
    set_profile_16,
    set_profile_201,
)
from ocpp_adapter.rpc import OcppVersion

NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
NO_TX = ConnectorContext(230.0, 3)
V16, V201 = OcppVersion.V16, OcppVersion.V201


def default(connector: int, limit_a: float) -> ChargingLimitSpec:
    return ChargingLimitSpec(
        LimitPurpose.TX_DEFAULT,
        connector,
        NOW - timedelta(minutes=1),
        (LimitPeriod(0, limit_a, 3),),
    )


def wire(version: OcppVersion, spec: ChargingLimitSpec) -> dict[str, Any]:
    schedule = resolve(spec, None, NOW)
    return set_profile_16(spec, schedule) if version is V16 else set_profile_201(spec, schedule)


def install(store: ProfileStore, version: OcppVersion, payload: dict[str, Any]) -> None:
    if version is V16:
        profile = profile_from_v16(payload["connectorId"], payload["csChargingProfiles"])
    else:
        profile = profile_from_v201(payload["evseId"], payload["chargingProfile"])
    store.install(profile, active_tx=None, max_connector=2, v201=version is V201)


def _profile(version: OcppVersion, payload: dict[str, Any]) -> dict[str, Any]:
    key = "csChargingProfiles" if version is V16 else "chargingProfile"
    return dict(payload[key])


@pytest.mark.parametrize("version", [V16, V201])
def test_station_and_connector_defaults_have_distinct_levels_and_ids(version: OcppVersion) -> None:
    station = _profile(version, wire(version, default(0, 10)))
    own = [_profile(version, wire(version, default(n, 6))) for n in (1, 2)]
    assert all(p["stackLevel"] > station["stackLevel"] for p in own)
    id_key = "chargingProfileId" if version is V16 else "id"
    assert len({station[id_key], *(p[id_key] for p in own)}) == 3


@pytest.mark.parametrize("version", [V16, V201])
@pytest.mark.parametrize("station_first", [True, False])
def test_both_defaults_are_kept_and_the_connectors_own_is_in_force_on_it(
    version: OcppVersion, station_first: bool
) -> None:
    store = ProfileStore()
    sends = [wire(version, default(0, 10)), wire(version, default(1, 6))]
    for payload in sends if station_first else sends[::-1]:
        install(store, version, payload)  # a 2.0.1 station refused the second before
    assert len(store.profiles) == 2
    assert store.limit_a(1, NOW, NO_TX, 32) == 6  # the connector's own
    assert store.limit_a(2, NOW, NO_TX, 32) == 10  # the station's
    # raising the connector's own above the station's share still takes effect
    install(store, version, wire(version, default(1, 16)))
    assert store.limit_a(1, NOW, NO_TX, 32) == 16
    assert len(store.profiles) == 2


@pytest.mark.parametrize("version", [V16, V201])
def test_clearing_the_connectors_default_leaves_the_station_one(version: OcppVersion) -> None:
    store = ProfileStore()
    install(store, version, wire(version, default(0, 10)))
    install(store, version, wire(version, default(1, 6)))
    if version is V16:
        crit = clear_profile_16(1, LimitPurpose.TX_DEFAULT)
        cleared = store.clear(connector=crit["connectorId"], purpose=Purpose.TX_DEFAULT)
    else:
        crit = clear_profile_201(1, LimitPurpose.TX_DEFAULT)["chargingProfileCriteria"]
        cleared = store.clear(connector=crit["evseId"], purpose=Purpose.TX_DEFAULT)
    assert cleared
    assert [p.connector for p in store.profiles.values()] == [0]
    assert store.limit_a(1, NOW, NO_TX, 32) == 10


def test_a_201_station_refuses_tx_defaults_sharing_a_level() -> None:
    store = ProfileStore()
    same = wire(V201, default(0, 10))
    install(store, V201, same)
    clash = wire(V201, default(1, 6))
    clash["chargingProfile"]["stackLevel"] = same["chargingProfile"]["stackLevel"]
    with pytest.raises(ProfileError, match="DuplicateTxDefaultProfileFound"):
        install(store, V201, clash)


def test_a_station_with_a_single_level_gets_no_clashing_default() -> None:
    one_level = StationCapabilities("CP", NOW, ("A",), None, 0)
    assert resolve(default(0, 10), one_level, NOW).periods
    with pytest.raises(LimitSpecError):
        resolve(default(1, 6), one_level, NOW)
