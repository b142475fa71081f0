"""Fallback (TxDefault) limits: what each station may draw when the central
system is gone, shared so that every group's fallback capacity holds."""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import datetime, timedelta

from gridshare.rollout.schedule import EPS
from ocpp_adapter.events import ChargingLimitSpec, LimitPeriod, LimitPurpose
from optimizer.site import LINES, Line, Site


def fallback_limits(
    site: Site,
    capacity_a: Mapping[str, float] | None = None,
    fixed: Mapping[str, float] | None = None,
    non_ev_a: Mapping[str, Mapping[Line, float]] | None = None,
) -> dict[str, float]:
    """Per station: a TxDefault limit (A per line) such that, summed over the
    stations of any group, the fallback capacity is kept on every line, in kW
    and for weighted groups, even with every connector drawing it.

    ``capacity_a`` overrides a group's fallback per-line limit (e.g. a DSO's
    fallback forecast). ``fixed``: connector → what it is assumed to draw
    whatever we send (its station refused or did not answer its fallback
    limit); that is taken off the capacity the others share, and its station
    gets no limit here. A share below a connector's minimum current becomes 0.
    ``non_ev_a``: group → line → a building's worst load behind the group
    (its meters' ``max_non_ev_a``), taken off that line and the power limit.
    """
    overrides = capacity_a or {}
    building = non_ev_a or {}
    fixed = fixed or {}
    conns = site.connectors
    share: dict[str, float] = {cid: info.max_current_a for cid, info in conns.items()}
    for g in site.groups:
        if g.weights is not None:
            members = site.weighted_members(g)
            total_w = sum(w for cid, w in members.items() if cid not in fixed)
            limit = overrides.get(g.id, g.limit_a)
            if limit is not None and total_w > 0:
                left = max(
                    0.0, limit - sum(w * fixed[cid] for cid, w in members.items() if cid in fixed)
                )
                for cid in members:
                    share[cid] = min(share[cid], left / total_w)
            continue
        under = list(site.connectors_under(g.id))
        if not under:
            continue
        limit_a = overrides.get(g.id)
        if limit_a is None:
            limit_a = g.fallback_limit_a if g.fallback_limit_a is not None else g.limit_a
        if limit_a is not None:
            for line in LINES:
                on_line = [i for i in under if line in i.lines and i.key not in fixed]
                taken = sum(fixed[i.key] for i in under if line in i.lines and i.key in fixed)
                taken += max(0.0, building.get(g.id, {}).get(line, 0.0))
                for i in on_line:
                    share[i.key] = min(share[i.key], max(0.0, limit_a - taken) / len(on_line))
        if g.limit_kw is not None:
            kw_per_a = sum(i.kw_per_amp() for i in under if i.key not in fixed)
            taken_kw = sum(i.kw_per_amp() * fixed[i.key] for i in under if i.key in fixed)
            taken_kw += sum(building.get(g.id, {}).values()) * site.site.voltage_v / 1000.0
            if kw_per_a > 0:
                for i in under:
                    share[i.key] = min(share[i.key], max(0.0, g.limit_kw - taken_kw) / kw_per_a)
    out: dict[str, float] = {}
    for cid, info in conns.items():
        if cid in fixed:
            continue
        a = math.floor(share[cid] * 10 + 1e-9) / 10
        if a < info.connector.min_current_a - EPS:
            a = 0.0
        out[info.station_id] = min(out.get(info.station_id, math.inf), a)
    return out


def fallback_spec(
    station_id: str, limit_a: float, start: datetime, site: Site
) -> ChargingLimitSpec:
    """TxDefault on connector 0 (every connector of the station)."""
    phases = max(len(i.lines) for i in site.connectors.values() if i.station_id == station_id)
    return ChargingLimitSpec(
        purpose=LimitPurpose.TX_DEFAULT,
        connector=0,
        start=start - timedelta(minutes=1),
        periods=(LimitPeriod(0, limit_a, phases),),
        voltage_v=site.site.voltage_v,
    )
