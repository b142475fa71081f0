"""Site and problem builders for optimizer tests (hypothesis strategies included)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
from hypothesis import strategies as st

from optimizer import Capacity, PlanningProblem, SessionDemand, Site, TimeGrid
from optimizer.site import LINES

NOW = datetime(2026, 3, 2, 17, 7, tzinfo=UTC)

PHASE_LAYOUTS = [
    ["L1", "L2", "L3"],
    ["L2", "L3", "L1"],
    ["L1"],
    ["L2"],
    ["L3"],
    ["L1", "L2"],
    ["L2", "L3"],
    ["L3", "L1"],
]


def site_from(
    groups: list[dict], chargers: list[dict], slot_minutes: int = 15, horizon_hours: float = 6
) -> Site:
    return Site.model_validate(
        {
            "site": {"name": "test", "slot_minutes": slot_minutes, "horizon_hours": horizon_hours},
            "groups": groups,
            "chargers": chargers,
        }
    )


def problem(
    site: Site,
    sessions: list[SessionDemand],
    *,
    capacity: Capacity | None = None,
    now: datetime = NOW,
    **kw: object,
) -> PlanningProblem:
    grid = TimeGrid.covering(now, site.site.slot_minutes, site.site.horizon_hours)
    cap = capacity or Capacity.static(site, grid)
    return PlanningProblem(site, grid, now, tuple(sessions), cap, **kw)  # type: ignore[arg-type]


@st.composite
def sites_and_sessions(
    draw: st.DrawFn, max_connectors: int = 8, slot_minutes: int = 15
) -> PlanningProblem:
    n_groups = draw(st.integers(1, 4))
    groups: list[dict] = []
    for i in range(n_groups):
        g: dict = {"id": f"g{i}"}
        if i:
            g["parent"] = f"g{draw(st.integers(0, i - 1))}"
        if draw(st.booleans()):
            g["limit_a"] = draw(st.floats(0, 80, allow_nan=False).map(lambda v: round(v, 1)))
        if draw(st.integers(0, 3)) == 0:
            g["limit_kw"] = draw(st.floats(0, 60, allow_nan=False).map(lambda v: round(v, 1)))
        groups.append(g)
    n = draw(st.integers(1, max_connectors))
    chargers = []
    for i in range(n):
        phases = draw(st.sampled_from(PHASE_LAYOUTS))
        con: dict = {
            "id": 1,
            "max_current_a": draw(st.sampled_from([10.0, 16.0, 32.0])),
            "min_current_a": draw(st.sampled_from([0.0, 6.0, 8.0])),
            "phases": phases,
        }
        if len(phases) == 2:
            con["voltage_v"] = 208.0
        if draw(st.integers(0, 4)) == 0:
            con["allowed_currents_a"] = [0.0, 8.0, 16.0, 24.0, 32.0]
            con["min_current_a"] = 8.0
        chargers.append(
            {"id": f"C{i}", "group": f"g{draw(st.integers(0, n_groups - 1))}", "connectors": [con]}
        )
    if n >= 2 and draw(st.integers(0, 3)) == 0:
        # a weighted constraint over two stations (like a transformer's primary side)
        groups.append(
            {
                "id": "w",
                "parent": "g0",
                "limit_a": draw(st.floats(5, 60)),
                "weights": {"C0": 0.5, "C1/1": -0.25},
            }
        )
    site = site_from(groups, chargers, slot_minutes=slot_minutes)
    sessions = draw_sessions(
        draw,
        n,
        arrive=st.integers(-120, 180),
        dwell=st.integers(10, 420),
        energy=st.floats(0, 60, allow_nan=False),
        ev_max=st.sampled_from([None, 8.0, 13.0, 32.0]),
        priority=st.sampled_from([1.0, 1.0, 2.0]),
        taper=st.sampled_from([None, None, 2.0, 5.0]),
    )
    grid = TimeGrid.covering(NOW, site.site.slot_minutes, site.site.horizon_hours)
    cap = Capacity.static(site, grid)
    for _ in range(draw(st.integers(0, 2))):
        gid = f"g{draw(st.integers(0, n_groups - 1))}"
        a = draw(st.integers(0, grid.slots - 1))
        mask = np.zeros(grid.slots, bool)
        mask[a : a + draw(st.integers(1, 8))] = True
        cap = cap.lowered(gid, mask, limit_a=draw(st.floats(0, 40)), limit_kw=None)
    fixed = {}
    if draw(st.integers(0, 3)) == 0:
        fixed[f"C{draw(st.integers(0, n - 1))}/1"] = draw(st.floats(0, 20))
    previous = {s.session_id: draw(st.floats(0, 16)) for s in sessions if draw(st.booleans())}
    return problem(site, sessions, capacity=cap, fixed_load_a=fixed, previous=previous)


def group_loads(prob: PlanningProblem, current: np.ndarray, lines: dict) -> dict:
    """Independent load computation: (group, 'L1'|'L2'|'L3'|'kW') → per-slot load.

    A connector with a fixed load (unresponsive station) counts at that load.
    """
    site = prob.site
    ids = list(site.connectors)
    current = current.copy()
    for cid, amps in prob.fixed_load_a.items():
        current[ids.index(cid)] = np.maximum(current[ids.index(cid)], amps)
    out = {}
    for g in site.groups:
        if g.weights is not None:
            members = site.weighted_members(g)
            out[(g.id, "weighted")] = sum(w * current[ids.index(k)] for k, w in members.items())
            continue
        under = list(site.connectors_under(g.id))
        for line in LINES:
            out[(g.id, line.value)] = sum(
                (current[ids.index(i.key)] for i in under if line in lines[i.key]),
                np.zeros(prob.grid.slots),
            )
        out[(g.id, "kW")] = sum(
            (current[ids.index(i.key)] * i.kw_per_amp(lines[i.key]) for i in under),
            np.zeros(prob.grid.slots),
        )
    return out


def capacity_of(prob: PlanningProblem, group_id: str, quantity: str) -> np.ndarray:
    g = prob.site.group_by_id[group_id]
    if quantity == "kW":
        arr = prob.capacity.limit_kw.get(group_id)
        return arr if arr is not None else np.full(prob.grid.slots, g.limit_kw or np.inf)
    arr = prob.capacity.limit_a.get(group_id)
    return (
        arr
        if arr is not None
        else np.full(prob.grid.slots, g.limit_a if g.limit_a is not None else np.inf)
    )


@st.composite
def mixed_sites(
    draw: st.DrawFn, max_connectors: int = 12, slot_minutes: int = 15
) -> PlanningProblem:
    """Sites as operators build them: a grid connection over panels, one-phase,
    three-phase and line-pair (400 V across two lines) connectors, limits of
    at least a few cars' minimums, sessions of a few hours needing 2-60 kWh."""
    n_panels = draw(st.integers(0, 3))
    groups: list[dict] = [{"id": "grid", "limit_a": float(draw(st.integers(24, 160)))}]
    if draw(st.booleans()):
        groups[0]["limit_kw"] = float(draw(st.integers(15, 100)))
    for p in range(n_panels):
        groups.append(
            {"id": f"p{p}", "parent": "grid", "limit_a": float(draw(st.integers(16, 100)))}
        )
    n = draw(st.integers(2, max_connectors))
    chargers = []
    for i in range(n):
        phases = draw(st.sampled_from(PHASE_LAYOUTS))
        con: dict = {
            "id": 1,
            "max_current_a": draw(st.sampled_from([16.0, 32.0])),
            "min_current_a": draw(st.sampled_from([6.0, 6.0, 8.0])),
            "phases": phases,
        }
        if len(phases) == 2:
            con["voltage_v"] = 400.0
        group = draw(st.sampled_from(["grid", *(f"p{p}" for p in range(n_panels))]))
        chargers.append({"id": f"C{i}", "group": group, "connectors": [con]})
    site = site_from(groups, chargers, slot_minutes=slot_minutes, horizon_hours=12)
    sessions = draw_sessions(
        draw,
        n,
        arrive=st.integers(-120, 240),
        dwell=st.integers(60, 600),
        energy=st.floats(2, 60, allow_nan=False),
        ev_max=st.sampled_from([None, None, 16.0]),
    )
    return problem(site, sessions)


