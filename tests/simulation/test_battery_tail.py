"""The planner's battery tail: a car that slows down before full is charged
early enough to finish."""

from __future__ import annotations

import json

import pytest

from forecasts.demand import DemandDefaults
from gridshare.simulation import build_simulation, run_strategies
from gridshare.simulation.engine import CarModel
from tests.simulation.helpers import session, tiny_site

TAPERING = CarModel(taper_kwh=3.0)


def delivered(sessions, taper_kwh: float) -> float:
    runs = run_strategies(
        tiny_site(limit_a=32.0),
        sessions,
        ["gridshare"],
        car=TAPERING,
        defaults=DemandDefaults(taper_kwh=taper_kwh),
    )
    return float(runs["gridshare"].delivered_kwh.sum())


@pytest.mark.parametrize(
    ("a_kwh", "a_leaves", "b_kwh", "b_leaves"),
    [(6, 120, 10, 90), (6, 90, 6, 60), (8, 120, 6, 60)],
)
def test_planning_the_tail_delivers_more(a_kwh, a_leaves, b_kwh, b_leaves) -> None:
    """Two cars share one 32 A fuse. Planned as if batteries took their maximum
    until full, the car leaving later is left for the end and cannot finish its
    tail; planned with the tail, it gets its share early enough."""
    cars = [session("a", "B/1", 0, a_leaves, a_kwh), session("b", "C/1", 0, b_leaves, b_kwh)]
    assert delivered(cars, taper_kwh=3.0) >= delivered(cars, taper_kwh=0.0) + 0.2


def test_only_a_stated_energy_has_a_tail() -> None:
    """An estimate's end is not where the battery is full."""
    sim, _ = build_simulation(
        tiny_site(), [session("a", "B/1", 0, 60, 5), session("b", "C/1", 0, 60, 5, stated=False)]
    )
    now = sim.sessions[0].arrival
    tails = {i: sim._live(i).demand(now, sim.defaults).taper_kwh for i in (0, 1)}
    assert tails == {0: DemandDefaults().taper_kwh, 1: None}


def test_ideal_models_plan_no_tail() -> None:
    sim, _ = build_simulation(tiny_site(), [session("a", "B/1", 0, 60, 5)], ideal_models=True)
    assert sim.defaults.taper_kwh == 0.0
    sim, _ = build_simulation(tiny_site(), [session("a", "B/1", 0, 60, 5)])
    assert sim.defaults.taper_kwh == DemandDefaults().taper_kwh > 0


SITE_TOML = """
[site]
name = "two cars, one fuse"
slot_minutes = 5
horizon_hours = 4

[defaults]
taper_kwh = {taper}

[[groups]]
id = "main"
limit_a = 32

[[chargers]]
id = "B"
group = "main"
connectors = [{{ id = 1, max_current_a = 32, phases = ["L1"] }}]

[[chargers]]
id = "C"
group = "main"
connectors = [{{ id = 1, max_current_a = 32, phases = ["L1"] }}]
"""


def test_simulate_plans_with_the_site_files_defaults(tmp_path) -> None:
    from gridshare.commands import simulate

    sessions = tmp_path / "s.csv"
    sessions.write_text(
        "connector_id,arrival,departure,energy_kwh,stated_departure,stated_energy_kwh\n"
        "B/1,2024-03-04T08:00Z,2024-03-04T10:00Z,6,2024-03-04T10:00Z,6\n"
        "C/1,2024-03-04T08:00Z,2024-03-04T09:30Z,10,2024-03-04T09:30Z,10\n"
    )
    got = {}
    for taper in (0, 3):
        site = tmp_path / f"site{taper}.toml"
        site.write_text(SITE_TOML.format(taper=taper))
        out = tmp_path / f"r{taper}.json"
        argv = ["--site", str(site), "--sessions", str(sessions), "--strategy", "gridshare",
                "--taper-kwh", "3", "--out", str(out)]  # fmt: skip
        assert simulate.main(argv) == 0
        got[taper] = json.loads(out.read_text())["runs"][0]["strategies"]["gridshare"]
    assert got[3]["delivered_kwh"] >= got[0]["delivered_kwh"] + 0.2
