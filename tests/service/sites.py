"""Small sites for the service tests, built in code."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from hypothesis import strategies as st

from optimizer.site import Site

NOW = datetime(2026, 3, 2, 17, 7, tzinfo=UTC)

LAYOUTS = [["L1", "L2", "L3"], ["L2", "L3", "L1"], ["L1"], ["L2"], ["L3"]]


def make_site(
    groups: list[dict[str, Any]],
    chargers: list[dict[str, Any]],
    *,
    slot_minutes: int = 15,
    horizon_hours: float = 2,
) -> Site:
    return Site.model_validate(
        {
            "site": {"name": "test", "slot_minutes": slot_minutes, "horizon_hours": horizon_hours},
            "groups": groups,
            "chargers": chargers,
        }
    )


def small_depot(n: int = 4, limit_a: float = 64, *, horizon_hours: float = 2) -> Site:
    """``n`` single-connector 32 A three-phase stations ``CP1..CPn`` on one group."""
    return make_site(
        [{"id": "grid", "limit_a": limit_a}],
        [
            {
                "id": f"CP{i}",
                "group": "grid",
                "connectors": [{"id": 1, "max_current_a": 32, "min_current_a": 6}],
            }
            for i in range(1, n + 1)
        ],
        horizon_hours=horizon_hours,
    )


@st.composite
def random_sites(draw: st.DrawFn, max_stations: int = 6) -> Site:
    root_limit = draw(st.integers(20, 200))
    groups: list[dict[str, Any]] = [{"id": "root", "limit_a": root_limit}]
    if draw(st.booleans()):
        groups[0]["limit_kw"] = draw(st.integers(10, 120))
    n_children = draw(st.integers(0, 2))
    for i in range(n_children):
        groups.append({"id": f"g{i}", "parent": "root", "limit_a": draw(st.integers(10, 120))})
    group_ids = [g["id"] for g in groups]
    n = draw(st.integers(1, max_stations))
    chargers = []
    for i in range(n):
        conns = []
        for k in range(draw(st.integers(1, 2))):
            mx = draw(st.sampled_from([16, 32]))
            conns.append(
                {
                    "id": k + 1,
                    "max_current_a": mx,
                    "min_current_a": 6,
                    "phases": draw(st.sampled_from(LAYOUTS)),
                }
            )
        chargers.append(
            {"id": f"S{i}", "group": draw(st.sampled_from(group_ids)), "connectors": conns}
        )
    return make_site(groups, chargers, horizon_hours=1)
