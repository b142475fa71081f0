"""The site model rejects what cannot be a site, with a message naming the part."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from optimizer import Site
from optimizer.site import Line, connector_key, station_of

BASE_CHARGER = {"id": "C1", "group": "root", "connectors": [{"id": 1, "max_current_a": 16}]}


def make(groups: list[dict], chargers: list[dict] | None = None) -> Site:
    return Site.model_validate(
        {"site": {"name": "s"}, "groups": groups, "chargers": chargers or [BASE_CHARGER]}
    )


@pytest.mark.parametrize(
    ("groups", "message"),
    [
        ([{"id": "root"}, {"id": "b"}], "exactly one root"),
        ([{"id": "root"}, {"id": "a", "parent": "nope"}], "not a group"),
        ([{"id": "root"}, {"id": "a", "parent": "b"}, {"id": "b", "parent": "a"}], "cycle"),
        ([{"id": "root", "limit_a": -1}], "greater than or equal to 0"),
        ([{"id": "root"}, {"id": "root"}], "repeat"),
        ([{"id": "root"}, {"id": "w", "parent": "root", "weights": {"C1": 1}}], "limit_a"),
        (
            [{"id": "root"}, {"id": "w", "parent": "root", "limit_a": 5, "weights": {"X": 1}}],
            "no station or connector",
        ),
    ],
)
def test_invalid_group_trees_are_refused(groups: list[dict], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        make(groups)


@pytest.mark.parametrize(
    ("connector", "message"),
    [
        ({"id": 1, "max_current_a": 16, "phases": ["L1", "L1"]}, "distinct"),
        ({"id": 1, "max_current_a": 16, "phases": ["L4"]}, "L1"),
        ({"id": 1, "max_current_a": 6, "min_current_a": 8}, "exceeds"),
        ({"id": 0, "max_current_a": 16}, "greater than or equal to 1"),
        ({"id": 1, "max_current_a": 16, "allowed_currents_a": [0]}, "step above 0"),
    ],
)
def test_invalid_connectors_are_refused(connector: dict, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        make([{"id": "root"}], [{"id": "C1", "group": "root", "connectors": [connector]}])


def test_power_per_amp_follows_the_wiring() -> None:
    site = make(
        [{"id": "root"}],
        [
            {"id": "T", "group": "root", "connectors": [{"id": 1, "max_current_a": 16}]},
            {
                "id": "S",
                "group": "root",
                "connectors": [{"id": 1, "max_current_a": 32, "phases": ["l2"]}],
            },
            {
                "id": "P",
                "group": "root",
                "connectors": [
                    {"id": 1, "max_current_a": 32, "phases": ["L1", "L2"], "voltage_v": 208}
                ],
            },
        ],
    )
    c = site.connectors
    assert c["T/1"].kw_per_amp() == pytest.approx(0.69)  # 230 V × 3
    assert c["S/1"].kw_per_amp() == pytest.approx(0.23)
    assert c["S/1"].lines == (Line.L2,)
    assert c["P/1"].kw_per_amp() == pytest.approx(0.208)  # line-to-line pair
    assert c["T/1"].kw_per_amp((Line.L1,)) == pytest.approx(0.23)  # 1-phase car


def test_ancestors_and_weighted_members() -> None:
    site = make(
        [
            {"id": "root"},
            {"id": "p", "parent": "root"},
            {"id": "w", "parent": "root", "limit_a": 10, "weights": {"C1": -0.5}},
        ],
        [
            {
                "id": "C1",
                "group": "p",
                "connectors": [{"id": 1, "max_current_a": 16}, {"id": 2, "max_current_a": 16}],
            }
        ],
    )
    assert site.connectors["C1/2"].ancestors == ("p", "root")
    assert site.weighted_members(site.group_by_id["w"]) == {"C1/1": 0.5, "C1/2": 0.5}


@pytest.mark.parametrize("station", ["CP1", "depot/CP 2", "a:b"])
def test_station_of_inverts_connector_key(station: str) -> None:
    assert station_of(connector_key(station, 12)) == station
