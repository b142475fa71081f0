"""Mistakes in ``[tariff]`` and ``[carbon]`` of a site file: one line naming
the file, the line and the mistake, exit code 2; prices by the site's local
time, a CSV overriding the table where it has rows."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

from gridshare.config import load_config
from gridshare.tariff.config import TariffConfig
from gridshare.tariff.tariff import Tariff, cost_signal
from optimizer import TimeGrid
from optimizer.cost_signal import CostSignal
from tests.test_site_file_errors import DEPOT, line_of, plan_error


def with_tariff(body: str) -> str:
    return DEPOT + "\n[tariff]\n" + body


def test_a_peak_interval_that_does_not_divide_an_hour(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = with_tariff("peak_price_per_kw = 10\npeak_interval_minutes = 7\n")
    line = line_of(text, "peak_interval_minutes")
    assert plan_error(tmp_path, capsys, text) == (
        f"gridshare plan: {tmp_path / 'site.toml'}:{line}: tariff: peak_interval_minutes = 7: "
        "must divide an hour (5, 15, 30, 60…)"
    )


def test_a_misspelt_key_and_prices_out_of_order(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = with_tariff("peak_price_kw = 10\n")
    assert plan_error(tmp_path, capsys, text).endswith(
        "tariff: unknown key 'peak_price_kw' — did you mean 'peak_price_per_kw'?"
    )
    text = with_tariff(
        'energy_prices = [{ from = "08:00", price = 0.2 }, { from = "07:00", price = 0.1 }]\n'
    )
    assert plan_error(tmp_path, capsys, text).endswith(
        "tariff: energy_prices must be in increasing order of time, each time once"
    )
    text = DEPOT + "\n[carbon]\ncsv = []\n"
    assert "carbon.csv" in plan_error(tmp_path, capsys, text)


def test_prices_by_local_time_and_a_csv_over_the_table(tmp_path: Path) -> None:
    (tmp_path / "da.csv").write_text("start,price\n2019-05-06T12:00,0.99\n2019-05-06T13:00,0.5\n")
    cfg = TariffConfig.model_validate(
        {
            "energy_prices": [{"from": "00:00", "price": 0.28}, {"from": "08:00", "price": 0.15}],
            "energy_prices_csv": "da.csv",
        }
    )
    t = Tariff.of(cfg, "America/Los_Angeles", tmp_path)
    # 07:00 and 08:00 local (UTC-7), then the CSV's noon and 13:00 rows, then the table again
    at = [datetime(2019, 5, 6, h, 0, tzinfo=UTC) for h in (14, 15, 19, 20, 21)]
    assert list(t.price_at(at)) == [0.28, 0.15, 0.99, 0.5, 0.15]
    grid = TimeGrid(datetime(2019, 5, 6, 14, 45, tzinfo=UTC), 30, 2)
    assert np.allclose(t.slot_prices(grid), [(0.28 * 3 + 0.15 * 3) / 6, 0.15])
    assert t.period_start(at[0]) == datetime(2019, 5, 1, 7, 0, tzinfo=UTC)


def test_the_site_file_s_tables_are_read(tmp_path: Path) -> None:
    site = tmp_path / "site.toml"
    site.write_text(
        with_tariff('currency = "USD"\npeak_price_per_kw = 12.5\n')
        + '\n[carbon]\ncsv = "moer.csv.gz"\n'
    )
    config = load_config(site, environ={})
    assert config.tariff is not None and config.tariff.peak_price_per_kw == 12.5
    assert config.carbon is not None and config.carbon.csv == [Path("moer.csv.gz")]


def test_the_hedge_is_read_and_told_to_the_planner(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = with_tariff("peak_price_per_kw = 10\nhedge_share = 1.5\n")
    line = line_of(text, "hedge_share")
    assert plan_error(tmp_path, capsys, text).endswith(
        f"site.toml:{line}: tariff.hedge_share: Input should be less than 1"
    )
    grid = TimeGrid(datetime(2019, 5, 6, 14, 0, tzinfo=UTC), 15, 4)
    now = grid.start
    for share in (0.0, 0.4):
        cfg = TariffConfig.model_validate({"peak_price_per_kw": 10, "hedge_share": share})
        signal = cost_signal(Tariff.of(cfg, "America/Los_Angeles", tmp_path), None, grid, now)
        assert signal is not None and signal.hedge_share == share
    default = TariffConfig.model_validate({"peak_price_per_kw": 10})
    signal = cost_signal(Tariff.of(default, "UTC", tmp_path), None, grid, now)
    assert signal is not None and signal.hedge_share == CostSignal.hedge_share > 0
