"""Prometheus gauges of the meters, on the service's registry."""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge


class MeterMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        r = registry
        self.age = Gauge(
            "gridshare_meter_age_seconds",
            "Seconds since the meter's last good reading",
            ["meter"],
            registry=r,
        )
        self.stale = Gauge(
            "gridshare_meter_stale",
            "1 while the meter is silent or stale: its group counts at max_non_ev_a",
            ["meter"],
            registry=r,
        )
        self.refused = Counter(
            "gridshare_meter_readings_refused",
            "Meter readings refused (NaN, impossible, unparsable)",
            ["meter"],
            registry=r,
        )
        self.lowerings = Counter(
            "gridshare_meter_lowerings",
            "Times a meter reading lowered chargers at once (a group over its limit)",
            registry=r,
        )
        self.non_ev = Gauge(
            "gridshare_group_non_ev_amperes",
            "Non-EV load of a group per line (meters)",
            ["group", "line"],
            registry=r,
        )
        self.ev = Gauge(
            "gridshare_group_ev_amperes",
            "Chargers' measured load of a group per line",
            ["group", "line"],
            registry=r,
        )
        self.headroom = Gauge(
            "gridshare_group_headroom_amperes",
            "Limit less non-EV and EV load of a group per line",
            ["group", "line"],
            registry=r,
        )

    def update(self, view: dict[str, Any]) -> None:
        """From `gridshare.meters.views.meters_view`."""
        for m in view["meters"]:
            self.stale.labels(m["id"]).set(0.0 if m["state"] == "fresh" else 1.0)
            self.age.labels(m["id"]).set(m["age_s"] if m["age_s"] is not None else float("inf"))
        for g in view["groups"]:
            for line, a in g["non_ev_a"].items():
                self.non_ev.labels(g["id"], line).set(a)
            for line, a in g["ev_a"].items():
                self.ev.labels(g["id"], line).set(a)
            for line, a in g["headroom_a"].items():
                if a is not None:
                    self.headroom.labels(g["id"], line).set(a)
