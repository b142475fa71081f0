"""What each strategy pays and emits: every strategy billed alike with the
same tariff and the real signal; the planner with the money terms lowers the
peak it pays for without costing energy when it is told the truth; the
offline optimum has the same objective."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest

from gridshare.cli import main
from gridshare.simulation import SimCosts, SiteLoad, SiteLoadSetting, run_strategies
from gridshare.simulation.costs import COST_KEYS, building_kw
from gridshare.tariff.bill import bill
from gridshare.tariff.config import TariffConfig
from gridshare.tariff.tariff import Tariff
from tests.simulation.helpers import ROOT, T0, session, tiny_site

TARIFF = TariffConfig.model_validate(
    {
        "energy_prices": [{"from": "00:00", "price": 0.3}, {"from": "09:00", "price": 0.1}],
        "peak_price_per_kw": 15.0,
    }
)


def sessions() -> list:
    # three cars from 08:00 that could all charge at once, with hours to spare
    return [
        session("a", "A/1", 0, 300, 6.0),
        session("b", "B/1", 0, 300, 10.0),
        session("c", "C/1", 30, 300, 10.0),
    ]


def site_load() -> SiteLoadSetting:
    rows = {"main": [(T0 - timedelta(hours=1), (8.0, 0.0, 0.0))]}
    return SiteLoadSetting(SiteLoad(tiny_site(limit_a=80.0), rows))


@pytest.fixture(scope="module")
def runs():
    costs = SimCosts(tariff=Tariff.of(TARIFF, "UTC"))
    names = ["gridshare", "gridshare-energy-only", "equal-share", "offline-optimal"]
    return run_strategies(
        tiny_site(limit_a=80.0),
        sessions(),
        names,
        informed=True,
        site_load=site_load(),
        costs=costs,
    )


def test_every_strategy_is_billed_alike(runs) -> None:
    tariff = Tariff.of(TARIFF, "UTC")
    for name, r in runs.items():
        assert set(COST_KEYS) - {"carbon_kg"} <= set(r.extra), name
        house = 8.0 * 230 / 1000.0
        total = r.power_kw + house
        again = bill(tariff, r.start, r.step, total)
        assert r.extra["total_cost"] == pytest.approx(round(again.total_cost, 2)), name


def test_the_peak_term_lowers_the_peak_without_costing_energy(runs) -> None:
    priced, plain = runs["gridshare"], runs["gridshare-energy-only"]
    assert priced.delivered_kwh.sum() == pytest.approx(plain.delivered_kwh.sum(), rel=5e-3)
    assert float(priced.extra["peak_kw"]) < float(plain.extra["peak_kw"]) - 1.0
    assert float(priced.extra["total_cost"]) < float(plain.extra["total_cost"])
    # the offline optimum, same objective, knowing everything: no dearer
    off = runs["offline-optimal"]
    assert off.delivered_kwh.sum() >= priced.delivered_kwh.sum() - 1e-3
    assert float(off.extra["total_cost"]) <= float(priced.extra["total_cost"]) + 0.5


def test_the_building_is_on_the_bill(runs) -> None:
    r = runs["equal-share"]
    assert building_kw(type("S", (), {"n_steps": 3, "site_load": None})()).sum() == 0.0
    assert float(r.extra["peak_kw"]) >= 8.0 * 230 / 1000.0


def test_the_command_reports_costs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    site = ROOT / "examples" / "acn-jpl.toml"
    sessions_csv = ROOT / "data" / "acn" / "jpl" / "2019-05-01_2019-08-31.csv.gz"
    out = tmp_path / "r.json"
    code = main(
        [
            "simulate", "--site", str(site), "--sessions", str(sessions_csv),
            "--tariff", str(ROOT / "examples" / "tariff-sce.toml"),
            "--from", "2019-05-07", "--to", "2019-05-07",
            "--strategy", "uncontrolled", "gridshare-energy-only",
            "--out", str(out), "--no-progress",
        ]
    )  # fmt: skip
    text = capsys.readouterr().out
    assert code == 0
    assert "| energy cost |" in text and "carbon kg" in text
    import json

    report = json.loads(out.read_text())
    for figures in report["runs"][0]["strategies"].values():
        assert figures["carbon_kg"] > 0 and figures["total_cost"] > 0


def test_a_bad_tariff_file_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "t.toml"
    bad.write_text('[tariff]\nenergy_prices = [{ from = "25:00", price = 0.2 }]\n')
    site = ROOT / "examples" / "acn-jpl.toml"
    sessions_csv = ROOT / "data" / "acn" / "jpl" / "2019-05-01_2019-08-31.csv.gz"
    argv = ["simulate", "--site", str(site), "--sessions", str(sessions_csv)]
    code = main([*argv, "--tariff", str(bad), "--out", str(tmp_path / "r.json")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1
    assert err == (
        f"gridshare simulate: {bad}:2: tariff.energy_prices[#1]: from = '25:00': "
        'expected a time of day as HH:MM (e.g. "08:00")'
    )
    missing = tmp_path / "m.toml"
    missing.write_text('[tariff]\nenergy_prices_csv = "nowhere.csv"\n')
    code = main([*argv, "--tariff", str(missing), "--out", str(tmp_path / "r.json")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err == f"gridshare simulate: {tmp_path / 'nowhere.csv'}: no such file"
    assert not (tmp_path / "r.json").exists()
    assert np  # numpy used above
