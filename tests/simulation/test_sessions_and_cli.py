"""Sessions files, the capacity CSV and the two commands."""

from __future__ import annotations

import json
from datetime import timedelta

import pandas as pd
import pytest

from gridshare.commands import simulate
from gridshare.simulation.capacity import SiteLimits, read_capacity_csv
from gridshare.simulation.report import REPORT_KEYS
from gridshare.simulation.sessions import (
    SessionsError,
    prepare_sessions,
    read_acn,
    read_generic,
    read_sessions,
)
from tests.simulation.helpers import JPL_SESSIONS, JPL_SITE, T0, session, tiny_site


def test_acn_claimed_flag() -> None:
    sessions = read_acn(JPL_SESSIONS)
    raw = pd.read_csv(JPL_SESSIONS)
    assert len(sessions) == len(raw)
    by_id = {s.session_id: s for s in sessions}
    for _, row in raw.head(400).iterrows():
        s = by_id[row["session_id"]]
        assert s.connector_id == f"{row['station_id']}/1"
        assert s.energy_kwh == row["delivered_energy (kWh)"]
        if row["claimed"]:
            assert s.stated_energy_kwh == row["requested_energy (kWh)"]
            assert s.stated_departure is not None
        else:
            assert s.stated_energy_kwh is None and s.stated_departure is None
        assert s.arrival.utcoffset() == timedelta(0)


def test_generic_csv(tmp_path) -> None:
    p = tmp_path / "s.csv"
    p.write_text(
        "connector_id,arrival,departure,energy_kwh,stated_energy_kwh\n"
        "A/1,2024-03-04T08:00:00Z,2024-03-04T10:00:00Z,5,8\n"
        "B/1,2024-03-04T09:00:00+01:00,2024-03-04T12:00:00+01:00,7,\n"
    )
    a, b = read_sessions(p)
    assert a.stated_energy_kwh == 8.0 and a.stated_departure is None
    assert b.arrival == T0 and b.stated_energy_kwh is None


def test_generic_csv_errors_name_the_line(tmp_path) -> None:
    p = tmp_path / "s.csv"
    p.write_text(
        "connector_id,arrival,departure,energy_kwh\n"
        "A/1,2024-03-04T08:00:00Z,2024-03-04T07:00:00Z,5\n"
    )
    with pytest.raises(SessionsError, match="line 2"):
        read_generic(p)
    (tmp_path / "t.csv").write_text("connector_id,arrival\n")
    with pytest.raises(SessionsError, match="missing column"):
        read_generic(tmp_path / "t.csv")


def test_prepare_snaps_and_drops() -> None:
    site = tiny_site()
    items = [
        session("a", "A/1", 1, 62, 1.0),  # snaps to 0..60
        session("b", "A/1", 30, 90, 1.0),  # overlaps a
        session("c", "B/1", 10, 11, 1.0),  # no whole step
        session("d", "Z/1", 0, 60, 1.0),  # unknown connector
    ]
    p = prepare_sessions(items, site.connectors, timedelta(minutes=5))
    assert [s.session_id for s in p.sessions] == ["a"]
    assert p.sessions[0].arrival == T0 and p.sessions[0].departure == T0 + timedelta(hours=1)
    assert (p.overlapping, p.too_short, p.unknown_connector) == (1, 1, 1)


def test_capacity_csv_lowers_limits(tmp_path) -> None:
    site = tiny_site(limit_a=32)
    p = tmp_path / "cap.csv"
    p.write_text(
        "group_id,start,end,limit_a,limit_kw\nmain,2024-03-04T09:00:00Z,2024-03-04T10:00:00Z,10,\n"
    )
    limits = SiteLimits(site, read_capacity_csv(p, site))
    l1 = next(i for i, r in enumerate(limits.rows) if r.quantity == "L1")
    assert limits.at(T0)[l1] == 32
    assert limits.at(T0 + timedelta(hours=1, minutes=30))[l1] == 10
    bad = tmp_path / "bad.csv"
    bad.write_text("group_id,start,end,limit_a\nnope,2024-03-04T09:00:00Z,2024-03-04T10:00Z,1\n")
    with pytest.raises(ValueError, match="line 2"):
        read_capacity_csv(bad, site)


def test_simulate_command_sweep(tmp_path, capsys) -> None:
    out = tmp_path / "report.json"
    plot = tmp_path / "report.png"
    argv = [
        "--site", str(JPL_SITE), "--sessions", str(JPL_SESSIONS),
        "--from", "2019-05-08", "--to", "2019-05-08", "--capacity-kw", "30", "60",
        "--strategy", "edf", "uncontrolled", "--out", str(out), "--plot", str(plot),
    ]  # fmt: skip
    assert simulate.main(argv) == 0
    report = json.loads(out.read_text())
    assert [r["capacity_kw"] for r in report["runs"]] == [30.0, 60.0]
    for run in report["runs"]:
        assert set(run["strategies"]) == {"edf", "uncontrolled"}
        for fig in run["strategies"].values():
            assert set(REPORT_KEYS) <= set(fig)
        assert run["strategies"]["edf"]["violations"] == 0
    assert report["meta"]["capacity_group"] == "third-fourth-floor-transformer"
    assert plot.stat().st_size > 1000
    assert "| 30 |" in capsys.readouterr().out


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--capacity-kw", "30", "--capacity-group", "first-floor-sp1"], "no limit_kw"),
        (["--from", "2030-01-01"], "no sessions"),
        (["--add-chargers", "-1"], "must be ≥ 0"),
        (["--add-chargers", "2", "--add-under", "nope"], "unknown group 'nope'"),
        (["--add-chargers", "2", "--add-under", "first-floor-transformer-primary-a"], "weighted"),
        (["--add-under", "first-floor-sp1"], "needs --add-chargers"),
    ],
)
def test_simulate_command_bad_input(tmp_path, capsys, extra, message) -> None:
    argv = ["--site", str(JPL_SITE), "--sessions", str(JPL_SESSIONS), "--out",
            str(tmp_path / "r.json"), *extra]  # fmt: skip
    assert simulate.main(argv) == 2
    assert message in capsys.readouterr().err


def test_simulate_command_missing_site(tmp_path, capsys) -> None:
    argv = ["--site", str(tmp_path / "none.toml"), "--sessions", str(JPL_SESSIONS), "--out",
            str(tmp_path / "r.json")]  # fmt: skip
    assert simulate.main(argv) == 2
    assert "none.toml" in capsys.readouterr().err
