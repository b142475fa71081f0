"""Retention settings: durations written as people write them, one-line errors."""

from __future__ import annotations

from datetime import timedelta

import pytest

from gridshare.retention import RetentionConfig, RetentionError, parse_duration


def test_durations():
    assert parse_duration("7d") == timedelta(days=7)
    assert parse_duration(" 12h ") == timedelta(hours=12)
    assert parse_duration("15m") == timedelta(minutes=15)
    assert parse_duration("forever") is None


def test_defaults():
    c = RetentionConfig()
    assert c.horizon("raw_meter_values") == timedelta(days=7)
    assert c.period("rollup_interval") == timedelta(minutes=15)
    assert c.horizon("rollups") is None
    assert (c.plans, c.events, c.oscp_messages, c.ended_sessions, c.profiles) == (
        "30d",
        "365d",
        "90d",
        "365d",
        "30d",
    )


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("plans", "7x", "retention.plans: '7x' is not a duration like 7d, 12h or 15m"),
        ("events", "0d", "retention.events: '0d' is not a duration like 7d, 12h or 15m"),
        ("profiles", 30, "retention.profiles: 30 is not a duration like 7d, 12h or 15m"),
        (
            "rollup_interval",
            "forever",
            "retention.rollup_interval: 'forever' is not a duration like 7d, 12h or 15m",
        ),
        (
            "rollup_interval",
            "90s",
            "retention.rollup_interval: '90s' is not a whole number of minutes",
        ),
        ("plan", "7d", "retention.plan: Extra inputs are not permitted"),
    ],
)
def test_a_bad_setting_is_named_in_one_line(field: str, value: object, message: str):
    with pytest.raises(RetentionError) as e:
        RetentionConfig.parse({field: value})
    assert str(e.value) == message
