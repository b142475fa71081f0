"""Hosting capacity: how many more chargers fit under a group (a transformer,
a panel) before its drivers stop getting what they need.

The site gains ``n`` chargers below the group, each a copy of an existing one
there (placed as an installer would: panels in turn, least loaded lines first;
a copy joins every weighted limit its model is in). Their
sessions are real days of the site's own: on every local day of the period each
new connector takes the sessions of one existing connector below the group that
day, drawn at random (a connector that was unused that day gives an unused
day). Every count runs on the same draws, so adding chargers only adds
sessions.

    runs = hosting_runs(site, sessions, under="transformer", counts=[0, 10, 20])
    most_that_fit(hosting_table(runs), min_served_pct=90)
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import date
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd

from forecasts.demand import DemandDefaults
from gridshare.errors import UserError
from gridshare.simulation import run_strategies
from gridshare.simulation.engine import CarModel, RunResult
from gridshare.simulation.progress import DayDone
from gridshare.simulation.report import served_pct
from gridshare.simulation.sessions import SimSession
from gridshare.simulation.site_load import SiteLoadSetting
from optimizer import Site
from optimizer.problem import LimitWindow
from optimizer.site import LINES, Charger, Line, connector_key


class HostingError(UserError, ValueError):
    """The study cannot be set up (unknown group, no charger below it, bad count)."""


def models_under(site: Site, group_id: str) -> list[str]:
    """Ids of the chargers below ``group_id`` (directly or through sub-groups)."""
    if group_id not in site.group_by_id:
        raise HostingError(f"unknown group {group_id!r}")
    if site.group_by_id[group_id].weights is not None:
        raise HostingError(f"group {group_id!r} is a weighted limit, not a place for chargers")
    return sorted(ch.id for ch in site.chargers if group_id in site.ancestors(ch.group))


def _lines(charger: Charger) -> set[Line]:
    """The lines a charger's connectors load."""
    return {ln for con in charger.connectors for ln in con.phases}


def placement(site: Site, under: str, count: int) -> list[str]:
    """Which charger each of ``count`` new ones copies, as an installer would
    place them: panels take turns, and on its panel a new charger goes on the
    lines with the fewest chargers (the panel's, then the whole group's), so
    copies even out the lines instead of repeating the site's imbalance. The
    first n of a longer placement are the placement of n."""
    models = models_under(site, under)
    if not models:
        raise HostingError(f"no charger below group {under!r} to copy")
    by_id = {ch.id: ch for ch in site.chargers}
    panels = sorted({by_id[m].group for m in models})
    on_line: Counter[tuple[str, str]] = Counter()  # (panel or "", line) → chargers

    def count_in(ch: Charger) -> None:
        for line in _lines(ch):
            on_line[(ch.group, line)] += 1
            on_line[("", line)] += 1

    for m in models:
        count_in(by_id[m])
    out: list[str] = []
    for k in range(count):
        panel = panels[k % len(panels)]

        def load(m: str, panel: str = panel) -> tuple[int, int, int, int, int, str]:
            # the lines of the panel, then of the group, as even as they can be
            # after adding m: the most loaded line first, then the sum of squares
            lines = _lines(by_id[m])
            after = [
                [on_line[(where, ln)] + (ln in lines) for ln in LINES] for where in (panel, "")
            ]
            return (
                max(after[0]),
                sum(x * x for x in after[0]),
                max(after[1]),
                sum(x * x for x in after[1]),
                out.count(m),
                m,
            )

        pick = min((m for m in models if by_id[m].group == panel), key=load)
        count_in(by_id[pick])
        out.append(pick)
    return out


def add_chargers(site: Site, under: str, count: int) -> tuple[Site, dict[str, str]]:
    """The site with ``count`` chargers added below ``under``, placed by
    `placement`: ``NEW-k`` copies its model's group, connectors, and weight in
    every weighted limit. Returns the site and, for each new
    connector, the key of the connector it copies."""
    if count < 0:
        raise HostingError(f"cannot add {count} chargers")
    models = placement(site, under, count)
    by_id = {ch.id: ch for ch in site.chargers}
    taken = set(by_id)
    data = site.model_dump()
    data["chargers"] = list(data["chargers"])
    copies: dict[str, str] = {}
    for k in range(count):
        model = by_id[models[k]]
        new_id = f"NEW-{k + 1}"
        if new_id in taken:
            raise HostingError(f"the site already has a charger {new_id!r}")
        data["chargers"].append({**model.model_dump(), "id": new_id})
        for con in model.connectors:
            copies[connector_key(new_id, con.id)] = connector_key(model.id, con.id)
        for g in data["groups"]:
            weights = g.get("weights")
            if not weights:
                continue
            if model.id in weights:
                weights[new_id] = weights[model.id]
            for con in model.connectors:
                key = connector_key(model.id, con.id)
                if key in weights:
                    weights[connector_key(new_id, con.id)] = weights[key]
    return Site.model_validate(data), copies


