"""The simulator's limit model and the rollout's load checks on phasor sums:
both against a direct evaluation of the line currents' magnitudes."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gridshare.config import load_site
from gridshare.rollout.load import LoadModel
from gridshare.simulation import CarModel, Simulation
from gridshare.simulation.capacity import SiteLimits
from gridshare.simulation.engine import StepContext
from gridshare.simulation.strategies import GridshareStrategy, OfflineSchedule
from optimizer import PlanningProblem, Site
from optimizer.families import SiteFamilies
from tests.optimizer.sites import sites_and_sessions
from tests.optimizer.test_phasor_limits import exact_loads, with_phasor
from tests.simulation.helpers import session

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(sites_and_sessions(), st.integers(0, 2**31 - 1))
def test_both_limit_models_load_every_line_by_its_phasor_magnitude(
    prob: PlanningProblem, seed: int
) -> None:
    site = with_phasor(prob.site)
    ids = list(site.connectors)
    currents = np.random.default_rng(seed).uniform(0, 32, size=(len(ids), 3))
    lines = {k: v.lines for k, v in site.connectors.items()}
    one = type(prob)(site, prob.grid, prob.now, (), prob.capacity)
    direct = exact_loads(one, np.pad(currents, ((0, 0), (0, prob.grid.slots - 3))), lines)

    limits = SiteLimits(site)
    sim_load = limits.load(limits.matrix, currents)
    model = LoadModel.build(site)
    roll_load = model.load(dict(zip(ids, currents, strict=True)), 3)
    for r, row in enumerate(limits.rows):
        if row.quantity == "kW":
            continue
        want = direct[(row.group_id, row.quantity)][:3]
        np.testing.assert_allclose(sim_load[r], want, atol=1e-9)
        np.testing.assert_allclose(
            roll_load[model.keys.index((row.group_id, row.quantity))], want, atol=1e-9
        )


def pair_site(limit_a: float) -> Site:
    def charger(name: str, phases: list[str]) -> dict:
        con = {"id": 1, "max_current_a": 32, "min_current_a": 6, "phases": phases, "voltage_v": 208}
        return {"id": name, "group": "main", "connectors": [con]}

    return Site.model_validate(
        {
            "site": {"name": "pairs", "voltage_v": 120, "slot_minutes": 5, "horizon_hours": 4},
            "groups": [{"id": "main", "limit_a": limit_a, "phasor": True}],
            "chargers": [
                charger("AB", ["L1", "L2"]),
                charger("BC", ["L2", "L3"]),
                charger("CA", ["L3", "L1"]),
                charger("AB2", ["L1", "L2"]),
            ],
        }
    )


class Greedy:
    name = "greedy"

    def decide(self, ctx: StepContext) -> Mapping[str, float]:
        return {s.session_id: 32.0 for s in ctx.live}


def test_the_simulator_counts_phasor_violations_and_gridshare_has_none() -> None:
    site = pair_site(40.0)
    sessions = [
        session(f"s{i}", f"{c}/1", 0, 180, 20.0) for i, c in enumerate(["AB", "BC", "CA", "AB2"])
    ]
    car = CarModel(taper_kwh=0)
    greedy = Simulation(site, sessions, car=car).run(Greedy())
    assert greedy.violations  # |2·32·e^(j30°) + 32·e^(−j30°)| ≈ 84.7 A on L1 > 40 A
    planned = Simulation(site, sessions, car=car).run(GridshareStrategy())
    assert not planned.violations
    # and it uses the line to its exact limit, above what magnitudes summed allow
    l1 = planned.current_a[0, [0, 2, 3]]
    assert (
        abs(
            l1[0] * np.exp(1j * np.pi / 6)
            + l1[2] * np.exp(1j * np.pi / 6)
            + l1[1] * np.exp(-1j * np.pi / 6)
        )
        <= 40 + 1e-6
    )
    assert l1.sum() > 41.0


def test_a_site_file_turns_exact_limits_on_per_group(tmp_path: Path) -> None:
    path = tmp_path / "site.toml"
    path.write_text(
        """
[site]
name = "us-depot"
voltage_v = 120

[[groups]]
id = "service"
limit_a = 80
phasor = true

[[groups]]
id = "primary"
parent = "service"
limit_a = 30
weights = { "AB" = 0.25, "CA" = -0.5 }
phasor = true

[[chargers]]
id = "AB"
group = "service"
connectors = [{ id = 1, max_current_a = 32, phases = ["L1", "L2"], voltage_v = 208 }]

[[chargers]]
id = "CA"
group = "service"
connectors = [{ id = 1, max_current_a = 32, phases = ["L3", "L1"], voltage_v = 208 }]
""",
        encoding="utf-8",
    )
    site = load_site(path)
    assert [g.phasor for g in site.groups] == [True, True]
    keys = SiteFamilies.of(site).phasor_keys
    assert ("service", "L1") in keys and ("primary", "weighted") in keys
    assert ("service", "L2") not in keys  # AB alone on L2: its sum is already exact
    unchanged = load_site(Path(__file__).resolve().parents[2] / "examples" / "depot.toml")
    assert not SiteFamilies.of(unchanged).phasor_keys


def test_the_offline_optimum_is_exact_on_phasor_sums() -> None:
    """Two pairs drawing out of L1 at ±30°: the most L1 carries at 40 A is
    x = 40/√3 A on each (|x·e^(j30°) + x·e^(−j30°)| = √3·x), 46.19 A in all,
    where magnitudes summed would stop at 40 A. The bound is that optimum and
    the replayed currents keep the exact limit."""
    site = pair_site(40.0)
    sessions = [session("s0", "AB/1", 0, 60, 100.0), session("s1", "CA/1", 0, 60, 100.0)]
    sim = Simulation(site, sessions, car=CarModel(taper_kwh=0))
    offline = OfflineSchedule(sim)
    result = sim.run(offline)
    per_step_kwh = 2 * 40.0 / np.sqrt(3.0) * 0.208 * 5 / 60
    assert offline.bound_kwh == pytest.approx(12 * per_step_kwh, rel=1e-3)
    assert result.delivered_kwh.sum() == pytest.approx(offline.bound_kwh, rel=1e-3)
    assert not result.violations
    summed_kwh = 12 * 40.0 * 0.208 * 5 / 60
    assert result.delivered_kwh.sum() > 1.1 * summed_kwh
