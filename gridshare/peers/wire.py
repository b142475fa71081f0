"""OCPP-J pieces every part of a simulated station shares: the CALLERROR it
answers with, the queued CALL, the counters of a fleet, time formats."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cache
from typing import Any

from gridshare.errors import GridshareError

Payload = dict[str, Any]
ResultHook = Callable[[Payload], None]


class CallError(GridshareError):
    """An inbound CALL we answer with a CALLERROR."""

    def __init__(self, code: str, description: str = "") -> None:
        super().__init__(description)
        self.code = code
        self.description = description


NO_ANSWER = object()
"""A handler's reply meaning: send nothing back (a station that never answers)."""


@dataclass
class Outgoing:
    """A CALL waiting to be sent; a callable payload is built when sent (None: drop it)."""

    action: str
    payload: Payload | Callable[[], Payload | None]
    on_result: ResultHook | None = None
    on_error: Callable[[float], None] | None = None
    """Called with the monotonic time when a CALLERROR or no answer came back."""


@dataclass
class FleetStats:
    connects: int = 0
    connect_failures: int = 0
    disconnects: int = 0
    boots_accepted: int = 0
    frames_sent: int = 0
    frames_received: int = 0
    calls_sent: int = 0
    call_results: int = 0
    call_errors: int = 0
    call_timeouts: int = 0
    calls_received: int = 0
    by_action: Counter[str] = field(default_factory=Counter)
    latencies_s: list[float] = field(default_factory=list)
    max_latencies: int = 2_000_000

    def record_latency(self, seconds: float) -> None:
        if len(self.latencies_s) < self.max_latencies:
            self.latencies_s.append(seconds)

    def percentile_s(self, q: float) -> float | None:
        if not self.latencies_s:
            return None
        s = sorted(self.latencies_s)
        return s[min(len(s) - 1, max(0, math.ceil(q / 100 * len(s)) - 1))]


SCHEMA_DIRS = {"1.6": "v16", "2.0.1": "v201", "2.1": "v21"}
"""The `ocpp` package's folder of each version's schemas."""


@cache
def known_actions(version: str) -> frozenset[str]:
    """Actions the version defines (from the `ocpp` package's schemas if installed)."""
    try:
        from importlib.resources import files

        folder = files("ocpp") / SCHEMA_DIRS[version] / "schemas"
        names = [p.name.removesuffix(".json") for p in folder.iterdir()]
    except (ImportError, OSError):
        return frozenset()
    return frozenset(
        n.removesuffix("Request") for n in names if not n.endswith("Response") and n != "schemas"
    )


def iso(t: datetime) -> str:
    return t.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def one_decimal(x: float) -> float:
    return math.floor(x * 10 + 1e-9) / 10
