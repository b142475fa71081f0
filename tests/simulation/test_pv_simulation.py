"""A PV array on the connection in a simulation: the planner charges a solar
session from the surplus only, and the report says how much of the generation
was used on site."""

from __future__ import annotations

import contextlib
import json
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest

from forecasts.pv import parse_pv_csv
from gridshare.commands import simulate
from gridshare.simulation import SiteLoad, SiteLoadSetting, run_strategies
from gridshare.simulation.pv import SimPv
from optimizer.modes import ChargeMode
from tests.simulation.helpers import JPL_SESSIONS, JPL_SITE, T0, session, tiny_site

KW_PER_A = 0.23  # the tiny site's single-line 230 V connectors


def _pv(mode: ChargeMode, kw: float = 3.0) -> SimPv:
    rows = ["start,kw"] + [
        f"{(T0 + timedelta(minutes=m)).isoformat()},{v}"
        for m, v in ((0, 0.0), (30, kw), (90, 0.0), (240, 0.0))
    ]
    return SimPv(parse_pv_csv(rows, "pv.csv"), mode)


def _generation(pv: SimPv, run_steps: int) -> np.ndarray:
    return pv.kw(T0, timedelta(minutes=5), run_steps)


def test_a_solar_session_charges_from_the_surplus_only() -> None:
    site = tiny_site(limit_a=32.0)
    cars = [session("s1", "B/1", 0, 180, 30.0)]
    pv = _pv(ChargeMode.SOLAR)
    r = run_strategies(site, cars, ["gridshare"], pv=pv)["gridshare"]
    drawn_kw = r.current_a[:, 0:3].sum(axis=1) * KW_PER_A
    gen = _generation(pv, len(drawn_kw))
    assert np.all(drawn_kw <= gen + 1e-6)
    assert drawn_kw[gen == 0].sum() == 0.0  # no sun: paused
    assert drawn_kw[gen > 0].min() > 0.8 * 3.0  # the sun: taken
    assert r.extra["pv_self_consumption_pct"] == pytest.approx(
        100.0 * drawn_kw.sum() / gen.sum(), rel=1e-3
    )
    assert not r.violations
    fast = run_strategies(site, cars, ["gridshare"], pv=_pv(ChargeMode.FAST))["gridshare"]
    assert fast.current_a[0, 1] > 0  # fast charges before the sun
    assert float(fast.delivered_kwh.sum()) > float(r.delivered_kwh.sum())


def test_min_solar_takes_its_minimum_and_the_surplus() -> None:
    site = tiny_site(limit_a=32.0)
    cars = [session("s1", "B/1", 0, 180, 30.0)]
    pv = _pv(ChargeMode.MIN_SOLAR)
    r = run_strategies(site, cars, ["gridshare"], pv=pv)["gridshare"]
    amps = r.current_a[:36, 1]
    gen = _generation(pv, 36)
    assert np.all(amps >= 6.0 - 1e-9)  # the connector's minimum, sun or not
    assert np.all(amps * KW_PER_A <= 6.0 * KW_PER_A + gen + 1e-6)
    assert amps[gen > 0].min() > 6.0 + 0.8 * 3.0 / KW_PER_A - 6.0  # the surplus above it


def test_generation_offsets_the_building_and_counts_as_used_on_site() -> None:
    site = tiny_site(limit_a=32.0)
    building = {"main": [(T0, (10.0, 0.0, 0.0))]}  # 2.3 kW all day
    load = SiteLoadSetting(SiteLoad(site, building))
    cars = [session("s1", "A/1", 0, 240, 5.0)]
    pv = _pv(ChargeMode.SOLAR, kw=6.9)  # 6.9 kW: 10 A on each line (30 A over 3 lines)
    r = run_strategies(site, cars, ["gridshare"], pv=pv, site_load=load)["gridshare"]
    gen = _generation(pv, len(r.power_kw))
    # the surplus is what the generation leaves after the building's 2.3 kW
    assert np.all(r.power_kw <= np.maximum(gen - 2.3, 0.0) + 1e-6)
    assert r.power_kw.sum() > 0
    used = np.minimum(gen, r.power_kw + 2.3).sum()
    assert r.extra["pv_self_consumption_pct"] == pytest.approx(100 * used / gen.sum(), rel=1e-3)


def test_simulate_command_reports_pv_self_consumption(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pv = tmp_path / "pv.csv"
    pv.write_text(
        "start,kw\n2019-05-08T07:00,20\n2019-05-08T10:00,60\n2019-05-08T15:00,10\n"
        "2019-05-08T19:00,0\n"
    )
    out = tmp_path / "report.json"
    argv = [
        "--site", str(JPL_SITE), "--sessions", str(JPL_SESSIONS), "--from", "2019-05-08",
        "--to", "2019-05-08", "--strategy", "equal-share", "uncontrolled", "--pv", str(pv),
        "--pv-mode", "solar", "--out", str(out),
    ]  # fmt: skip
    assert simulate.main(argv) == 0
    report = json.loads(out.read_text())
    figures = report["runs"][0]["strategies"]
    made = 20 * 3 + 60 * 5 + 10 * 4
    for name in ("equal-share", "uncontrolled"):
        assert figures[name]["pv_generated_kwh"] == pytest.approx(made, rel=1e-3)
        assert 0.0 < figures[name]["pv_self_consumption_pct"] <= 100.0
    # equal-share reads the planner's rows, the solar family among them: less energy
    assert figures["equal-share"]["delivered_kwh"] < figures["uncontrolled"]["delivered_kwh"]
    assert report["meta"]["pv_mode"] == "solar"


@pytest.mark.parametrize(
    ("text", "argv", "says"),
    [
        ("start,kw\n2019-05-08T07:00,-5\n", [], "pv.csv:2: kw must be a finite figure ≥ 0"),
        ("when,kw\n", [], "header must be 'start,kw'"),
        ("start,kw\n2019-05-08T07:00,5\n", ["--pv-mode", "eco"], "invalid choice: 'eco'"),
    ],
)
def test_simulate_command_refuses_a_bad_pv_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, argv: list[str], says: str
) -> None:
    pv = tmp_path / "pv.csv"
    pv.write_text(text)
    full = ["--site", str(JPL_SITE), "--sessions", str(JPL_SESSIONS), "--pv", str(pv),
            "--out", str(tmp_path / "r.json"), *argv]  # fmt: skip
    with pytest.raises(SystemExit) if argv else contextlib.nullcontext():
        assert simulate.main(full) == 2
    assert says in capsys.readouterr().err
    assert not (tmp_path / "r.json").exists()
