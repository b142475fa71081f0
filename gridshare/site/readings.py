"""A station's meter reading checked and mapped to the site's lines, before the
site learns or plans from it."""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from dataclasses import replace

from ocpp_adapter.events import MeterReading
from optimizer.site import Line, Site, station_of

log = logging.getLogger("gridshare.site.state")  # where these lines were always logged


def plausible(site: Site, r: MeterReading) -> MeterReading:
    """The reading without what no meter can see: NaN, infinities, negative
    values, and currents (or powers) beyond twice what the connector can carry.
    Those are logged and neither stored as measured nor used to learn or plan
    (a measurement may only lower a limit, so a wild one must not count).

    The OCPP adapter already drops NaN and negative values; they are checked
    here again for readings from any other source. A reading with nothing to
    drop is returned as it is (this runs on every reading)."""
    info = site.connectors.get(r.connector_id)
    top_a = 2 * info.connector.max_current_a if info is not None else math.inf
    line_w = top_a * info.voltage_v if info is not None else math.inf
    all_w = line_w * len(info.lines) if info is not None else math.inf

    def ok(value: float | None, top: float) -> bool:
        return value is None or (math.isfinite(value) and 0 <= value <= top)

    checks: list[tuple[str, float | None, float]] = [
        *((f"current {k}", v, top_a) for k, v in r.current_a.items()),
        *((f"power {k}", v, line_w) for k, v in r.power_w.items()),
        ("offered", r.current_offered_a, top_a),
        ("power", r.total_power_w, all_w),
        ("energy", r.energy_wh, math.inf),
        ("soc", r.soc_pct, 100.0),
    ]
    dropped = [f"{what}={value!r}" for what, value, top in checks if not ok(value, top)]
    if not dropped:
        return r

    def keep(value: float | None, top: float) -> float | None:
        return value if ok(value, top) else None

    log.warning(
        "impossible meter values from station %r, connector %r ignored: %s",
        station_of(r.connector_id),
        r.connector_id,
        ", ".join(dropped),
    )
    return replace(
        r,
        current_a={k: v for k, v in r.current_a.items() if ok(v, top_a)},
        power_w={k: v for k, v in r.power_w.items() if ok(v, line_w)},
        current_offered_a=keep(r.current_offered_a, top_a),
        total_power_w=keep(r.total_power_w, all_w),
        energy_wh=keep(r.energy_wh, math.inf),
        soc_pct=keep(r.soc_pct, 100.0),
    )


def site_lines(current_a: Mapping[str, float], wired: tuple[Line, ...]) -> dict[Line, float]:
    """A station's per-phase currents (its phases L1..L3) as the site's lines
    (a connector may be wired L2, L3, L1); non-finite values are left out."""
    out: dict[Line, float] = {}
    for phase, amps in current_a.items():
        name = phase.upper()[:2]
        if name not in ("L1", "L2", "L3") or not math.isfinite(amps):
            continue
        idx = int(name[1]) - 1
        if idx < len(wired):
            out[wired[idx]] = max(out.get(wired[idx], 0.0), abs(amps))
    return out
