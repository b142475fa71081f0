"""OCPP ``dateTime`` values: one rule for what is read as a time, used by the
schema checks (`ocpp_adapter.rpc`) and by the handlers (`ocpp_adapter.meter`).

Both versions send RFC 3339 date-times (``2026-03-02T12:00:00Z``, fractions of
any length, ``t``/``z``/space as RFC 3339 allows). OCPP 2.0.1 defines its
dateTime as RFC 3339, whose date-times always carry an offset: a time without
one is refused. OCPP 1.6 asks for UTC but many 1.6 stations leave the zone
out; there a zone-less time is read as UTC. Anything else ("yesterday", a date
alone, ISO week or basic forms) is not a time.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

_RFC3339 = re.compile(
    r"(\d{4}-\d{2}-\d{2})[Tt ](\d{2}:\d{2}:\d{2})(\.\d+)?([Zz]|[+-]\d{2}:\d{2})?",
    re.ASCII,
)


def parse_datetime(value: object, *, zone_required: bool) -> datetime | None:
    """An RFC 3339 date-time → aware UTC datetime; None if ``value`` is not one.

    Without ``zone_required`` a time without offset is taken as UTC.
    """
    if not isinstance(value, str):
        return None
    m = _RFC3339.fullmatch(value)
    if m is None:
        return None
    day, clock, fraction, zone = m.groups()
    if zone is None and zone_required:
        return None
    # datetime keeps microseconds: longer fractions are cut, not rounded up
    text = f"{day}T{clock}{(fraction or '')[:7]}{'Z' if zone in (None, 'z') else zone}"
    try:
        at = datetime.fromisoformat(text)
    except ValueError:  # month 13, 25 o'clock, a leap second
        return None
    return at.astimezone(UTC)


def is_datetime_16(value: object) -> bool:
    return parse_datetime(value, zone_required=False) is not None


def is_datetime_201(value: object) -> bool:
    return parse_datetime(value, zone_required=True) is not None
