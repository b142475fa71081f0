"""Simulation on historical sessions: what smart charging buys on a site.

    from gridshare.simulation import load_run_sessions, run_strategies
    results = run_strategies(site, sessions, ["gridshare", "edf", "offline-optimal"],
                             capacity_kw=50)

Modules: `sessions` (ACN-Data and generic CSVs), `capacity` (limits over time),
`engine` (the event-driven simulator and car physics), `strategies`,
`report` (REPORT.json, tables, plots), `acn` (ACN sites.json to site files),
`ideal` (the ideal-models setting of the ACN paper: ``ideal_models=True``),
`information` (what each piece the planner is not told costs),
`site_load` (the building's load on the connection, and what the planner is told of it),
`hosting` (how many more chargers fit under a group).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace

from forecasts.demand import DemandDefaults
from gridshare.simulation.acn import default_capacity_group, scale_group
from gridshare.simulation.capacity import SiteLimits
from gridshare.simulation.engine import (
    CarModel,
    RunResult,
    Simulation,
    Strategy,
)
from gridshare.simulation.ideal import IDEAL_CAR, ideal_sessions, ideal_site
from gridshare.simulation.information import TOLD, run_told, told
from gridshare.simulation.progress import DayDone
from gridshare.simulation.pv import SimPv
from gridshare.simulation.sessions import SimSession, prepare_sessions
from gridshare.simulation.site_load import SiteLoad, SiteLoadSetting
from gridshare.simulation.strategies import (
    ONLINE,
    STRATEGIES,
    GridshareStrategy,
    OfflineSchedule,
    make_strategy,
)
from optimizer import Site
from optimizer.problem import LimitWindow

__all__ = [
    "ONLINE",
    "STRATEGIES",
    "TOLD",
    "CarModel",
    "DayDone",
    "RunResult",
    "Simulation",
    "SiteLoad",
    "SiteLoadSetting",
    "Strategy",
    "build_simulation",
    "ideal_sessions",
    "ideal_site",
    "run_strategies",
    "run_told",
    "site_for_capacity",
    "told",
]


def site_for_capacity(site: Site, capacity_kw: float | None, group: str | None = None) -> Site:
    """The site with its transformer (``group``, default: see
    `default_capacity_group`) set to ``capacity_kw``; unchanged for None."""
    if capacity_kw is None:
        return site
    return scale_group(site, group or default_capacity_group(site), capacity_kw)


def build_simulation(
    site: Site,
    sessions: Sequence[SimSession],
    *,
    capacity_kw: float | None = None,
    capacity_group: str | None = None,
    overrides: list[LimitWindow] | None = None,
    car: CarModel | None = None,
    defaults: DemandDefaults | None = None,
    ideal_models: bool = False,
    informed: bool = False,
    site_load: SiteLoadSetting | None = None,
    pv: SimPv | None = None,
) -> tuple[Simulation, dict[str, int]]:
    """A simulation ready to run, and how many sessions were dropped (and why).

    ``informed``: every session states its real departure and energy at arrival
    (the stations and batteries stay as modelled: what the hardware costs, apart
    from what the planner is not told). ``ideal_models`` (see
    `gridshare.simulation.ideal`): informed, and continuous pilots with no
    minimum and an ideal battery (``car`` is then ignored, and the planner is
    told the batteries have no tail). ``site_load``: the non-EV load drawn on
    the connection (see `gridshare.simulation.site_load`)."""
    scaled = site_for_capacity(site, capacity_kw, capacity_group)
    if ideal_models:
        scaled = ideal_site(scaled)
        car = IDEAL_CAR
        defaults = replace(defaults or DemandDefaults(), taper_kwh=0.0)
    step = scaled.site.slot_minutes
    from datetime import timedelta

    prepared = prepare_sessions(sessions, scaled.connectors, timedelta(minutes=step))
    kept = ideal_sessions(prepared.sessions) if ideal_models or informed else prepared.sessions
    dropped = {
        "unknown_connector": prepared.unknown_connector,
        "shorter_than_a_step": prepared.too_short,
        "overlapping": prepared.overlapping,
    }
    sim = Simulation(
        scaled,
        kept,
        limits=SiteLimits(scaled, overrides),
        car=car,
        defaults=defaults,
        site_load=site_load,
        pv=pv,
    )
    return sim, dropped


def run_strategies(
    site: Site,
    sessions: Sequence[SimSession],
    strategies: Sequence[str] = STRATEGIES,
    *,
    capacity_kw: float | None = None,
    capacity_group: str | None = None,
    overrides: list[LimitWindow] | None = None,
    car: CarModel | None = None,
    defaults: DemandDefaults | None = None,
    progress: bool = False,
    ideal_models: bool = False,
    informed: bool = False,
    on_day: Callable[[DayDone], None] | None = None,
    site_load: SiteLoadSetting | None = None,
    pv: SimPv | None = None,
) -> dict[str, RunResult]:
    """Every named strategy on the same sessions and site (``ideal_models`` and
    ``informed``: see `build_simulation`; ``on_day``: told of each simulated day
    played through)."""
    sim, dropped = build_simulation(
        site,
        sessions,
        capacity_kw=capacity_kw,
        capacity_group=capacity_group,
        overrides=overrides,
        car=car,
        defaults=defaults,
        ideal_models=ideal_models,
        informed=informed,
        site_load=site_load,
        pv=pv,
    )
    models = "ideal" if ideal_models else "informed" if informed else "realistic"
    out: dict[str, RunResult] = {}
    for name in strategies:
        strategy = make_strategy(name, sim)
        result = sim.run(strategy, progress=progress, on_day=on_day)  # type: ignore[arg-type]
        result.extra["dropped_sessions"] = dropped
        result.extra["models"] = models
        if isinstance(strategy, OfflineSchedule):
            result.extra["lp_bound_kwh"] = round(strategy.bound_kwh, 4)
            result.extra["lp_periods"] = strategy.periods
            result.decide_ms = list(strategy.solve_ms)
        if isinstance(strategy, GridshareStrategy):
            result.extra["plan_status"] = dict(strategy.statuses)
            result.extra["dispatch_cost_kwh"] = round(strategy.dispatch_cost_kwh, 4)
        out[name] = result
    return out
