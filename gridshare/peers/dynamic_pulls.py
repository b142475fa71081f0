"""A simulated 2.1 station pulling its Dynamic profiles (PullDynamicScheduleUpdate)
``dynUpdateInterval`` after each update, and taking the answer as an update."""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from datetime import datetime
from typing import Protocol

from gridshare.peers.connectors import ConnectorBank
from gridshare.peers.specs import SimStationSpec
from gridshare.peers.wire import Payload, ResultHook

log = logging.getLogger(__name__)


class Pulling(Protocol):
    """What of a station pulling needs (`StationProtocol`)."""

    bank: ConnectorBank
    clock: Callable[[], datetime]
    monotonic: Callable[[], float]
    speed: float

    spec: SimStationSpec

    def send_later(
        self, action: str, payload: Payload, on_result: ResultHook | None = None
    ) -> None: ...

    def refresh(self) -> None: ...


def pull_deadline(st: Pulling) -> float:
    """When a Dynamic profile is next pulled, on the monotonic clock (inf: none)."""
    due = st.bank.store.next_pull()
    if due is None:
        return math.inf
    ahead = max(0.0, (due - st.clock()).total_seconds())
    return st.monotonic() + ahead / st.speed


def send_due_pulls(st: Pulling) -> None:
    for pid in st.bank.store.pulls_due(st.clock()):
        st.send_later("PullDynamicScheduleUpdate", {"chargingProfileId": pid}, _taken(st, pid))


def _taken(st: Pulling, pid: int) -> ResultHook:
    def done(result: Payload) -> None:
        update = result.get("scheduleUpdate")
        if result.get("status") == "Accepted" and isinstance(update, dict):
            why = st.bank.update_dynamic(pid, update)
            if why is not None:
                log.warning("%s: pulled update of %d not taken: %s", st.spec.id, pid, why)
            st.refresh()

    return done
