"""A session's demand is kept between re-plans while nothing it is made of
changes, and is the demand built afresh whenever anything does."""

from __future__ import annotations

from datetime import timedelta

import pytest

from forecasts.demand import DemandDefaults
from gridshare.rollout import LimitBook
from gridshare.site.problem import DemandCache, demand_of
from gridshare.site.state import SessionState, SiteState
from tests.service.sites import NOW, small_depot


class NoRecords:
    def session(self, station_id: str, transaction_id: str) -> None:
        return None

    def past_sessions(self, id_tag: str, limit: int = 20) -> list[object]:
        return []


def rig() -> tuple[SiteState, SessionState, DemandCache]:
    site = small_depot(2)
    state = SiteState(
        site,
        LimitBook(site),
        NoRecords(),  # type: ignore[arg-type]
        known_stations=(),
        defaults=DemandDefaults(dwell_hours=4, energy_kwh=40),
    )
    s = SessionState(
        "t1",
        "CP1/1",
        "tag",
        NOW - timedelta(minutes=30),
        1000.0,
        energy_wh=3000.0,
        est_departure=NOW + timedelta(hours=3),
        est_energy_kwh=30.0,
    )
    state.sessions["CP1/1"] = s
    return state, s, DemandCache(state)


def test_an_unchanged_session_keeps_its_demand() -> None:
    state, s, cache = rig()
    first = cache(s, NOW)
    assert cache(s, NOW + timedelta(seconds=30)) is first
    assert first == demand_of(s, NOW + timedelta(seconds=30), state.defaults)


@pytest.mark.parametrize(
    "change",
    [
        lambda s: setattr(s, "energy_wh", 4000.0),
        lambda s: setattr(s, "ev_max_current_a", 16.0),
        lambda s: setattr(s, "ev_min_current_a", 8.0),
        lambda s: setattr(s, "priority", 2.0),
        lambda s: setattr(s, "departure", NOW + timedelta(hours=1)),
        lambda s: setattr(s, "energy_need_wh", 20_000.0),
        lambda s: setattr(s.rate, "rate_a", 10.0),
    ],
)
def test_a_changed_session_gets_its_demand_built_afresh(change: object) -> None:
    state, s, cache = rig()
    first = cache(s, NOW)
    change(s)  # type: ignore[operator]
    again = cache(s, NOW)
    assert again is not first
    assert again == demand_of(s, NOW, state.defaults)


def test_a_departure_due_now_is_never_kept() -> None:
    """Past its departure a car stays longer, counted from ``now``."""
    state, s, cache = rig()
    late = NOW + timedelta(hours=3)
    first = cache(s, late)
    later = late + timedelta(minutes=5)
    again = cache(s, later)
    assert again is not first
    assert again == demand_of(s, later, state.defaults)


def test_a_session_that_ended_is_forgotten() -> None:
    state, s, cache = rig()
    first = cache(s, NOW)
    del state.sessions["CP1/1"]
    cache.keep_only(state.sessions)
    state.sessions["CP1/1"] = s
    assert cache(s, NOW) is not first
