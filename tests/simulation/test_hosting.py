"""Hosting capacity: added chargers copy the site's own, their drivers come on
real days of the site's sessions, and the study's figures are the runs' own."""

from __future__ import annotations

import json
from collections import Counter

import numpy as np
import pandas as pd
import pytest

from gridshare.commands import simulate
from gridshare.simulation import run_strategies
from gridshare.simulation.hosting import (
    HostingError,
    add_chargers,
    hosting_runs,
    hosting_table,
    most_that_fit,
    placement,
    sessions_for_new,
)
from gridshare.simulation.report import served_pct
from optimizer import Site
from tests.simulation.helpers import JPL_SESSIONS, JPL_SITE, jpl_site, session, tiny_site


def test_added_chargers_copy_the_ones_below_the_group_in_turn() -> None:
    site = tiny_site()
    grown, copies = add_chargers(site, "main", 4)
    ids = [ch.id for ch in grown.chargers]
    assert ids == ["A", "B", "C", "NEW-1", "NEW-2", "NEW-3", "NEW-4"]
    assert copies == {"NEW-1/1": "A/1", "NEW-2/1": "B/1", "NEW-3/1": "C/1", "NEW-4/1": "A/1"}
    for new, model in copies.items():
        assert grown.connectors[new].connector == grown.connectors[model].connector
        assert grown.connectors[new].group == grown.connectors[model].group
    assert [ch.id for ch in site.chargers] == ["A", "B", "C"]  # the site itself is unchanged


def test_added_chargers_join_their_models_weighted_limits() -> None:
    site = jpl_site()
    grown, copies = add_chargers(site, "first-floor-sp1", 3)
    models = {new.split("/")[0]: model.split("/")[0] for new, model in copies.items()}
    weighted = [g for g in grown.groups if g.weights and "first-floor" in g.id]
    assert weighted
    for g in weighted:
        for new, model in models.items():
            assert g.weights is not None and g.weights[new] == g.weights[model]
    for new, model in models.items():
        assert grown.connectors[f"{new}/1"].group == "first-floor-sp1"
        assert grown.connectors[f"{model}/1"].group == "first-floor-sp1"


def test_copies_go_to_panels_in_turn_and_even_out_the_lines() -> None:
    site = jpl_site()
    under = "third-fourth-floor-transformer"

    def lines_and_panels(s: Site) -> tuple[Counter[str], Counter[str]]:
        lines: Counter[str] = Counter()
        panels: Counter[str] = Counter()
        for info in s.connectors.values():
            if under in info.ancestors:
                lines.update(info.connector.phases)
                panels[info.group] += 1
        return lines, panels

    lines0, panels0 = lines_and_panels(site)
    grown, _ = add_chargers(site, under, 20)
    lines1, panels1 = lines_and_panels(grown)
    assert max(lines0.values()) - min(lines0.values()) == 6  # the site as built: 28/26/22
    assert max(lines1.values()) - min(lines1.values()) <= 2
    assert {p: panels1[p] - panels0[p] for p in panels0} == dict.fromkeys(panels0, 10)
    assert placement(site, under, 7) == placement(site, under, 20)[:7]


@pytest.mark.parametrize(
    "under, count, message",
    [
        ("nope", 1, "unknown group"),
        ("first-floor-transformer-primary-a", 1, "weighted"),
        ("first-floor-sp1", -1, "cannot add -1"),
    ],
)
def test_bad_study_is_refused(under: str, count: int, message: str) -> None:
    with pytest.raises(HostingError, match=message):
        add_chargers(jpl_site(), under, count)


def test_new_connectors_take_a_donors_whole_day() -> None:
    day1 = [session("a1", "A/1", 0, 60, 5), session("a2", "A/1", 90, 200, 3)]
    day2 = [session("b1", "B/1", 24 * 60, 24 * 60 + 120, 7)]
    sessions = day1 + day2
    new = ["NEW-1/1", "NEW-2/1", "NEW-3/1"]
    out = sessions_for_new(sessions, ["A/1", "B/1", "C/1"], new, "UTC", seed=3)
    by_id = {s.session_id: s for s in sessions}
    for con in new:
        mine = [s for s in out if s.connector_id == con]
        for day in (0, 1):
            on_day = [s for s in mine if (s.arrival - day1[0].arrival).days == day]
            donors = {by_id[s.session_id.split("@")[0]].connector_id for s in on_day}
            assert len(donors) <= 1  # one donor's day, whole
            if donors == {"A/1"}:
                assert [s.session_id for s in on_day] == [f"a1@{con}", f"a2@{con}"]
        for s in mine:
            real = by_id[s.session_id.split("@")[0]]
            assert (s.arrival, s.departure, s.energy_kwh) == (
                real.arrival,
                real.departure,
                real.energy_kwh,
            )
    assert len({s.session_id for s in out}) == len(out)
    # connector k's draws do not depend on how many are added
    fewer = sessions_for_new(sessions, ["A/1", "B/1", "C/1"], new[:1], "UTC", seed=3)
    assert fewer == [s for s in out if s.connector_id == new[0]]


