"""ACN sites.json → site files: lines, tree groups, weighted primaries, ratings."""

from __future__ import annotations

import pytest

from gridshare.commands import import_acn
from gridshare.config import load_site
from gridshare.simulation.acn import (
    ANGLE_LINES,
    convert_site,
    default_capacity_group,
    load_sites_json,
    scale_group,
    to_toml,
)
from gridshare.simulation.capacity import SiteLimits
from tests.simulation.helpers import CALTECH_SITE, JPL_SITE, SITES_JSON


@pytest.fixture(scope="module")
def raw() -> dict:
    return load_sites_json(SITES_JSON)


def test_phase_angles_map_to_line_pairs(raw: dict) -> None:
    site = convert_site("jpl", raw["jpl"]).site()
    for e in raw["jpl"]["evses"]:
        info = site.connectors[f"{e['station_id']}/1"]
        assert tuple(info.lines) == ANGLE_LINES[e["phase_angle_deg"]]
        assert info.voltage_v == 208.0
        assert info.kw_per_amp() == pytest.approx(0.208)
        assert info.connector.allowed_currents_a == tuple(e["allowed_currents_a"])


@pytest.mark.parametrize("key", ["caltech", "jpl"])
def test_every_published_constraint_is_a_limit_row(raw: dict, key: str) -> None:
    """Each constraint, magnitudes summed, appears among the site's limit rows:
    same stations with the same |coefficient| and the same limit."""
    site = convert_site(key, raw[key], exact=False).site()
    limits = SiteLimits(site)
    cols = {k.split("/")[0]: i for i, k in enumerate(limits.connector_ids)}
    for c in raw[key]["constraints"]:
        want = [0.0] * len(cols)
        for sid, v in c["coefficients"].items():
            want[cols[sid]] = abs(v)
        hits = [
            r
            for r in range(len(limits.rows))
            if limits.static[r] == pytest.approx(c["limit_a"])
            and list(limits.matrix[r]) == pytest.approx(want)
        ]
        assert hits, f"{key}: {c['name']} has no matching limit"


def test_jpl_tree_and_transformers(raw: dict) -> None:
    conv = convert_site("jpl", raw["jpl"])
    site = conv.site()
    assert conv.transformers == {
        "third-fourth-floor-transformer": 150.0,
        "first-floor-transformer": 45.0,
    }
    g = site.group_by_id
    assert g["third-floor-panel"].parent == "third-fourth-floor-transformer"
    assert g["first-floor-sp1"].parent == "first-floor-transformer"
    primaries = [x for x in site.groups if x.weights is not None]
    assert len(primaries) == 6
    assert all("primary" in p.id for p in primaries)
    assert {abs(w) for p in primaries for w in (p.weights or {}).values()} == {0.25, 0.5}
    assert default_capacity_group(site) == "third-fourth-floor-transformer"


def test_caltech_transformer_is_the_root(raw: dict) -> None:
    site = convert_site("caltech", raw["caltech"]).site()
    assert site.root.id == "transformer"
    assert site.root.limit_kw == 150.0
    assert {g.id for g in site.groups if g.weights is None} == {"transformer", "cc-pod", "av-pod"}


def test_a_constraint_that_is_no_branch_becomes_weighted(raw: dict) -> None:
    bent = dict(raw["jpl"])
    cons = [dict(c) for c in bent["constraints"]]
    sp1 = next(c for c in cons if c["name"] == "First Floor SP1 I_b")
    sp1["coefficients"] = {**sp1["coefficients"], "AG-1F13": -1.0}  # a station of line c
    bent["constraints"] = cons
    conv = convert_site("jpl", bent)
    assert "first-floor-sp1" not in conv.tree_groups
    assert "first-floor-sp1-i-b" in conv.weighted_groups


def test_a_line_with_a_wrong_sign_is_no_branch(raw: dict) -> None:
    """I_a = I_ab − I_ca: a constraint adding the pair drawn back into the line
    is not that line's phasor sum, so it stays a weighted group of its own."""
    bent = dict(raw["jpl"])
    cons = [dict(c) for c in bent["constraints"]]
    sp1 = next(c for c in cons if c["name"] == "First Floor SP1 I_a")
    sp1["coefficients"] = {k: abs(v) for k, v in sp1["coefficients"].items()}
    bent["constraints"] = cons
    conv = convert_site("jpl", bent)
    assert "first-floor-sp1" not in conv.tree_groups
    assert "first-floor-sp1-i-a" in conv.weighted_groups


def test_scale_group_scales_limits_and_primaries() -> None:
    site = load_site(JPL_SITE)
    s = scale_group(site, "third-fourth-floor-transformer", 30.0)
    g, g0 = s.group_by_id, site.group_by_id
    t = "third-fourth-floor-transformer"
    assert g[t].limit_kw == 30.0
    t_limit_a = g0[t].limit_a
    assert t_limit_a is not None
    assert g[t].limit_a == pytest.approx(t_limit_a * 0.2)
    p = "third-fourth-floor-transformer-primary-a"
    p_limit_a = g0[p].limit_a
    assert p_limit_a is not None
    assert g[p].limit_a == pytest.approx(p_limit_a * 0.2)
    assert g["third-floor-panel"].limit_a == 225.0
    assert g["first-floor-transformer"].limit_a == 125.0


def test_committed_examples_match_the_converter(tmp_path, capsys) -> None:
    assert import_acn.main([str(SITES_JSON), "--out", str(tmp_path)]) == 0
    for name, committed in (("caltech", CALTECH_SITE), ("jpl", JPL_SITE)):
        made = (tmp_path / f"acn-{name}.toml").read_text()
        assert made == committed.read_text()
        assert "phasor = true" in made and "(magnitudes summed)" not in made
    assert "transformers" in capsys.readouterr().out


def test_toml_round_trips(raw: dict, tmp_path) -> None:
    conv = convert_site("caltech", raw["caltech"])
    path = tmp_path / "c.toml"
    path.write_text(to_toml(conv))
    assert load_site(path) == conv.site()


def test_import_acn_bad_file(tmp_path, capsys) -> None:
    bad = tmp_path / "sites.json"
    bad.write_text(
        '{"x": {"evses": [{"station_id": "S", "phase_angle_deg": 45}], "constraints": []}}'
    )
    assert import_acn.main([str(bad), "--out", str(tmp_path)]) == 2
    assert "phase angle" in capsys.readouterr().err
