"""What the planner is told, piece by piece (`gridshare.simulation.information`)."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta

from gridshare.simulation import build_simulation, run_strategies, run_told, told
from gridshare.simulation.information import (
    Departures,
    StatementCalibration,
    calibrated,
    statements,
)
from tests.simulation.helpers import T0, jpl_day, jpl_site, session

GROUP = "third-fourth-floor-transformer"


def test_told_swaps_in_only_the_named_truths() -> None:
    hour = timedelta(hours=1)
    stayed = replace(session("stayed", "B/1", 0, 300, 5.0), stated_departure=T0 + 2 * hour)
    left = replace(session("left", "B/1", 0, 60, 5.0), stated_departure=T0 + 3 * hour)
    silent = session("silent", "B/1", 0, 600, 5.0, stated=False)  # 10 h > 8 h default dwell
    on_time = replace(session("on-time", "B/1", 0, 120, 4.0), stated_energy_kwh=9.0)
    sessions = [stayed, left, silent, on_time]

    def departures(mode: Departures) -> list[datetime | None]:
        return [s.stated_departure for s in told(sessions, departures=mode)]

    as_stated = [T0 + 2 * hour, T0 + 3 * hour, None, T0 + 2 * hour]
    assert departures("stated") == as_stated
    assert departures("real") == [s.departure for s in sessions]
    assert departures("real-if-later") == [
        T0 + 5 * hour,
        T0 + 3 * hour,
        T0 + 10 * hour,
        T0 + 2 * hour,
    ]
    assert departures("real-if-earlier") == [T0 + 2 * hour, T0 + hour, None, T0 + 2 * hour]
    assert [s.stated_energy_kwh for s in told(sessions)] == [5.0, 5.0, None, 9.0]
    assert [s.stated_energy_kwh for s in told(sessions, energies="real")] == [5.0, 5.0, 5.0, 4.0]
    # what really happened is never changed
    for before, after in zip(
        sessions, told(sessions, departures="real", energies="real"), strict=True
    ):
        assert (before.departure, before.energy_kwh) == (after.departure, after.energy_kwh)


def test_told_the_whole_truth_is_the_informed_setting() -> None:
    site, sessions = jpl_site(), jpl_day()
    sim, _ = build_simulation(site, sessions, capacity_kw=30, capacity_group=GROUP)
    both = run_told(sim, "real departures and energies")
    informed = run_strategies(
        site, sessions, ["gridshare"], capacity_kw=30, capacity_group=GROUP, informed=True
    )["gridshare"]
    assert both.delivered_kwh.sum() == informed.delivered_kwh.sum()
    stated = run_told(sim, "as stated")
    assert stated.delivered_kwh.sum() < both.delivered_kwh.sum()  # the truth is worth something
    assert not stated.violations and not both.violations


def test_calibrated_corrects_statements_learned_elsewhere() -> None:
    """Learned on sessions whose drivers stayed 2 h past a stated 2 h and took
    half the energy asked; applied to others: their statements move so, and a
    session that stated nothing keeps the service's defaults."""
    learned_on = [
        replace(
            session(f"p{i}", "B/1", 0, 240, 5.0),
            stated_departure=T0 + timedelta(hours=2),
            stated_energy_kwh=10.0,
        )
        for i in range(25)
    ]
    cal = StatementCalibration.fit(statements(learned_on, "UTC"))
    new = replace(
        session("n", "B/1", 0, 60, 5.0),
        stated_departure=T0 + timedelta(hours=2),
        stated_energy_kwh=10.0,
    )
    silent = session("silent", "B/1", 0, 600, 5.0, stated=False)
    out = calibrated([new, silent], cal, "UTC")
    assert out[0].stated_departure == T0 + timedelta(hours=4)
    assert out[0].stated_energy_kwh == 5.0
    assert out[1] == silent
    only_stays = calibrated([new], cal, "UTC", energies=False)
    assert only_stays[0].stated_energy_kwh == 10.0
