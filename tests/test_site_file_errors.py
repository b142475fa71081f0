"""Mistakes in a site file and its CSVs as a new user makes them: each is one
line naming the file, the line and the likely mistake, exit code 2; and a time
without an offset in a CSV is a local time of the site."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from gridshare.cli import main
from gridshare.config import load_config
from gridshare.csvio import read_capacity, read_sessions
from gridshare.simulation.sessions import read_generic

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
DEPOT = (EXAMPLES / "depot.toml").read_text()
SESSIONS = EXAMPLES / "depot-sessions.csv"


def line_of(text: str, needle: str) -> int:
    """1-based line of the first line of ``text`` that starts with ``needle``."""
    return next(n for n, line in enumerate(text.splitlines(), 1) if line.startswith(needle))


def plan_error(tmp_path: Path, capsys: pytest.CaptureFixture[str], site_text: str) -> str:
    """The one line `gridshare plan` prints for this site file (exit code 2)."""
    site = tmp_path / "site.toml"
    site.write_text(site_text)
    argv = ["plan", "--site", str(site), "--sessions", str(SESSIONS)]
    code = main([*argv, "--out", str(tmp_path / "plan.csv")])
    err = capsys.readouterr().err
    assert code == 2, err
    assert len(err.strip().splitlines()) == 1, err
    assert "Traceback" not in err and "Value error" not in err, err
    assert not (tmp_path / "plan.csv").exists()
    return err.strip()


def replaced(old: str, new: str, text: str = DEPOT) -> str:
    assert old in text
    return text.replace(old, new, 1)


# --- figures that cannot be what they claim -----------------------------------------


def test_watts_typed_as_amperes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text = replaced("max_current_a = 32 ", "max_current_a = 22000 ")
    line = line_of(text, "max_current_a = 22000")
    assert plan_error(tmp_path, capsys, text) == (
        f"gridshare plan: {tmp_path / 'site.toml'}:{line}: chargers[CP01].connectors[1]: "
        "max_current_a = 22000: looks like watts; max_current_a is in amperes per line "
        "(at most 500)"
    )


def test_watts_typed_as_kilowatts(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text = replaced("limit_kw = 250\n", "limit_kw = 250000\n")
    err = plan_error(tmp_path, capsys, text)
    assert f"site.toml:{line_of(text, 'limit_kw = 250000')}: groups[grid]: " in err
    assert "limit_kw = 250000: looks like watts; limit_kw is in kilowatts" in err
    assert "400 A per line at 230 V on three lines is 276 kW" in err


def test_line_to_line_where_line_to_neutral_is_meant(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = replaced("voltage_v = 230\n", "voltage_v = 400\n")
    assert plan_error(tmp_path, capsys, text).endswith(
        f"site.toml:{line_of(text, 'voltage_v = 400')}: site: voltage_v = 400: looks like "
        "line-to-line; voltage_v is line-to-neutral here (230 V on a 400 V network)"
    )


def test_a_connector_on_a_line_pair_takes_line_to_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pair = 'phases = ["L1", "L2"]\nvoltage_v = '
    on_pair = replaced('phases = ["L1", "L2", "L3"]\n', pair + "120\n")
    err = plan_error(tmp_path, capsys, on_pair)
    assert f"site.toml:{line_of(on_pair, 'voltage_v = 120')}: chargers[CP01].connectors[1]: " in err
    assert "voltage_v = 120: looks like line-to-neutral; a connector on a line pair" in err
    good = tmp_path / "pair.toml"
    good.write_text(replaced('phases = ["L1", "L2", "L3"]\n', pair + "400\n"))
    assert load_config(good, environ={}).site.connectors["CP01/1"].voltage_v == 400


def test_a_misspelt_time_zone_gets_a_suggestion(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = replaced('"Europe/Amsterdam"', '"Europe/Amsterdm"')
    assert plan_error(tmp_path, capsys, text).endswith(
        f"site.toml:{line_of(text, 'timezone')}: site: timezone 'Europe/Amsterdm' is not a "
        "known time zone — did you mean 'Europe/Amsterdam'?"
    )


@pytest.mark.parametrize("name", ["depot.toml", "acn-caltech.toml", "acn-jpl.toml"])
def test_the_examples_pass_the_checks(name: str) -> None:
    assert load_config(EXAMPLES / name, environ={}).site.connectors


# --- where in the file --------------------------------------------------------------


def test_an_error_cites_the_line_and_the_group_by_its_id(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = replaced("limit_a = 160\n", "limit_a = -160\n")
    err = plan_error(tmp_path, capsys, text)
    assert f"site.toml:{line_of(text, 'limit_a = -160')}: groups[panel-b].limit_a: " in err
    assert "groups.2" not in err


def test_a_misspelt_key_is_named_with_its_right_spelling(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = replaced("max_current_a = 32 ", "max_curent_a = 32 ")
    assert plan_error(tmp_path, capsys, text).endswith(
        f"site.toml:{line_of(text, 'max_curent_a')}: chargers[CP01].connectors[1]: "
        "unknown key 'max_curent_a' — did you mean 'max_current_a'?"
    )


def test_a_misspelt_key_in_a_service_table(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = replaced("dwell_hours = 8", "dwel_hours = 8")
    assert plan_error(tmp_path, capsys, text).endswith(
        f"site.toml:{line_of(text, 'dwel_hours')}: defaults: "
        "unknown key 'dwel_hours' — did you mean 'dwell_hours'?"
    )


def test_a_check_of_the_whole_tree_names_the_line_without_validator_text(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # panel-a under panel-b and panel-b under panel-a
    text = replaced('parent = "grid"', 'parent = "panel-b"')
    text = replaced('parent = "grid"', 'parent = "panel-a"', text)
    assert plan_error(tmp_path, capsys, text).endswith(
        f"site.toml:{line_of(text, 'parent = ')}: groups[panel-a].parent: "
        "group cycle: panel-a -> panel-b -> panel-a"
    )


def test_a_missing_key_is_said_so(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text = replaced('name = "Example depot"\n', "")
    assert plan_error(tmp_path, capsys, text).endswith(
        f"site.toml:{line_of(text, '[site]')}: site: required key 'name' is missing"
    )


# --- times without an offset: the site's local time ---------------------------------


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_csv_times_without_an_offset_are_local_to_the_site(tmp_path: Path) -> None:
    site = load_config(EXAMPLES / "depot.toml", environ={}).site  # Europe/Amsterdam
    sessions = write(
        tmp_path / "s.csv",
        "connector_id,arrival,departure,energy_kwh\n"
        "CP01/1,2026-11-23T17:00,2026-11-24T06:00:00+01:00,10\n"
        "CP02/1,2026-07-01T17:00:00,2026-07-01T18:00:00Z,10\n",
    )
    first, second = read_sessions(sessions, site)
    assert first.arrival == datetime(2026, 11, 23, 16, 0, tzinfo=UTC)  # CET
    assert first.departure == datetime(2026, 11, 24, 5, 0, tzinfo=UTC)
    assert second.arrival == datetime(2026, 7, 1, 15, 0, tzinfo=UTC)  # CEST
    assert second.departure == datetime(2026, 7, 1, 18, 0, tzinfo=UTC)
    capacity = write(
        tmp_path / "c.csv",
        "group_id,start,end,limit_kw\ngrid,2026-11-23T17:00,2026-11-23T20:00Z,9\n",
    )
    (window,) = read_capacity(capacity, site)
    assert window.start == datetime(2026, 11, 23, 16, 0, tzinfo=UTC)
    assert window.end == datetime(2026, 11, 23, 20, 0, tzinfo=UTC)


def test_simulation_sessions_without_an_offset_are_local_to_the_site(tmp_path: Path) -> None:
    sessions = write(
        tmp_path / "s.csv",
        "connector_id,arrival,departure,energy_kwh\n"
        "CP01/1,2019-05-01 08:00:00,2019-05-01T17:00:00-07:00,10\n",
    )
    (s,) = read_generic(sessions, "America/Los_Angeles")
    assert s.arrival == datetime(2019, 5, 1, 15, 0, tzinfo=UTC)
    assert s.departure == datetime(2019, 5, 2, 0, 0, tzinfo=UTC)