def draw_sessions(
    draw: st.DrawFn,
    n: int,
    *,
    arrive: st.SearchStrategy[int],
    dwell: st.SearchStrategy[int],
    energy: st.SearchStrategy[float],
    ev_max: st.SearchStrategy[float | None],
    priority: st.SearchStrategy[float] | None = None,
    taper: st.SearchStrategy[float | None] | None = None,
) -> list[SessionDemand]:
    """A session on connector ``C{i}/1`` for most of ``n`` connectors (one in six
    idle): arrival ``arrive`` minutes from NOW, staying ``dwell`` minutes."""
    sessions = []
    for i in range(n):
        if not draw(st.integers(0, 5)):
            continue  # an idle connector
        arr = NOW + timedelta(minutes=draw(arrive))
        dep = arr + timedelta(minutes=draw(dwell))
        extra: dict[str, Any] = {}
        need = draw(energy)
        cap = draw(ev_max)
        if priority is not None:
            extra["priority"] = draw(priority)
        if taper is not None:
            extra["taper_kwh"] = draw(taper)
        sessions.append(
            SessionDemand(
                session_id=f"s{i}",
                connector_id=f"C{i}/1",
                arrival=arr,
                departure=dep,
                energy_kwh=need,
                ev_max_current_a=cap,
                **extra,
            )
        )
    return sessions
