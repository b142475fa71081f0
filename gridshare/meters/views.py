"""The meters and each metered group as the operator sees them (API, metrics)."""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any

from gridshare.controller import Controller
from gridshare.meters.building import BuildingLoad
from optimizer.problem import TimeGrid
from optimizer.site import LINES


def _per_line(values: Any) -> dict[str, float]:
    return {line.value: round(float(values[line]), 2) for line in LINES}


def meters_view(b: BuildingLoad, ctl: Controller | None, now: datetime) -> dict[str, Any]:
    """``meters``: each meter, its freshness and last reading; ``groups``: per
    metered group and line, the non-EV load, the chargers' measured load, the
    limit (static, operator, DSO: the lowest), the headroom left and the sum of
    the chargers' limits in force."""
    site = b.site
    meters = []
    for mid, state in b.meters.items():
        m = state.config
        last = state.readings[-1] if state.readings else None
        age = (now - last.received_at).total_seconds() if last is not None else None
        meters.append(
            {
                "id": mid,
                "group": m.group,
                "measures": m.measures.value,
                "source": m.source.type,
                "state": "fresh" if state.fresh(now) else ("stale" if last else "never read"),
                "age_s": round(age, 3) if age is not None else None,
                "stale_after_s": m.stale_after_s,
                "reading_at": last.at.isoformat() if last is not None else None,
                "current_a": _per_line(last.current_a) if last is not None else None,
                "max_non_ev_a": dict(zip([x.value for x in LINES], m.max_non_ev_a, strict=True)),
                "refused": state.refused,
                "last_refusal": state.last_refusal,
            }
        )
    groups = []
    limits: dict[str, float] = {}
    in_force: dict[str, dict[str, float]] = {}
    if ctl is not None:
        grid = TimeGrid.covering(now, site.site.slot_minutes, site.site.slot_minutes / 60)
        cap = ctl.capacity(grid, now)
        for g in b.metered:
            arr = cap.limit_a.get(g)
            static = site.group_by_id[g].limit_a
            limits[g] = float(arr[0]) if arr is not None else (static or math.inf)
        in_force = ctl.group_loads(now)
    for g in b.metered:
        non_ev = b.non_ev(g, now)
        ev = b.ev_at(g, now)
        limit = limits.get(g, math.inf)
        groups.append(
            {
                "id": g,
                "blind": b.blind(g, now),
                "limit_a": limit if math.isfinite(limit) else None,
                "non_ev_a": _per_line(non_ev),
                "ev_a": _per_line(ev),
                "ev_limits_a": {k: round(v, 2) for k, v in in_force.get(g, {}).items()},
                "headroom_a": {
                    line.value: round(limit - max(0.0, non_ev[line]) - ev[line], 2)
                    if math.isfinite(limit)
                    else None
                    for line in LINES
                },
            }
        )
    return {"at": now.isoformat(), "meters": meters, "groups": groups}
