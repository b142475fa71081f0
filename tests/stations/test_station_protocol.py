"""The simulated station's OCPP side without a socket: frames in, frames out."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from gridshare.peers.ev import EvSpec
from gridshare.peers.specs import SimStationSpec
from gridshare.peers.station_protocol import StationProtocol
from gridshare.peers.wire import FleetStats

T0 = datetime(2026, 1, 5, 8, 0, tzinfo=UTC)


class Ticks:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def booted(version: str) -> StationProtocol:
    p = StationProtocol(
        SimStationSpec("CP1", version=version),
        clock=lambda: T0,
        speed=1.0,
        call_timeout_s=30.0,
        stats=FleetStats(),
        monotonic=Ticks(),
    )
    boot = p.next_frame()
    assert isinstance(boot, list) and boot[2] == "BootNotification"
    p.receive(json.dumps([3, boot[1], {"status": "Accepted", "interval": 60}]))
    assert p.booted
    return p


@pytest.mark.parametrize("version", ["1.6", "2.0.1", "2.1"])
def test_boot_then_plug_in_sends_status_and_authorize(version: str) -> None:
    p = booted(version)
    sent = []
    while isinstance(frame := p.next_frame(), list):
        sent.append(frame[2])
        p.receive(json.dumps([3, frame[1], {}]))
    assert sent == ["StatusNotification"]
    p.plug_in(1, EvSpec())
    frame = p.next_frame()
    assert isinstance(frame, list) and frame[2] == "StatusNotification"


@pytest.mark.parametrize("action", ["boot", "frame"])
def test_an_action_named_like_a_method_is_not_implemented(action: str) -> None:
    p = booted("1.6")
    reply = p.receive(json.dumps([2, "9", action, {"status": "Accepted"}]))
    assert reply == [4, "9", "NotImplemented", f"unknown action {action}", {}]


def test_a_call_error_for_the_boot_retries_it_later() -> None:
    p = StationProtocol(
        SimStationSpec("CP1"),
        clock=lambda: T0,
        speed=1.0,
        call_timeout_s=30.0,
        stats=FleetStats(),
        monotonic=(ticks := Ticks()),
    )
    boot = p.next_frame()
    assert isinstance(boot, list)
    p.receive(json.dumps([4, boot[1], "InternalError", "", {}]))
    assert p.next_frame() is None and p.next_deadline() == 10.0
    ticks.now = 10.0
    again = p.next_frame()
    assert isinstance(again, list) and again[2] == "BootNotification"
