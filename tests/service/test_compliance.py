"""Profiles that are really in force: the pure tracker and the composite read-back."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from gridshare.dso_link import ignoring_named
from gridshare.site.compliance import (
    ComplianceSettings,
    ComplianceTracker,
    Evidence,
    composite_limit_a,
    highest_line_a,
)

T0 = datetime(2026, 12, 7, 12, tzinfo=UTC)
S = ComplianceSettings(tolerance_a=2.0, response_s=10.0, meter_margin_s=1.0, clear_s=30.0)


def at(s: float) -> datetime:
    return T0 + timedelta(seconds=s)


def test_a_car_following_a_lowering_within_its_response_time_is_not_flagged() -> None:
    t = ComplianceTracker(S)
    assert t.reading("CP1/1", 32.0, 32.0, at(0)) is None
    # lowered to 16 A: the car takes 8 s to follow
    for s in range(1, 9):
        assert t.reading("CP1/1", 30.0, 16.0, at(s)) is None
    assert t.reading("CP1/1", 16.5, 16.0, at(9)) is None
    for s in range(10, 40):
        assert t.reading("CP1/1", 17.5, 16.0, at(s)) is None  # within the tolerance
    assert t.flags == {} and t.reserved() == {}


def test_a_car_over_its_limit_past_the_response_time_is_flagged_once_and_reserved() -> None:
    t = ComplianceTracker(S)
    changes = [t.reading("CP1/1", 32.0, 8.0, at(s)) for s in range(0, 20)]
    flagged = [(i, c) for i, c in enumerate(changes) if c is not None]
    assert len(flagged) == 1
    i, change = flagged[0]
    assert i == 11  # response 10 s + meter margin 1 s
    assert change.flagged and "32.0 A over its limit of 8.0 A (meter)" in change.detail
    assert t.reserved() == {"CP1/1": 32.0}
    # it draws more later: the reservation follows the draw
    assert t.reading("CP1/1", 30.0, 8.0, at(21)) is None
    assert t.reserved() == {"CP1/1": 30.0}


def test_a_flagged_car_within_its_limit_long_enough_follows_again() -> None:
    t = ComplianceTracker(S)
    for s in range(0, 12):
        t.reading("CP1/1", 32.0, 8.0, at(s))
    assert "CP1/1" in t.flags
    for s in range(12, 41):
        assert t.reading("CP1/1", 8.0, 8.0, at(s)) is None
    change = t.reading("CP1/1", 8.0, 8.0, at(42))
    assert change is not None and not change.flagged
    assert t.reserved() == {}


def test_an_interrupted_excess_starts_its_response_time_again() -> None:
    t = ComplianceTracker(S)
    for s in range(0, 8):
        assert t.reading("CP1/1", 32.0, 8.0, at(s)) is None
    assert t.reading("CP1/1", 8.0, 8.0, at(8)) is None
    for s in range(9, 19):
        assert t.reading("CP1/1", 32.0, 8.0, at(s)) is None
    assert t.reading("CP1/1", 32.0, 8.0, at(20)) is not None


def test_no_limit_in_force_is_nothing_to_check_and_an_ended_session_unflags() -> None:
    t = ComplianceTracker(S)
    for s in range(0, 30):
        assert t.reading("CP1/1", 32.0, None, at(s)) is None
    for s in range(30, 42):
        t.reading("CP1/1", 32.0, 8.0, at(s))
    assert "CP1/1" in t.flags
    change = t.ended("CP1/1")
    assert change is not None and not change.flagged and change.detail == "session ended"
    assert t.ended("CP1/1") is None


def test_a_composite_schedule_above_what_was_sent_flags_at_once() -> None:
    t = ComplianceTracker(S)
    assert t.composite("CP1/1", 16.0, 16.0, at(0)) is None
    assert t.composite("CP1/1", 10.0, 16.0, at(0)) is None  # lower: a local limit, safe
    change = t.composite("CP1/1", 32.0, 16.0, at(1))
    assert change is not None and change.flagged and "(composite)" in change.detail
    assert t.reserved() == {"CP1/1": 32.0}
    assert t.composite("CP1/1", 32.0, 16.0, at(2)) is None  # one change, not one per read
    # the meter agrees: both kinds of evidence; the draw does not lower what it may take
    t.reading("CP1/1", 20.0, 16.0, at(3))
    assert t.flags["CP1/1"].evidence == {Evidence.METER, Evidence.COMPOSITE}
    assert t.reserved() == {"CP1/1": 32.0}


def test_a_matching_read_back_clears_a_composite_only_flag() -> None:
    t = ComplianceTracker(S)
    t.composite("CP1/1", 32.0, 16.0, at(0))
    change = t.composite("CP1/1", 16.0, 16.0, at(60))
    assert change is not None and not change.flagged
    assert t.composite("CP1/1", None, 16.0, at(61)) is None
    assert t.composite("CP1/1", 32.0, None, at(61)) is None


def test_composite_answers_of_every_version_are_read_in_amperes() -> None:
    periods = [{"startPeriod": 60, "limit": 32.0}, {"startPeriod": 0, "limit": 16.0}]
    schedule = {"chargingRateUnit": "A", "chargingSchedulePeriod": periods}
    v16 = {"status": "Accepted", "chargingSchedule": schedule}
    v2 = {"status": "Accepted", "schedule": schedule}
    assert composite_limit_a(v16, 230.0) == 16.0
    assert composite_limit_a(v2, 230.0) == 16.0
    watts = {
        "status": "Accepted",
        "schedule": {
            "chargingRateUnit": "W",
            "chargingSchedulePeriod": [{"startPeriod": 0, "limit": 11040.0, "numberPhases": 3}],
        },
    }
    assert composite_limit_a(watts, 230.0) == pytest.approx(16.0)
    unreadable = {"chargingSchedulePeriod": [{"limit": "?"}]}
    bad_answers: list[dict[str, object] | None] = [
        None,
        {},
        {"status": "Rejected"},
        {"status": "Accepted", "schedule": "x"},
        {"status": "Accepted", "schedule": unreadable},
    ]
    for bad in bad_answers:
        assert composite_limit_a(bad, 230.0) is None


def test_the_draw_compared_is_the_highest_line() -> None:
    assert highest_line_a({"L1": 10.0, "L2": 16.0, "L3": 9.0}) == 16.0
    assert highest_line_a({}) is None


def test_a_compliance_error_names_the_offenders_that_ignore_their_profile() -> None:
    msg = "site group grid: measured 40.0 A on L1 over the limit of 32.0 A for 3 s"
    assert ignoring_named(msg, ["CP1/1"], {}) == msg
    flagged = {"CP2/1": "draws 32.0 A over its limit of 8.0 A (meter)", "CP9/1": "x"}
    named = ignoring_named(msg, ["CP1/1", "CP2/1"], flagged)
    assert named == f"{msg}; ignoring their profile: CP2/1"


def test_the_in_force_table_from_the_file_and_the_environment() -> None:
    from gridshare.config import ConfigError, parse_config

    site = {
        "site": {"name": "x"},
        "groups": [{"id": "g", "limit_a": 32}],
        "chargers": [{"id": "CP1", "group": "g", "connectors": [{"id": 1, "max_current_a": 32}]}],
    }
    env = {"GRIDSHARE_IN_FORCE__TOLERANCE_A": "3"}
    cfg = parse_config({**site, "in_force": {"ev_response_s": 5}}, "x.toml", environ=env)
    assert (cfg.in_force.ev_response_s, cfg.in_force.tolerance_a) == (5.0, 3.0)
    assert parse_config(site, environ={}).in_force.ev_response_s == 10.0
    with pytest.raises(ConfigError) as e:
        parse_config({**site, "in_force": {"ev_response_s": -1}}, "x.toml", environ={})
    assert "in_force.ev_response_s" in str(e.value)