def _local_day(s: SimSession, zone: ZoneInfo) -> date:
    return s.arrival.astimezone(zone).date()


def sessions_for_new(
    sessions: Sequence[SimSession],
    donors: Sequence[str],
    new_connectors: Sequence[str],
    tz: str,
    seed: int = 0,
) -> list[SimSession]:
    """Sessions for ``new_connectors``: on each local day with sessions, each
    takes the day of a donor connector drawn at random (with replacement). The
    draw of new connector k does not depend on how many are added."""
    if not donors:
        raise HostingError("no donor connector")
    zone = ZoneInfo(tz)
    by_day: dict[date, dict[str, list[SimSession]]] = defaultdict(lambda: defaultdict(list))
    for s in sessions:
        by_day[_local_day(s, zone)][s.connector_id].append(s)
    out: list[SimSession] = []
    for k, new in enumerate(new_connectors):
        # one stream per new connector: adding a charger leaves the others' draws alone
        rng = np.random.default_rng([seed, k])
        for day in sorted(by_day):
            donor = donors[int(rng.integers(len(donors)))]
            for s in by_day[day].get(donor, []):
                out.append(replace(s, session_id=f"{s.session_id}@{new}", connector_id=new))
    return out


def hosting_runs(
    site: Site,
    sessions: Sequence[SimSession],
    *,
    under: str,
    counts: Sequence[int],
    strategies: Sequence[str] = ("gridshare", "uncontrolled"),
    capacity_kw: float | None = None,
    capacity_group: str | None = None,
    overrides: list[LimitWindow] | None = None,
    car: CarModel | None = None,
    defaults: DemandDefaults | None = None,
    seed: int = 0,
    progress: bool = False,
    ideal_models: bool = False,
    informed: bool = False,
    on_day: Callable[[DayDone], None] | None = None,
    site_load: SiteLoadSetting | None = None,
) -> list[tuple[int, dict[str, RunResult]]]:
    """Every strategy with each count of added chargers. Each result's
    ``extra`` carries ``added_chargers`` and ``existing_delivered_pct`` (what
    the drivers of the chargers already there got)."""
    if not counts:
        raise HostingError("no count of chargers to add")
    if min(counts) < 0:
        # before any run: a bad count later in the list would waste the earlier ones
        raise HostingError(f"counts of chargers to add must be ≥ 0, not {min(counts)}")
    donors = [info.key for info in site.connectors.values() if under in info.ancestors]
    _, copies = add_chargers(site, under, max(counts))
    extra_sessions = sessions_for_new(sessions, donors, list(copies), site.site.timezone, seed)
    out = []
    for n in counts:
        grown, added = add_chargers(site, under, n)
        mine = [s for s in extra_sessions if s.connector_id in added]
        results = run_strategies(
            grown,
            [*sessions, *mine],
            strategies,
            capacity_kw=capacity_kw,
            capacity_group=capacity_group,
            overrides=overrides,
            car=car,
            defaults=defaults,
            progress=progress,
            ideal_models=ideal_models,
            informed=informed,
            on_day=on_day,
            site_load=site_load,
        )
        for r in results.values():
            old = np.array([s.connector_id not in added for s in r.sessions], dtype=bool)
            need = float(r.need_kwh[old].sum())
            got = float(r.delivered_kwh[old].sum())
            r.extra["added_chargers"] = n
            r.extra["existing_delivered_pct"] = round(100.0 * got / need, 4) if need else 100.0
        out.append((n, results))
    return out


def hosting_table(runs: Sequence[tuple[int, dict[str, RunResult]]]) -> pd.DataFrame:
    """One row per (added chargers, strategy): sessions, % of need delivered (all
    drivers, and those of the chargers already there), % of drivers served,
    peak kW and limit violations."""
    rows = []
    for n, results in runs:
        for name, r in results.items():
            need = float(r.need_kwh.sum())
            rows.append(
                {
                    "added_chargers": n,
                    "strategy": name,
                    "sessions": len(r.sessions),
                    "delivered_pct": 100.0 * float(r.delivered_kwh.sum()) / need if need else 100.0,
                    "existing_delivered_pct": r.extra["existing_delivered_pct"],
                    "served_pct": served_pct(r),
                    "peak_kw": float(r.power_kw.max()) if len(r.power_kw) else 0.0,
                    "violations": len(r.violations),
                }
            )
    return pd.DataFrame(rows).set_index(["added_chargers", "strategy"]).sort_index()


def most_that_fit(
    table: pd.DataFrame, *, min_served_pct: float = 90.0, strategy: str = "gridshare"
) -> int | None:
    """The most chargers that can be added with at least ``min_served_pct`` of
    drivers served and no limit violated, counting up from the fewest studied
    (the first count that fails ends it); None if even the fewest fails."""
    best = None
    for n in sorted(table.index.get_level_values("added_chargers").unique()):
        row = table.loc[(n, strategy)]
        if row["served_pct"] < min_served_pct or row["violations"] > 0:
            break
        best = int(n)
    return best
