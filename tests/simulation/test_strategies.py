"""Every strategy on the JPL topology with real sessions: no strategy but
uncontrolled breaks a limit, and none beats the offline optimum."""

from __future__ import annotations

import subprocess
import sys

import pytest

from gridshare.simulation import ONLINE, STRATEGIES, RunResult, run_strategies
from gridshare.simulation.report import REPORT_KEYS, build_report
from tests.simulation.helpers import ROOT, jpl_day, jpl_site

GROUP = "third-fourth-floor-transformer"


@pytest.fixture(scope="module", params=[30.0, 80.0])
def jpl_runs(request: pytest.FixtureRequest) -> tuple[float, dict[str, RunResult]]:
    cap = float(request.param)
    return cap, run_strategies(
        jpl_site(), jpl_day(), STRATEGIES, capacity_kw=cap, capacity_group=GROUP
    )


def test_no_violations_but_uncontrolled(jpl_runs) -> None:
    cap, runs = jpl_runs
    for name, r in runs.items():
        if name == "uncontrolled":
            continue
        assert r.violations == [], f"{name} at {cap} kW"
        assert r.offer_violations == 0, f"{name} at {cap} kW"
    assert runs["uncontrolled"].violations  # a congested transformer


def test_offline_optimum_bounds_every_online_strategy(jpl_runs) -> None:
    _, runs = jpl_runs
    off = runs["offline-optimal"]
    bound = float(off.extra["lp_bound_kwh"])
    assert off.delivered_kwh.sum() == pytest.approx(bound, abs=0.01)
    for name in ONLINE:
        if name == "uncontrolled":
            continue
        assert runs[name].delivered_kwh.sum() <= bound + 1e-4, name


def test_report_schema(jpl_runs) -> None:
    cap, runs = jpl_runs
    report = build_report([(cap, runs)], "America/Los_Angeles")
    (run,) = report["runs"]
    assert run["capacity_kw"] == cap
    assert set(run["strategies"]) == set(STRATEGIES)
    for figures in run["strategies"].values():
        assert set(REPORT_KEYS) <= set(figures)
        assert 0 <= figures["delivered_pct"] <= 100
        assert 0 < figures["jain"] <= 1
        assert figures["requested_kwh"] == pytest.approx(
            figures["delivered_kwh"] + figures["unmet_kwh"], abs=1e-3
        )
    g = run["strategies"]["gridshare"]
    assert g["solve_ms_p50"] is not None and g["solve_ms_p99"] >= g["solve_ms_p50"]


def test_offline_optimum_prints_nothing() -> None:
    """No HiGHS banner in a benchmark's or notebook's output (see optimizer.highs_backend)."""
    script = (
        "from tests.simulation.helpers import session, tiny_site\n"
        "from gridshare.simulation import run_strategies\n"
        "r = run_strategies(tiny_site(), [session('a', 'A/1', 0, 60, 2)], ['offline-optimal'])\n"
        "assert r['offline-optimal'].delivered_kwh.sum() > 1\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == "" and "HiGHS" not in done.stderr
