"""The ideal-models setting (the ACN paper's comparison with the offline optimum):
real departure and energy stated at arrival, continuous pilots, ideal battery."""

from __future__ import annotations

import json
from collections.abc import Mapping

import pytest

from gridshare.commands import simulate
from gridshare.simulation import build_simulation, run_strategies
from gridshare.simulation.engine import StepContext
from optimizer import SessionDemand
from tests.simulation.helpers import JPL_SESSIONS, JPL_SITE, jpl_day, jpl_site, session, tiny_site

GROUP = "third-fourth-floor-transformer"


def test_ideal_models_state_the_truth_with_continuous_pilots_and_no_taper() -> None:
    site = jpl_site()
    sessions = jpl_day()
    sim, _ = build_simulation(site, sessions, capacity_kw=30, ideal_models=True)
    assert sim.car.taper_kwh == 0
    for info in sim.site.connectors.values():
        assert info.connector.allowed_currents_a is None
        assert info.connector.min_current_a == 0
    assert sim.site.group_by_id[GROUP].limit_kw == 30
    for s in sim.sessions:
        assert s.stated_departure == s.departure
        assert s.stated_energy_kwh == s.energy_kwh
    # realistic models stay the default: unclaimed sessions state nothing
    real, _ = build_simulation(site, sessions, capacity_kw=30)
    assert real.car.taper_kwh > 0
    assert any(s.stated_energy_kwh is None for s in real.sessions)
    assert any(i.connector.allowed_currents_a for i in real.site.connectors.values())


def test_the_planner_sees_the_real_departure_and_need() -> None:
    seen: list[SessionDemand] = []

    class Spy:
        name = "spy"

        def decide(self, ctx: StepContext) -> Mapping[str, float]:
            seen.extend(ctx.demands())
            return {}

    s = session("s", "B/1", 0, 60, 7.0, stated=False)
    sim, _ = build_simulation(tiny_site(), [s], ideal_models=True)
    sim.run(Spy())
    assert seen and all(d.departure == s.departure for d in seen)
    assert seen[0].energy_kwh == pytest.approx(7.0)


def test_gridshare_is_near_the_offline_optimum_with_ideal_models() -> None:
    runs = run_strategies(
        jpl_site(),
        jpl_day(),
        ["gridshare", "edf", "llf", "equal-share", "offline-optimal"],
        capacity_kw=30,
        capacity_group=GROUP,
        ideal_models=True,
    )
    pct = {n: 100 * r.delivered_kwh.sum() / r.need_kwh.sum() for n, r in runs.items()}
    for name, r in runs.items():
        assert r.violations == [] and r.offer_violations == 0, name
        assert r.extra["models"] == "ideal"
    bound = float(runs["offline-optimal"].extra["lp_bound_kwh"])  # type: ignore[arg-type]
    for name in ("gridshare", "edf", "llf", "equal-share"):
        assert runs[name].delivered_kwh.sum() <= bound + 1e-4, name
    assert pct["gridshare"] >= pct["offline-optimal"] - 1.0
    assert pct["gridshare"] > max(pct["edf"], pct["llf"], pct["equal-share"])


def test_simulate_command_ideal_models(tmp_path, capsys) -> None:
    out = tmp_path / "report.json"
    argv = [
        "--site", str(JPL_SITE), "--sessions", str(JPL_SESSIONS),
        "--from", "2019-05-08", "--to", "2019-05-08", "--capacity-kw", "30",
        "--strategy", "edf", "--ideal-models", "--out", str(out),
    ]  # fmt: skip
    assert simulate.main(argv) == 0
    report = json.loads(out.read_text())
    assert report["meta"]["models"] == "ideal"
    assert report["meta"]["taper_kwh"] == 0
    (run,) = report["runs"]
    assert run["strategies"]["edf"]["models"] == "ideal"
    assert run["strategies"]["edf"]["violations"] == 0
    assert "| 30 |" in capsys.readouterr().out


def test_informed_drivers_keep_the_stations_and_batteries() -> None:
    site, sessions = jpl_site(), jpl_day()
    sim, _ = build_simulation(site, sessions, capacity_kw=30, informed=True)
    real, _ = build_simulation(site, sessions, capacity_kw=30)
    assert sim.car == real.car and sim.car.taper_kwh > 0
    assert sim.site == real.site
    assert any(i.connector.allowed_currents_a for i in sim.site.connectors.values())
    for s in sim.sessions:
        assert s.stated_departure == s.departure
        assert s.stated_energy_kwh == s.energy_kwh
    assert any(s.stated_departure != s.departure for s in real.sessions)


def test_gridshare_is_near_the_offline_optimum_when_drivers_state_the_truth() -> None:
    """Stations' pilot steps, the 6 A minimum and taper cost the planner little
    once it is told the real departure and energy."""
    runs = run_strategies(
        jpl_site(),
        jpl_day(),
        ["gridshare", "equal-share", "offline-optimal"],
        capacity_kw=30,
        capacity_group=GROUP,
        informed=True,
    )
    pct = {n: 100 * r.delivered_kwh.sum() / r.need_kwh.sum() for n, r in runs.items()}
    for name, r in runs.items():
        assert r.violations == [] and r.extra["models"] == "informed", name
    # −1.30 measured with the exact limits (−0.52 with magnitudes summed); over
    # the week of June 3 2019 at 30 kW: −0.66 (README)
    assert pct["gridshare"] >= pct["offline-optimal"] - 1.5
    assert pct["gridshare"] > pct["equal-share"]


def test_simulate_command_informed_or_ideal_not_both(tmp_path, capsys) -> None:
    base = ["--site", str(JPL_SITE), "--sessions", str(JPL_SESSIONS),
            "--from", "2019-05-08", "--to", "2019-05-08", "--strategy", "edf"]  # fmt: skip
    out = tmp_path / "report.json"
    assert simulate.main([*base, "--informed", "--out", str(out)]) == 0
    report = json.loads(out.read_text())
    assert report["meta"]["models"] == "informed" and report["meta"]["taper_kwh"] > 0
    with pytest.raises(SystemExit) as bad:
        simulate.main([*base, "--informed", "--ideal-models", "--out", str(out)])
    assert bad.value.code == 2
    assert "not allowed with" in capsys.readouterr().err
