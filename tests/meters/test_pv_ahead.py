"""The PV array in the non-EV load ahead: slot 0 stays the live reading, the
later slots the building's gross load less the PV forecast; and the site
file's ``[pv]`` and ``[charge_modes]`` checked where they are read."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from forecasts.pv import PvConfig, PvForecast, parse_pv_csv
from gridshare.config import ConfigError, parse_config
from gridshare.meters.building import BuildingLoad
from gridshare.meters.config import MeterConfig
from gridshare.meters.pv import attach_pv
from gridshare.meters.readings import checked
from gridshare.site.charge_modes import ChargeModes
from optimizer import Site, TimeGrid
from optimizer.modes import ChargeMode
from optimizer.site import LINES

T0 = datetime(2026, 6, 21, 12, 0, tzinfo=UTC)
VOLTS = 230.0


def _site() -> dict[str, Any]:
    return {
        "site": {"name": "pv", "horizon_hours": 2},
        "groups": [{"id": "grid", "limit_a": 100}],
        "chargers": [
            {"id": "CP1", "group": "grid", "connectors": [{"id": 1, "max_current_a": 32}]}
        ],
    }


def _meters() -> list[MeterConfig]:
    http = {"type": "http"}
    return [
        MeterConfig.model_validate(
            {"id": "house", "group": "grid", "measures": "load", "max_non_ev_a": 30, "source": http}
        ),
        MeterConfig.model_validate(
            {"id": "inverter", "group": "grid", "measures": "generation", "source": http}
        ),
    ]


def _read(b: BuildingLoad, meter: str, at: datetime, a: float) -> None:
    b.accept(checked(b.meters[meter].config, at, dict.fromkeys(("L1", "L2", "L3"), a), at))


def test_the_slots_ahead_are_the_gross_load_less_the_pv_forecast() -> None:
    b = BuildingLoad(Site.model_validate(_site()), _meters())
    # a forecast file: 13.8 kW (20 A per line) for the first half hour, then 6.9 kW (10 A)
    rows = ["start,kw", f"{T0.isoformat()},13.8", f"{(T0 + timedelta(minutes=30)).isoformat()},6.9",
            f"{(T0 + timedelta(hours=3)).isoformat()},0"]  # fmt: skip
    config = PvConfig(group="grid", latitude=52, longitude=5, kwp=20)
    attach_pv(b, PvForecast(config, VOLTS, parse_pv_csv(rows, "pv.csv")))
    now = T0 + timedelta(minutes=1)
    _read(b, "house", now, 8.0)
    _read(b, "inverter", now, 18.0)  # the live slot: what the meters show
    series = b.series(TimeGrid.covering(now, 15, 2), now)["grid"]
    for line in LINES:
        assert series[line][0] == pytest.approx(8.0 - 18.0)
        # ahead: the building's 8 A held, less the forecast's 20 A, then 10 A
        assert series[line][1] == pytest.approx(8.0 - 20.0)
        assert series[line][2:4] == pytest.approx([8.0 - 10.0] * 2)


def test_a_stale_generation_meter_leaves_no_pv_ahead_either() -> None:
    b = BuildingLoad(Site.model_validate(_site()), _meters())
    config = PvConfig(group="grid", latitude=52, longitude=5, kwp=20)
    rows = ["start,kw", f"{T0.isoformat()},13.8"]
    attach_pv(b, PvForecast(config, VOLTS, parse_pv_csv(rows, "pv.csv")))
    _read(b, "house", T0, 8.0)
    _read(b, "inverter", T0, 18.0)
    later = T0 + timedelta(minutes=5)  # both silent for 5 min (stale after 10 s)
    series = b.series(TimeGrid.covering(later, 15, 2), later)["grid"]
    assert np.all(series[LINES[0]] == 30.0)  # the worst case, no generation counted


def _config(tmp_path: Path, **tables: Any) -> Any:
    data = {**_site(), "meters": [m.model_dump(mode="json", exclude_defaults=True) | {
        "source": {"type": "http"}} for m in _meters()], **tables}  # fmt: skip
    return parse_config(data, "pv.toml", tmp_path / "pv.toml", environ={})


def test_the_site_file_takes_pv_and_charge_modes(tmp_path: Path) -> None:
    cfg = _config(
        tmp_path,
        pv={"group": "grid", "latitude": 52.4, "longitude": 4.9, "kwp": 12},
        charge_modes={"default": "min+solar", "id_tags": {"TAG-1": "solar", "TAG-2": "fast"}},
    )
    assert cfg.pv.kwp == 12
    modes: ChargeModes = cfg.charge_modes
    assert modes.for_tag("TAG-1") is ChargeMode.SOLAR
    assert modes.for_tag("TAG-2") is ChargeMode.FAST
    assert modes.for_tag("someone") is ChargeMode.MIN_SOLAR
    assert modes.of("fast", "TAG-1") is ChargeMode.FAST  # once set, as set
    assert modes.of(None, "TAG-1") is ChargeMode.SOLAR


@pytest.mark.parametrize(
    ("tables", "says"),
    [
        ({"pv": {"group": "nope", "latitude": 1, "longitude": 1, "kwp": 1}}, "group 'nope'"),
        ({"pv": {"group": "grid", "latitude": 91, "longitude": 1, "kwp": 1}}, "latitude"),
        ({"pv": {"group": "grid", "latitude": 1, "longitude": 1, "kwp": 1, "tilted": 3}},
         "tilted"),
        ({"pv": {"group": "grid", "latitude": 1, "longitude": 1, "kwp": 1,
                 "forecast_csv": "missing.csv"}}, "cannot read the PV forecast"),
        ({"charge_modes": {"default": "eco"}}, "'fast', 'solar' or 'min+solar'"),
        ({"charge_modes": {"id_tags": {"T": "turbo"}}}, "'fast', 'solar' or 'min+solar'"),
    ],
)  # fmt: skip
def test_a_bad_pv_or_charge_modes_table_is_one_clear_line(
    tmp_path: Path, tables: dict[str, Any], says: str
) -> None:
    with pytest.raises(ConfigError, match=re.escape(says)) as e:
        _config(tmp_path, **tables)
    assert "\n" not in str(e.value) and str(e.value).startswith("pv.toml")


def test_pv_needs_a_generation_meter(tmp_path: Path) -> None:
    data = {**_site(), "pv": {"group": "grid", "latitude": 1, "longitude": 1, "kwp": 1}}
    with pytest.raises(ConfigError, match="has no generation meter"):
        parse_config(data, "pv.toml", tmp_path / "pv.toml", environ={})
