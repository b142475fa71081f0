"""The building on the connection: drawn by the simulator, told to the planner
as the service would see it, known to the offline optimum."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from gridshare.commands import simulate
from gridshare.simulation import SiteLoad, SiteLoadSetting, run_strategies
from gridshare.simulation.capacity import SiteLimits
from gridshare.simulation.engine import RunResult
from gridshare.simulation.sessions import SimSession
from gridshare.simulation.site_load import LoadView
from optimizer import Capacity, Site, TimeGrid
from optimizer.families import ev_limit_kw, line_limit_a
from optimizer.site import LINES, Line
from tests.simulation.helpers import JPL_SESSIONS, JPL_SITE, ROOT, T0, session, tiny_site

GROUP = "third-fourth-floor-transformer"


Rows = dict[str, list[tuple[datetime, tuple[float, float, float]]]]


def _fig(r: RunResult, key: str) -> float:
    v = r.extra[key]
    assert isinstance(v, int | float)
    return float(v)


def _rows(*points: tuple[int, float]) -> Rows:
    """The tiny site's building on L1: (minutes after T0, A) steps."""
    return {"main": [(T0 + timedelta(minutes=m), (a, 0.0, 0.0)) for m, a in points]}


def test_a_step_carries_the_highest_load_in_force_during_it() -> None:
    load = SiteLoad(tiny_site(), _rows((0, 5.0), (7, 20.0), (15, 3.0)))
    over = load.over("main", T0 - timedelta(minutes=5), timedelta(minutes=5), 6)
    assert over[:, 0].tolist() == [0.0, 5.0, 20.0, 20.0, 3.0, 3.0]
    assert load.at("main", T0 + timedelta(minutes=10))[0] == 20.0
    assert len(load.readings("main", T0 + timedelta(minutes=7))) == 2


def test_the_planner_is_told_the_reading_now_and_never_a_later_one() -> None:
    site = tiny_site(limit_a=32.0)
    load = SiteLoad(site, _rows((0, 10.0), (60, 25.0)))
    grid = TimeGrid(T0, 5, 24)
    base = SiteLimits(site).capacity(grid)
    view = LoadView(load, "forecast").capacity(base, grid, T0)
    # slot 0: 32 - 10; the rise at +60 min is not known yet
    assert _left(site, view, grid)[0] == pytest.approx(22.0)
    assert _left(site, view, grid)[12] > 32.0 - 25.0 + 1
    peak = LoadView(load, "peak").capacity(base, grid, T0)
    assert np.allclose(_left(site, peak, grid), 32.0 - 25.0)
    blind = LoadView(load, "blind").capacity(base, grid, T0)
    assert np.allclose(_left(site, blind, grid), 32.0)
    # the limits themselves are never raised nor lowered: the load rides beside them
    assert np.array_equal(view.limit_a["main"], base.limit_a["main"])
    # kW: the building's power at the site's 230 V comes off the 100 kW limit
    assert ev_limit_kw(site, view, "main", grid.slots)[0] == pytest.approx(100.0 - 10 * 230 / 1000)


def _left(site: Site, capacity: Capacity, grid: TimeGrid, line: Line = Line.L1) -> np.ndarray:
    return line_limit_a(site, capacity, "main", line, grid.slots)


def test_each_line_keeps_what_the_building_draws_on_it() -> None:
    site = tiny_site(limit_a=32.0)
    rows: Rows = {"main": [(T0, (12.0, 4.0, 0.0))]}
    load = SiteLoad(site, rows)
    grid = TimeGrid(T0, 5, 12)
    base = SiteLimits(site).capacity(grid)
    for view in ("forecast", "peak"):
        cap = LoadView(load, view).capacity(base, grid, T0)
        left = [_left(site, cap, grid, line)[0] for line in LINES]
        assert left == pytest.approx([20.0, 28.0, 32.0]), view


def _sessions() -> list[SimSession]:
    return [
        session("s1", "B/1", 0, 180, 15.0),
        session("s2", "C/1", 0, 180, 15.0),
        session("s3", "A/1", 30, 180, 6.0),
    ]


@pytest.mark.parametrize("view", ["forecast", "peak"])
def test_online_planning_keeps_chargers_plus_building_within_the_limit(view: str) -> None:
    site = tiny_site(limit_a=40.0)
    load = SiteLoad(site, _rows((0, 10.0), (60, 30.0), (120, 5.0)))
    setting = SiteLoadSetting(load, view)
    runs = run_strategies(
        site, _sessions(), ["gridshare", "equal-share", "offline-optimal"], site_load=setting
    )
    for name, r in runs.items():
        assert _fig(r, "connection_overload_minutes") == 0, name
        assert not r.violations, name
        assert _fig(r, "peak_connection_a") <= 40.0 + 1e-6, name
        assert _fig(r, "peak_connection_a") >= 30.0, name
    alone = run_strategies(site, _sessions(), ["gridshare"])["gridshare"]
    assert runs["gridshare"].delivered_kwh.sum() < alone.delivered_kwh.sum() - 1.0
    assert (
        runs["offline-optimal"].delivered_kwh.sum() >= runs["gridshare"].delivered_kwh.sum() - 1e-6
    )


