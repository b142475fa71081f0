"""The demo's live view fits the terminal, and its summary says what the DSO got."""

from __future__ import annotations

from datetime import UTC, datetime

from gridshare.commands.demo import dso_summary
from gridshare.commands.demo_view import PAGE_S, connector_page
from gridshare.peers.dso import Received, SimulatedDso


def test_connectors_that_do_not_fit_are_shown_a_page_at_a_time() -> None:
    plugged = [f"CP{i:02d}/1" for i in range(1, 21)]
    shown, caption = connector_page(plugged, 7, wall_s=0.0)
    assert shown == plugged[:7] and "1-7 of 20" in caption and "page 1/3" in caption
    shown, caption = connector_page(plugged, 7, wall_s=2 * PAGE_S)
    assert shown == plugged[14:] and "15-20 of 20" in caption
    shown, caption = connector_page(plugged, 30, wall_s=0.0)
    assert shown == plugged and caption == "20 cars plugged in"


def report(body: dict[str, object]) -> Received:
    at = datetime(2026, 3, 2, 17, 0, tzinfo=UTC)
    return Received(at, "update_group_measurements", "POST", "r1", None, body)


def test_the_summary_says_what_the_dso_was_sent_in_words() -> None:
    dso = SimulatedDso()
    m = {"measure_time": "2026-03-02T18:05:00Z", "value": 280.25, "unit": "KWH"}
    dso.received.append(report({"group_id": "grid", "measurements": [m]}))
    line = dso_summary(dso, 296.0)
    assert "280.2 kWh imported in all by 18:05 UTC" in line and "296.0 kWh" in line
    assert "{" not in line
    m = {**m, "value": 0.0, "initial_measure_time": "2026-03-02T18:04:00Z"}
    dso.received.append(report({"group_id": "grid", "measurements": [m]}))
    assert "from 18:04 to 18:05" in dso_summary(dso, 296.0)
    assert "no energy report yet" in dso_summary(SimulatedDso(), 0.0)
