"""The site file's service tables, with the environment's values over the file's."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from gridshare.config import ConfigError, ControllerConfig, load_config, parse_config
from gridshare.controller import ControllerSettings

DEPOT = Path(__file__).resolve().parents[1] / "examples" / "depot.toml"
SITE = {"site": {"name": "cfg"}, "groups": [{"id": "grid", "limit_a": 64}]}


def test_the_environment_overrides_every_table_not_only_the_server() -> None:
    data = {**SITE, "controller": {"replan_interval_s": 90, "pin_s": 20}}
    env = {
        "GRIDSHARE_CONTROLLER__REPLAN_INTERVAL_S": "30",
        "GRIDSHARE_API__OPEN_READS_ON_LOOPBACK": "true",
        "GRIDSHARE_DEFAULTS__ENERGY_KWH": "12.5",
        "GRIDSHARE_API__TOKENS": '[{"name": "ops", "token": "t0k3n-t0k3n-t0k3n", "role": "write"}]',
    }
    cfg = parse_config(data, "cfg.toml", environ=env)
    assert cfg.controller.replan_interval_s == 30.0  # the environment wins
    assert cfg.controller.pin_s == 20.0  # the file's other values stay
    assert cfg.api.open_reads_on_loopback is True
    assert [(t.name, t.role) for t in cfg.api.tokens] == [("ops", "write")]
    assert cfg.defaults.energy_kwh == 12.5
    assert parse_config(data, "cfg.toml", environ={}).controller.replan_interval_s == 90.0


def test_the_process_environment_is_read_when_none_is_given(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("GRIDSHARE_CONTROLLER__MIN_CHANGE_A", "2.5")
    assert load_config(DEPOT).controller.min_change_a == 2.5
    assert load_config(DEPOT, environ={}).controller.min_change_a == 1.0


def test_comma_separated_host_lists_stay_as_they_were() -> None:
    env = {
        "GRIDSHARE_SERVER__ALLOWED_HOSTS": "a.example, b.example",
        "GRIDSHARE_SERVER__TRUSTED_PROXIES": "10.0.0.1,10.0.0.2",
    }
    cfg = parse_config(SITE, environ=env)
    assert cfg.server.allowed_hosts == ["a.example", "b.example"]
    assert cfg.server.trusted_proxies == ["10.0.0.1", "10.0.0.2"]


@pytest.mark.parametrize(
    ("variable", "value", "field"),
    [
        ("GRIDSHARE_CONTROLLER__COALESCE_S", "-1", "controller.coalesce_s"),
        ("GRIDSHARE_CONTROLLER__COALESCE_S", "soon", "controller.coalesce_s"),
        ("GRIDSHARE_CONTROLLER__NO_SUCH_KEY", "maybe", "controller.no_such_key"),
        ("GRIDSHARE_API__TOKENS", "ops:secret", "api.tokens"),
        ("GRIDSHARE_SERVER__STATION_PASSWORDS", "CP1=pw", "server.station_passwords"),
    ],
)
def test_a_bad_environment_value_is_one_line_naming_the_variable_and_field(
    variable: str, value: str, field: str
) -> None:
    env = {"GRIDSHARE_SERVER__HTTP_PORT": "8181", variable: value}
    with pytest.raises(ConfigError) as err:
        parse_config(SITE, "cfg.toml", environ=env)
    message = str(err.value)
    assert message.startswith(f"{variable}: {field}: ")
    assert "\n" not in message
    assert value not in message  # a secret set by mistake is not echoed


def test_a_bad_file_value_still_names_the_file() -> None:
    env = {"GRIDSHARE_SERVER__HTTP_PORT": "8181"}
    with pytest.raises(ConfigError, match=r"^cfg\.toml: controller\.pin_s: "):
        parse_config({**SITE, "controller": {"pin_s": 0}}, "cfg.toml", environ=env)


def test_the_controller_defaults_are_the_controllers_own() -> None:
    own = dataclasses.asdict(ControllerSettings())
    assert ControllerConfig().model_dump() == {k: own[k] for k in ControllerConfig.model_fields}


def test_the_retention_table_from_the_file_and_the_environment() -> None:
    data = {**SITE, "retention": {"plans": "7d", "raw_meter_values": "12h"}}
    cfg = parse_config(data, "cfg.toml", environ={"GRIDSHARE_RETENTION__PLANS": "2d"})
    assert (cfg.retention.plans, cfg.retention.raw_meter_values) == ("2d", "12h")
    assert parse_config(SITE, environ={}).retention.rollups == "forever"


def test_a_retention_that_is_not_a_duration_is_one_line_naming_it() -> None:
    with pytest.raises(ConfigError) as e:
        parse_config({**SITE, "retention": {"plans": "7x"}}, "cfg.toml", environ={})
    assert "retention.plans" in str(e.value) and "7d, 12h or 15m" in str(e.value)
    assert "\n" not in str(e.value)
