"""gridshare as an algorithm of Caltech's ``acnsim`` (``pip install gridshare[acn]``).

`GridshareAlgorithm` is an ``acnportal`` scheduling algorithm: the simulator
calls it each period with the cars plugged in, it plans the site with
gridshare's planner and answers the current of the period under way. Its site
is read from the simulator's own ``interface.infrastructure_info()``:

* each station is a connector on the lines its phase angle names (30° → L1-L2,
  −90° → L2-L3, 150° → L3-L1 for a line-to-line charger; 0°, −120°, 120° → one
  line), after one common rotation if the network's angles are all shifted;
* each constraint |Σ aᵢ·Iᵢ·e^(jθᵢ)| ≤ limit is a weighted group with
  ``phasor = true``: its coefficients with their signs, the stations' currents
  with their angles, so the planner's limits are the simulator's own, exactly
  (`optimizer.phasor`).

`acn_events` turns ACN-Data sessions (as `gridshare.simulation.sessions`
reads them) into the simulator's events, with ideal batteries.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np

try:
    from acnportal import acnsim
    from acnportal.algorithms import BaseAlgorithm
except ImportError as e:  # pragma: no cover - depends on the optional extra
    raise ImportError(
        "gridshare.integrations.acnportal needs acnportal: pip install gridshare[acn]"
    ) from e

from gridshare.errors import UserError
from gridshare.simulation.sessions import SimSession
from optimizer import Capacity, PlanningProblem, SessionDemand, Site, TimeGrid, solve
from optimizer.highs_backend import HighsPlanner
from optimizer.plan import SolverStatus

ROOT = "acn"
EPOCH = datetime(2000, 1, 1, tzinfo=UTC)
"""Period 0 of the simulator, for the planner's clock (aligned to any slot)."""
PAIR_LINES = {30: ("L1", "L2"), -90: ("L2", "L3"), 150: ("L3", "L1")}
ONE_LINE = {0: ("L1",), -120: ("L2",), 120: ("L3",)}
ROTATIONS = (0.0, -30.0, 30.0, 90.0, -90.0, 180.0)


class AcnIntegrationError(UserError, ValueError):
    """The simulator's network cannot be read as a gridshare site."""


def _wrap(degrees: float) -> int | None:
    """``degrees`` in (−180, 180], as a whole degree if it is one."""
    d = (degrees + 180.0) % 360.0 - 180.0
    d = 180.0 if d == -180.0 else d
    r = round(d)
    return r if abs(d - r) < 1e-6 else None


def station_lines(angles: Sequence[float]) -> list[tuple[str, ...]]:
    """The lines of every station from its phase angle, under the first common
    rotation that names a wiring for each."""
    for ref in ROTATIONS:
        out: list[tuple[str, ...]] = []
        for a in angles:
            d = _wrap(float(a) - ref)
            lines = PAIR_LINES.get(d, ONE_LINE.get(d, ())) if d is not None else ()
            if not lines:
                break
            out.append(lines)
        else:
            return out
    raise AcnIntegrationError(
        f"phase angles {sorted({float(a) for a in angles})}: not the angles of line pairs "
        "(30, -90, 150) or lines (0, -120, 120) under one rotation"
    )


def site_from_infrastructure(
    info: Any,
    *,
    period_minutes: int,
    horizon_hours: float = 12.0,
    name: str = "acnsim",
    exact: bool = True,
) -> Site:
    """The gridshare site of an ``acnsim`` ``InfrastructureInfo`` (``exact``:
    its constraints as phasor limits; else magnitudes summed, Σ|a|·I)."""
    ids = [str(s) for s in info.station_ids]
    lines = station_lines([float(a) for a in info.phases])
    volts = np.asarray(info.voltages, dtype=float)
    pairs = [v for v, ln in zip(volts, lines, strict=True) if len(ln) == 2]
    neutral = float(pairs[0]) / math.sqrt(3.0) if pairs else float(volts[0])
    chargers = []
    for i, sid in enumerate(ids):
        con: dict[str, Any] = {
            "id": 1,
            "max_current_a": float(info.max_pilot[i]),
            "min_current_a": float(min(info.min_pilot[i], info.max_pilot[i])),
            "phases": list(lines[i]),
            "voltage_v": float(volts[i]),
        }
        if not bool(info.is_continuous[i]):
            con["allowed_currents_a"] = sorted({float(a) for a in info.allowable_pilots[i]})
        chargers.append({"id": sid, "group": ROOT, "connectors": [con]})
    groups: list[dict[str, Any]] = [{"id": ROOT, "description": "the simulated network"}]
    matrix = np.asarray(info.constraint_matrix, dtype=float)
    limits = np.asarray(info.constraint_limits, dtype=float)
    for k, cid in enumerate(info.constraint_ids):
        weights = {ids[i]: float(matrix[k, i]) for i in np.flatnonzero(matrix[k])}
        if not weights or not math.isfinite(limits[k]):
            continue
        groups.append(
            {
                "id": str(cid),
                "parent": ROOT,
                "limit_a": float(limits[k]),
                "weights": weights,
                "phasor": exact,
            }
        )
    data = {
        "site": {
            "name": name,
            "voltage_v": neutral,
            "slot_minutes": period_minutes,
            "horizon_hours": horizon_hours,
        },
        "groups": groups,
        "chargers": chargers,
    }
    try:
        return Site.model_validate(data)
    except ValueError as e:
        raise AcnIntegrationError(f"the simulator's network is no valid site: {e}") from None