def _busy_day() -> list:
    """Every connector busy all morning: three cars wanting more than the fuse gives."""
    out = []
    for d in range(2):
        base = d * 24 * 60
        out += [
            session(f"a{d}", "A/1", base, base + 240, 12),
            session(f"b{d}", "B/1", base + 30, base + 300, 18),
            session(f"c{d}", "C/1", base + 60, base + 240, 15),
        ]
    return out


def test_no_added_chargers_is_the_site_itself() -> None:
    site, sessions = tiny_site(limit_a=40), _busy_day()
    [(n, results)] = hosting_runs(site, sessions, under="main", counts=[0])
    plain = run_strategies(site, sessions, ["gridshare", "uncontrolled"])
    assert n == 0
    for name, r in results.items():
        assert np.array_equal(r.delivered_kwh, plain[name].delivered_kwh)
        pct = 100 * r.delivered_kwh.sum() / r.need_kwh.sum()
        assert r.extra["existing_delivered_pct"] == pytest.approx(pct, abs=1e-3)


def test_more_chargers_under_a_tight_fuse_serve_fewer_drivers() -> None:
    site, sessions = tiny_site(limit_a=40), _busy_day()
    runs = hosting_runs(site, sessions, under="main", counts=[0, 3, 6], seed=1)
    table = hosting_table(runs)
    g = table.xs("gridshare", level="strategy")
    assert list(g["sessions"]) == sorted(g["sessions"]) and g["sessions"].iloc[-1] > 6
    assert (g["violations"] == 0).all()
    assert g["delivered_pct"].iloc[-1] < g["delivered_pct"].iloc[0] - 5
    assert g["existing_delivered_pct"].iloc[-1] < g["existing_delivered_pct"].iloc[0]
    assert (table.xs("uncontrolled", level="strategy")["violations"] > 0).all()
    # the table's figures are the runs' own
    for n, results in runs:
        r = results["gridshare"]
        assert table.loc[(n, "gridshare"), "served_pct"] == served_pct(r)
        old = [i for i, s in enumerate(r.sessions) if not s.connector_id.startswith("NEW-")]
        pct = 100 * r.delivered_kwh[old].sum() / r.need_kwh[old].sum()
        assert table.loc[(n, "gridshare"), "existing_delivered_pct"] == pytest.approx(pct, 1e-4)


def test_most_that_fit_stops_at_the_first_count_that_fails() -> None:
    rows = [
        (0, "gridshare", 99.0, 0),
        (10, "gridshare", 95.0, 0),
        (20, "gridshare", 85.0, 0),
        (30, "gridshare", 92.0, 0),  # noisy draw: does not count once 20 failed
        (0, "uncontrolled", 99.9, 3),
    ]
    table = pd.DataFrame(
        rows, columns=["added_chargers", "strategy", "served_pct", "violations"]
    ).set_index(["added_chargers", "strategy"])
    assert most_that_fit(table, min_served_pct=90) == 10
    assert most_that_fit(table, min_served_pct=99.5) is None
    assert most_that_fit(table, min_served_pct=50, strategy="uncontrolled") is None


def test_simulate_command_hosting_study(tmp_path, capsys) -> None:
    out = tmp_path / "report.json"
    plot = tmp_path / "report.png"
    argv = [
        "--site", str(JPL_SITE), "--sessions", str(JPL_SESSIONS),
        "--from", "2019-05-08", "--to", "2019-05-08", "--capacity-kw", "50",
        "--strategy", "gridshare", "uncontrolled", "--add-chargers", "0", "12",
        "--out", str(out), "--plot", str(plot),
    ]  # fmt: skip
    assert simulate.main(argv) == 0
    report = json.loads(out.read_text())
    assert [r["added_chargers"] for r in report["runs"]] == [0, 12]
    assert report["meta"]["added_under"] == "third-fourth-floor-transformer"
    base, grown = (r["strategies"]["gridshare"] for r in report["runs"])
    assert grown["sessions"] > base["sessions"]
    assert base["violations"] == grown["violations"] == 0
    assert grown["existing_delivered_pct"] <= base["existing_delivered_pct"] + 0.5
    assert plot.stat().st_size > 1000
    printed = capsys.readouterr().out
    assert "| 50 | 12 |" in printed
    assert "uncontrolled at 50 kW: none of the counts studied" in printed
    assert "gridshare at 50 kW: " in printed


def test_served_counts_sessions_at_95_percent() -> None:
    site = tiny_site(limit_a=40)
    sessions = [session("a", "A/1", 0, 30, 50), session("b", "B/1", 0, 240, 1)]
    r = run_strategies(site, sessions, ["gridshare"])["gridshare"]
    assert 0.95 <= r.delivered_kwh[1] <= 1.0 and r.delivered_kwh[0] < 0.95 * 50
    assert served_pct(r) == 50.0