def test_a_blind_planner_overloads_the_connection() -> None:
    site = tiny_site(limit_a=40.0)
    load = SiteLoad(site, _rows((0, 10.0), (60, 30.0), (120, 5.0)))
    runs = run_strategies(
        site, _sessions(), ["gridshare"], site_load=SiteLoadSetting(load, "blind")
    )
    r = runs["gridshare"]
    assert _fig(r, "connection_overload_minutes") > 0
    assert _fig(r, "peak_connection_a") > 40.0


def test_a_building_over_the_limit_with_no_car_plugged_in_counts_too() -> None:
    site = tiny_site(limit_a=40.0)
    apart = [session("s1", "B/1", 0, 60, 5.0), session("s2", "C/1", 120, 180, 5.0)]
    # 50 A from +80 to +90 min: no car is plugged in, the simulator skips those steps
    load = SiteLoad(site, _rows((0, 0.0), (80, 50.0), (90, 0.0)))
    for name in ("gridshare", "offline-optimal"):
        r = run_strategies(site, apart, [name], site_load=SiteLoadSetting(load))[name]
        assert not r.violations
        assert _fig(r, "connection_overload_minutes") == 10.0
        assert _fig(r, "peak_connection_a") == pytest.approx(50.0)


def _write(path: Path, rows: list[str]) -> Path:
    path.write_text("start,group_id,l1_a,l2_a,l3_a\n" + "\n".join(rows) + "\n")
    return path


def test_simulate_command_draws_the_site_load(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    load = _write(
        tmp_path / "load.csv",
        [
            f"2019-05-08T00:00,{GROUP},150,150,150",
            f"2019-05-08T09:00,{GROUP},300,280,260",
            f"2019-05-08T17:00,{GROUP},120,120,120",
        ],
    )
    out = tmp_path / "report.json"
    argv = [
        "--site", str(JPL_SITE), "--sessions", str(JPL_SESSIONS), "--from", "2019-05-08",
        "--to", "2019-05-08", "--strategy", "edf", "uncontrolled", "--site-load", str(load),
        "--holidays", "US", "--out", str(out),
    ]  # fmt: skip
    assert simulate.main(argv) == 0
    report = json.loads(out.read_text())
    figures = report["runs"][0]["strategies"]
    assert figures["edf"]["connection_overload_minutes"] == 0
    assert figures["edf"]["peak_connection_a"] <= 416.67
    assert figures["uncontrolled"]["connection_overload_minutes"] > 0
    assert report["meta"]["site_load_view"] == "forecast"
    assert "overload min" in capsys.readouterr().out


@pytest.mark.parametrize(
    "row, message",
    [
        ("2019-05-08T00:00,nope,1,1,1", "line 2: group_id: unknown group 'nope'"),
        (f"2019-05-08T00:00,{GROUP},-1,1,1", "line 2: l1_a: must be ≥ 0"),
        (f"2019-05-08T00:00,{GROUP},x,1,1", "line 2: l1_a: not a number"),
        (f"08:00,{GROUP},1,1,1", "line 2: start: not an ISO time"),
        ("2019-05-08T00:00,first-floor-transformer-primary-a,1,1,1", "weighted"),
    ],
)
def test_simulate_command_refuses_a_bad_site_load(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    row: str,
    message: str,
) -> None:
    load = _write(tmp_path / "load.csv", [row])
    argv = ["--site", str(JPL_SITE), "--sessions", str(JPL_SESSIONS), "--site-load", str(load),
            "--out", str(tmp_path / "r.json")]  # fmt: skip
    assert simulate.main(argv) == 2
    err = capsys.readouterr().err
    assert message in err
    assert err.count("\n") == 1
    assert not (tmp_path / "r.json").exists()


def test_simulate_command_refuses_an_unknown_country(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    load = _write(tmp_path / "load.csv", [f"2019-05-08T00:00,{GROUP},1,1,1"])
    argv = ["--site", str(JPL_SITE), "--sessions", str(JPL_SESSIONS), "--site-load", str(load),
            "--holidays", "XX", "--out", str(tmp_path / "r.json")]  # fmt: skip
    assert simulate.main(argv) == 2
    assert "holidays" in capsys.readouterr().err


def test_the_shared_connection_benchmark_runs_on_a_day() -> None:
    done = subprocess.run(
        [sys.executable, "benchmarks/shared_connection.py", "--from", "2019-06-04", "--to",
         "2019-06-04"],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    rows = {
        line.split("|")[1].strip(): [c.strip() for c in line.split("|")[3:-1]]
        for line in done.stdout.splitlines()
        if line.startswith("| ") and not line.startswith("| planner")
    }
    dynamic, static = rows["dynamic (forecast)"], rows["static EV limit (building peak)"]
    assert float(dynamic[0]) > float(static[0])
    assert dynamic[2] == static[2] == rows["perfect knowledge"][2] == "0"
    assert float(rows["building ignored"][2].replace(",", "")) > 0
