"""``[[meters]]`` in the site file: read, and every mistake one line naming
the file, the line and the meter."""

from __future__ import annotations

from pathlib import Path

import pytest

from gridshare.config import ConfigError, load_config, load_site
from gridshare.meters.config import Measures

SITE = """\
[site]
name = "office"

[[groups]]
id = "grid"
limit_a = 100

[[groups]]
id = "panel"
parent = "grid"
limit_a = 63

[[chargers]]
id = "CP1"
group = "panel"
[[chargers.connectors]]
id = 1
max_current_a = 32
"""

MODBUS = """
[[meters]]
id = "main"
group = "grid"
measures = "connection"
interval_s = 1
stale_after_s = 10
max_non_ev_a = [40, 35, 30]
[meters.source]
type = "modbus"
host = "10.0.0.5"
unit_id = 2
register_map = "sunspec"
"""


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "site.toml"
    p.write_text(text)
    return p


def error(tmp_path: Path, text: str) -> str:
    with pytest.raises(ConfigError) as e:
        load_config(write(tmp_path, text), environ={})
    return str(e.value)


def test_meters_are_read_with_their_sources(tmp_path: Path) -> None:
    text = (
        SITE
        + MODBUS
        + """
[[meters]]
id = "pv"
group = "panel"
measures = "generation"
[meters.source]
type = "mqtt"
topic = "site/pv"
json_path = ["ac.l1", "ac.l2", "ac.l3"]

[[meters]]
id = "kitchen"
group = "panel"
measures = "load"
max_non_ev_a = 16
source = { type = "http" }
"""
    )
    cfg = load_config(write(tmp_path, text), environ={})
    main, pv, kitchen = cfg.meters
    assert main.max_non_ev_a == (40, 35, 30)
    assert main.source.port_or_default == 502 and main.source.register_map == "sunspec"
    assert pv.measures is Measures.GENERATION and pv.source.port_or_default == 1883
    assert kitchen.max_non_ev_a == (16, 16, 16)
    # the planner's site does not carry them: `gridshare plan` reads the same file
    assert load_site(write(tmp_path, text)).site.name == "office"


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (
            ("unit_id = 2", "unti_id = 2"),
            "site.toml:30: meters[main].source: unknown key 'unti_id' — did you mean 'unit_id'?",
        ),
        (
            ('group = "grid"\nmeasures', 'group = "gird"\nmeasures'),
            "site.toml:22: meters[main]: group 'gird' is not a group of the site",
        ),
        (('"connection"', '"conection"'), "site.toml:23: meters[main].measures: Input should be"),
        (
            ("[40, 35, 30]", "[40, 35]"),
            "site.toml:26: meters[main]: max_non_ev_a takes one figure for every line, or three",
        ),
        (("[40, 35, 30]", "40000"), "max_non_ev_a = 40000: looks like watts"),
        (
            ("[40, 35, 30]", "120"),
            "site.toml:26: meters[main]: max_non_ev_a 120 A is above the group's limit_a 100 A",
        ),
        (
            ("stale_after_s = 10", "stale_after_s = 0.5"),
            "site.toml:25: meters[main]: stale_after_s = 0.5 is shorter than interval_s = 1",
        ),
        (
            ('host = "10.0.0.5"\n', ""),
            "site.toml:27: meters[main].source: required key 'host' is missing for a modbus source",
        ),
        (
            ("unit_id = 2", 'topic = "x"'),
            "meters[main].source: unknown key 'topic' for a modbus source",
        ),
        (
            ('type = "modbus"', 'type = "modbsu"'),
            "meters[main].source.type: Input should be 'modbus', 'mqtt', 'http' or 'ocpp'",
        ),
    ],
)
def test_a_mistake_names_file_line_and_meter(
    tmp_path: Path, change: tuple[str, str], expected: str
) -> None:
    old, new = change
    assert old in MODBUS
    message = error(tmp_path, SITE + MODBUS.replace(old, new, 1))
    assert expected in message, message
    assert "\n" not in message


def test_a_meter_id_repeats_or_a_group_gets_two_connection_meters(tmp_path: Path) -> None:
    twice = SITE + MODBUS + MODBUS.replace('id = "main"', 'id = "main2"')
    assert "meters[main2]: group 'grid' already has connection meter 'main'" in error(
        tmp_path, twice
    )
    same = SITE + MODBUS + MODBUS.replace('"connection"', '"load"')
    assert "meters[main]: meter id 'main' repeats" in error(tmp_path, same)


def test_an_ocpp_meter_names_a_station_of_the_site(tmp_path: Path) -> None:
    text = (
        SITE + MODBUS.split("[meters.source]")[0] + 'source = { type = "ocpp", station = "CP9" }\n'
    )
    assert "station 'CP9' is not a charger of the site" in error(tmp_path, text)


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        ("annual_kwh = 50000\n", "meters[main]: annual_kwh is given without profile"),
        ('profile = "g1"\n', "meters[main]: profile is given without annual_kwh"),
        (
            'annual_kwh = 50000\nprofile = "g9"\n',
            "site.toml:28: meters[main]: profile 'g9' is not a BDEW profile (one of g0, g1, h0)",
        ),
        ('country = "XX"\n', "meters[main]: country 'XX': no public holidays known for it"),
        (
            'annual_kwh = -5\nprofile = "g1"\n',
            "site.toml:27: meters[main].annual_kwh: Input should be greater than 0",
        ),
    ],
)
def test_the_forecast_prior_is_checked(tmp_path: Path, extra: str, expected: str) -> None:
    text = (SITE + MODBUS).replace("[meters.source]", extra + "[meters.source]")
    assert expected in error(tmp_path, text)


def test_the_forecast_prior_is_read(tmp_path: Path) -> None:
    text = (SITE + MODBUS).replace(
        "[meters.source]", 'annual_kwh = 50000\nprofile = "G0"\ncountry = "de"\n[meters.source]'
    )
    (main,) = load_config(write(tmp_path, text), environ={}).meters
    assert (main.annual_kwh, main.profile, main.country) == (50000, "g0", "DE")