class GridshareAlgorithm(BaseAlgorithm):
    """gridshare's planner as an ``acnsim`` algorithm: plans every period,
    answers the period under way. ``solve_ms``: the time of every plan.
    ``exact_limits=False`` reads the network's limits as magnitudes summed.
    ``departures_known``: the EVs' estimated departures are their real ones
    (acnsim's default when an EV is given none), so the slot is not shared
    evenly as a hedge against a wrong one (`PlanningProblem.even_rates`);
    False for estimates a driver stated."""

    def __init__(
        self,
        horizon_hours: float = 12.0,
        time_limit_s: float = 10.0,
        exact_limits: bool = True,
        departures_known: bool = True,
    ) -> None:
        super().__init__()
        self.exact_limits = exact_limits
        self.departures_known = departures_known
        self.max_recompute = 1  # one period answered: called again next period
        self.horizon_hours = horizon_hours
        self._planner = HighsPlanner(time_limit_s)
        self._site: Site | None = None
        self._previous: dict[str, float] = {}
        self.solve_ms: list[float] = []
        self.statuses: dict[str, int] = {}

    def register_interface(self, interface: Any) -> None:
        super().register_interface(interface)
        self._site = None  # a new simulator: its network is read again

    @property
    def site(self) -> Site:
        if self._site is None:
            iface = self.interface
            self._site = site_from_infrastructure(
                iface.infrastructure_info(),
                period_minutes=_minutes(iface.period),
                horizon_hours=self.horizon_hours,
                exact=self.exact_limits,
            )
        return self._site

    def problem(self, active_sessions: list[Any]) -> PlanningProblem:
        """The planning problem of the period under way."""
        site = self.site
        step = timedelta(minutes=site.site.slot_minutes)
        now = EPOCH + self.interface.current_time * step
        demands = [_demand(s, now, step) for s in active_sessions]
        grid = TimeGrid.covering(now, site.site.slot_minutes, site.site.horizon_hours)
        return PlanningProblem(
            site,
            grid,
            now,
            tuple(demands),
            Capacity.static(site, grid),
            previous=self._previous,
            even_rates=not self.departures_known,
        )

    def schedule(self, active_sessions: list[Any]) -> dict[str, list[float]]:
        if not active_sessions:
            return {}
        problem = self.problem(active_sessions)
        demands = problem.sessions
        plan = solve(problem, planner=self._planner)
        self.solve_ms.append(plan.solve_ms)
        self.statuses[plan.status.value] = self.statuses.get(plan.status.value, 0) + 1
        if plan.status is SolverStatus.HEURISTIC:
            self.statuses["notes: " + "; ".join(plan.notes)] = 1
        out: dict[str, list[float]] = {}
        previous: dict[str, float] = {}
        for s, d in zip(active_sessions, demands, strict=True):
            amps = float(plan.schedule(d.connector_id)[0])
            out[s.station_id] = [amps]
            previous[d.session_id] = amps
        self._previous = previous
        return out


def _minutes(period: float) -> int:
    minutes = round(float(period))
    if abs(minutes - float(period)) > 1e-9 or minutes < 1 or 60 % minutes:
        raise AcnIntegrationError(f"period {period} min: must divide an hour")
    return minutes


def _demand(s: Any, now: datetime, step: timedelta) -> SessionDemand:
    """A plugged-in car as the planner sees it: what it still needs, and the
    departure its driver stated (one more period if that has passed)."""
    arrival = EPOCH + int(s.arrival) * step
    departure = max(EPOCH + int(s.estimated_departure) * step, now + step)
    left = max(float(s.requested_energy) - float(s.energy_delivered), 0.0)
    return SessionDemand(
        session_id=str(s.session_id),
        connector_id=f"{s.station_id}/1",
        arrival=min(arrival, now),
        departure=departure,
        energy_kwh=left,
    )


def acn_events(
    sessions: Iterable[SimSession],
    start: datetime,
    period_minutes: int,
    station_ids: Iterable[str],
    *,
    stated: bool = False,
) -> tuple[Any, int]:
    """The simulator's event queue for ``sessions`` from ``start`` (see
    `acn_evs`). Returns (queue, count)."""
    evs = acn_evs(sessions, start, period_minutes, station_ids, stated=stated)
    return acnsim.EventQueue([acnsim.PluginEvent(ev.arrival, ev) for ev in evs]), len(evs)


def acn_evs(
    sessions: Iterable[SimSession],
    start: datetime,
    period_minutes: int,
    station_ids: Iterable[str],
    *,
    stated: bool = False,
) -> list[Any]:
    """The simulator's EVs for ``sessions`` from ``start``, each an ideal
    battery taking exactly its real need; the drivers' real departures
    (``stated``: what they told the network, where they did, as estimates).
    Sessions at stations the network does not have are left out."""
    known = set(station_ids)
    step = timedelta(minutes=period_minutes)
    evs = []
    for s in sessions:
        station = s.connector_id.rsplit("/", 1)[0]
        arrival = int((s.arrival - start) / step)
        departure = int((s.departure - start) / step)
        if station not in known or departure <= arrival or arrival < 0 or s.energy_kwh <= 0:
            continue
        told = s.stated_departure if stated and s.stated_departure else s.departure
        estimated = max(int((told - start) / step), arrival + 1)
        battery = acnsim.Battery(s.energy_kwh, 0.0, 1000.0)
        evs.append(
            acnsim.EV(arrival, departure, s.energy_kwh, station, s.session_id, battery, estimated)
        )
    return evs


def infeasible_periods(sim: Any) -> int:
    """Periods whose pilot signals break a constraint, as the simulator checks them."""
    pilots = np.asarray(sim.pilot_signals, dtype=float)
    return sum(not sim.network.is_feasible(pilots[:, [t]]) for t in range(pilots.shape[1]))
