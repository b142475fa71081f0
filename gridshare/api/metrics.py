"""Prometheus metrics: a recorder the service calls, on a registry of its own.

Two kinds of figures:

* Events the service counts as they happen: re-plans and their latency,
  solver statuses, profiles sent and their answers, OSCP messages, DSO
  online state. The service calls the ``record_*``/``set_*`` methods.
* State the API can read from the backend: stations connected, sessions
  active, capacity and load per group and line. ``/metrics`` refreshes these
  from `OperatorBackend.status` and `.groups` on every scrape
  (`observe_status`, `observe_groups`), so the service need not push them.

The registry is not prometheus-client's global one: several services (or
tests) in one process keep separate figures.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from gridshare.api.schemas import GroupTree, StatusOut

__all__ = ["CONTENT_TYPE_LATEST", "MetricsRecorder"]

PROFILE_OUTCOMES = ("sent", "accepted", "rejected", "timeout", "not_connected", "error")


class MetricsRecorder:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry(auto_describe=True)
        r = self.registry
        self.stations_connected = Gauge(
            "gridshare_stations_connected", "Stations with an open OCPP connection", registry=r
        )
        self.stations_known = Gauge(
            "gridshare_stations_known", "Stations configured for the site", registry=r
        )
        self.sessions_active = Gauge(
            "gridshare_sessions_active", "Charging sessions running", registry=r
        )
        self.session_conflicts = Gauge(
            "gridshare_session_conflicts",
            "Sessions left out of planning now, their connectors held at the most they may "
            "draw (see /api/status)",
            registry=r,
        )
        self.sessions_refused = Counter(
            "gridshare_sessions_refused",
            "Session starts refused: their (station, transaction) was stored with another start",
            registry=r,
        )
        self.sessions_superseded = Counter(
            "gridshare_sessions_superseded",
            "Open sessions ended at recovery because another started later on their connector",
            registry=r,
        )
        self._conflicts_seen: dict[str, int] = {}
        self.not_following = Gauge(
            "gridshare_connector_not_following",
            "1 while a connector draws over its limit or its station's composite schedule "
            "shows more than was sent (counted at its draw by the planner)",
            ["connector"],
            registry=r,
        )
        self.profiles_ignored = Counter(
            "gridshare_profiles_ignored",
            "Connectors flagged as not following their limit, by the evidence that flagged them",
            ["evidence"],
            registry=r,
        )
        self.replans = Counter("gridshare_replans", "Plans made", ["reason"], registry=r)
        self.replan_seconds = Histogram(
            "gridshare_replan_seconds",
            "Time from the re-plan request until its plan is rolled out (solve included)",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
            registry=r,
        )
        self.solver_status = Counter(
            "gridshare_solver_status", "Plans by solver status", ["status"], registry=r
        )
        self.profiles = Counter(
            "gridshare_profiles",
            "Charging profiles: sent, and the stations' answers",
            ["outcome"],
            registry=r,
        )
        self.capacity_a = Gauge(
            "gridshare_group_capacity_amperes",
            "Per-line limit in force (absent: no limit)",
            ["group"],
            registry=r,
        )
        self.capacity_kw = Gauge(
            "gridshare_group_capacity_kilowatts",
            "Power limit in force (absent: no limit)",
            ["group"],
            registry=r,
        )
        self.planned_a = Gauge(
            "gridshare_group_planned_amperes",
            "Planned current now per group and line",
            ["group", "line"],
            registry=r,
        )
        self.measured_a = Gauge(
            "gridshare_group_measured_amperes",
            "Measured current now per group and line",
            ["group", "line"],
            registry=r,
        )
        self.oscp_messages = Counter(
            "gridshare_oscp_messages",
            "OSCP messages by direction (in/out) and type",
            ["direction", "type"],
            registry=r,
        )
        self.dso_online = Gauge(
            "gridshare_dso_online", "1 while the DSO answers heartbeats", ["provider"], registry=r
        )
        for outcome in PROFILE_OUTCOMES:
            self.profiles.labels(outcome)

    # --- called by the service -----------------------------------------------------------

    def record_replan(self, *, seconds: float, status: str, reason: str = "") -> None:
        self.replans.labels(reason or "unspecified").inc()
        self.replan_seconds.observe(seconds)
        self.solver_status.labels(status).inc()

    def record_profile(self, outcome: str, count: int = 1) -> None:
        """``sent`` when a profile goes out, then the answer: ``accepted``, ``rejected``,
        ``timeout``, ``not_connected``, ``rate_limited`` or ``error``."""
        if count:
            self.profiles.labels(outcome).inc(count)

    def record_oscp_message(self, direction: str, message_type: str) -> None:
        if direction not in ("in", "out"):
            raise ValueError(f"direction must be 'in' or 'out', not {direction!r}")
        self.oscp_messages.labels(direction, message_type).inc()

    def record_conflicts(self, totals: Mapping[str, int]) -> None:
        """The controller's running counts of sessions refused and superseded."""
        for kind, counter in (
            ("refused", self.sessions_refused),
            ("superseded", self.sessions_superseded),
        ):
            new, old = totals.get(kind, 0), self._conflicts_seen.get(kind, 0)
            if new > old:
                counter.inc(new - old)
            self._conflicts_seen[kind] = new

    def record_not_following(self, connector: str, flagged: bool, evidence: str = "") -> None:
        if flagged:
            self.not_following.labels(connector).set(1.0)
            self.profiles_ignored.labels(evidence).inc()
        else:
            self._drop(self.not_following, connector)

    def set_dso_online(self, provider: str, online: bool) -> None:
        self.dso_online.labels(provider).set(1.0 if online else 0.0)

    def set_stations_connected(self, n: int) -> None:
        self.stations_connected.set(n)

    def set_sessions_active(self, n: int) -> None:
        self.sessions_active.set(n)

    # --- refreshed by /metrics from the backend's reads ----------------------------------

    def observe_status(self, status: StatusOut) -> None:
        self.stations_connected.set(status.stations_connected)
        self.stations_known.set(status.stations_known)
        self.sessions_active.set(status.sessions_active)
        # refused and superseded entries are history: counted by record_conflicts
        isolated = [c for c in status.conflicts or () if c.kind == "isolated"]
        self.session_conflicts.set(len(isolated))

    def observe_groups(self, tree: GroupTree) -> None:
        for g in tree.groups:
            if g.capacity_a is None:
                self._drop(self.capacity_a, g.id)
            else:
                self.capacity_a.labels(g.id).set(g.capacity_a)
            if g.capacity_kw is None:
                self._drop(self.capacity_kw, g.id)
            else:
                self.capacity_kw.labels(g.id).set(g.capacity_kw)
            for line in g.lines:
                self.planned_a.labels(g.id, line.value).set(g.planned_a.get(line, 0.0))
                self.measured_a.labels(g.id, line.value).set(g.measured_a.get(line, 0.0))

    @staticmethod
    def _drop(gauge: Gauge, *labels: str) -> None:
        with contextlib.suppress(KeyError):
            gauge.remove(*labels)

    def render(self) -> bytes:
        return generate_latest(self.registry)
