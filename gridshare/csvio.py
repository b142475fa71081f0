"""Reading the planning CSV files and writing the plan CSV.

Every error is an `InputError` whose message names the file, the line and the
field, e.g. ``sessions.csv:4: departure: not an ISO time: '17:00'``.

* sessions: ``connector_id,arrival,departure,energy_kwh[,max_current_a][,priority][,session_id]``
* capacity: ``group_id,start,end,limit_a|limit_kw`` (one of the two limit columns,
  or both with empty cells) — lowers a group's limit over [start, end)
* prices:   ``start,price`` — price per kWh from ``start`` until the next row
* site load: ``start,group_id,l1_a,l2_a,l3_a`` — a group's non-EV load per line
  from ``start`` until the group's next row

Times are ISO 8601. One without an offset (``2026-11-23T17:00``) is a local
time of the site, in its ``[site] timezone``; ``Z`` or ``+01:00`` say otherwise.
"""

from __future__ import annotations

import csv
import itertools
import math
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, tzinfo
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np

from gridshare.errors import UserError
from optimizer import Capacity, Plan, SessionDemand, Site, TimeGrid
from optimizer.problem import LimitWindow


class InputError(UserError, ValueError):
    """A CSV input is invalid; the message names file, line and field."""


Cite = Callable[[Path, int], str]
"""How an error names the file and line it is about."""


def file_and_line(path: Path, line: int) -> str:
    """``sessions.csv:4``, the way compilers cite a line."""
    return f"{path}:{line}"


CapacityWindow = LimitWindow
"""A row of the capacity file: a group's limit over ``[start, end)``."""


def parse_time(text: str, where: str, field: str, zone: tzinfo = UTC) -> datetime:
    """An ISO time in UTC; one without an offset is a local time in ``zone``."""
    try:
        t = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise InputError(f"{where}: {field}: not an ISO time: {text!r}") from None
    if t.tzinfo is None:
        t = t.replace(tzinfo=zone)
    return t.astimezone(UTC)


def site_zone(site: Site) -> ZoneInfo:
    """The zone of the site's local times (``[site] timezone``)."""
    return ZoneInfo(site.site.timezone)


def _float(text: str, where: str, field: str, *, minimum: float | None = 0.0) -> float:
    try:
        v = float(text)
    except ValueError:
        raise InputError(f"{where}: {field}: not a number: {text!r}") from None
    if not math.isfinite(v):
        raise InputError(f"{where}: {field}: not a finite number: {text!r}")
    if minimum is not None and v < minimum:
        raise InputError(f"{where}: {field}: must be ≥ {minimum:g}, got {v:g}")
    return v


def _rows(
    path: Path, required: tuple[str, ...], cite: Cite = file_and_line
) -> Iterator[tuple[str, dict[str, str]]]:
    try:
        f = path.open(newline="", encoding="utf-8")
    except FileNotFoundError:
        raise InputError(f"{path}: no such file") from None
    except OSError as e:
        raise InputError(f"{path}: {e.strerror or e}") from None
    with f:
        reader = csv.DictReader(f)
        header = [h.strip() for h in (reader.fieldnames or [])]
        missing = [c for c in required if c not in header]
        if missing:
            raise InputError(f"{cite(path, 1)}: missing column(s): {', '.join(missing)}")
        reader.fieldnames = header
        for row in reader:
            where = cite(path, reader.line_num)
            if None in row:
                raise InputError(f"{where}: more cells than columns")
            if any(v is None for v in row.values()):
                raise InputError(f"{where}: fewer cells than columns")
            yield where, {k: (v or "").strip() for k, v in row.items()}


def read_sessions(path: str | Path, site: Site) -> list[SessionDemand]:
    p = Path(path)
    out: list[SessionDemand] = []
    wheres: list[str] = []
    seen: dict[str, str] = {}
    zone = site_zone(site)
    for n, (where, row) in enumerate(
        _rows(p, ("connector_id", "arrival", "departure", "energy_kwh")), start=1
    ):
        cid = row["connector_id"]
        if cid not in site.connectors:
            raise InputError(f"{where}: connector_id: unknown connector {cid!r}")
        arrival = parse_time(row["arrival"], where, "arrival", zone)
        departure = parse_time(row["departure"], where, "departure", zone)
        if departure <= arrival:
            raise InputError(f"{where}: departure: must be after arrival")
        energy = _float(row["energy_kwh"], where, "energy_kwh")
        max_a = row.get("max_current_a") or ""
        prio = row.get("priority") or ""
        sid = row.get("session_id") or f"{cid}#{n}"
        if sid in seen:
            raise InputError(f"{where}: session_id: {sid!r} repeats ({seen[sid]})")
        seen[sid] = where
        wheres.append(where)
        out.append(
            SessionDemand(
                session_id=sid,
                connector_id=cid,
                arrival=arrival,
                departure=departure,
                energy_kwh=energy,
                ev_max_current_a=_float(max_a, where, "max_current_a") if max_a else None,
                priority=_float(prio, where, "priority", minimum=1e-9) if prio else 1.0,
            )
        )
    by_connector: dict[str, list[tuple[datetime, datetime, str, str]]] = {}
    for s, where in zip(out, wheres, strict=True):
        by_connector.setdefault(s.connector_id, []).append(
            (s.arrival, s.departure, s.session_id, where)
        )
    for cid, spans in by_connector.items():
        spans.sort()
        for a, b in itertools.pairwise(spans):
            if b[0] < a[1]:
                raise InputError(
                    f"{b[3]}: arrival: session overlaps {a[2]} on connector {cid} ({a[3]})"
                )
    return out


def read_capacity(
    path: str | Path, site: Site, *, cite: Cite = file_and_line
) -> list[CapacityWindow]:
    """The capacity CSV, one window a row; the planner and the simulation both read it here."""
    p = Path(path)
    out = []
    zone = site_zone(site)
    for where, row in _rows(p, ("group_id", "start", "end"), cite):
        gid = row["group_id"]
        if gid not in site.group_by_id:
            raise InputError(f"{where}: group_id: unknown group {gid!r}")
        start = parse_time(row["start"], where, "start", zone)
        end = parse_time(row["end"], where, "end", zone)
        if end <= start:
            raise InputError(f"{where}: end: must be after start")
        la = row.get("limit_a") or ""
        lk = row.get("limit_kw") or ""
        if not la and not lk:
            raise InputError(f"{where}: limit_a: give limit_a or limit_kw")
        out.append(
            CapacityWindow(
                gid,
                start,
                end,
                _float(la, where, "limit_a") if la else None,
                _float(lk, where, "limit_kw") if lk else None,
            )
        )
    return out


def read_site_load(
    path: str | Path, site: Site, *, cite: Cite = file_and_line
) -> dict[str, list[tuple[datetime, tuple[float, float, float]]]]:
    """The site-load CSV: per group, (start, A per line) in time order."""
    p = Path(path)
    out: dict[str, dict[datetime, tuple[float, float, float]]] = {}
    zone = site_zone(site)
    for where, row in _rows(p, ("start", "group_id", "l1_a", "l2_a", "l3_a"), cite):
        gid = row["group_id"]
        group = site.group_by_id.get(gid)
        if group is None:
            raise InputError(f"{where}: group_id: unknown group {gid!r}")
        if group.weights is not None:
            raise InputError(f"{where}: group_id: {gid!r} is a weighted group, not a connection")
        start = parse_time(row["start"], where, "start", zone)
        amps = (
            _float(row["l1_a"], where, "l1_a"),
            _float(row["l2_a"], where, "l2_a"),
            _float(row["l3_a"], where, "l3_a"),
        )
        if start in out.setdefault(gid, {}):
            raise InputError(f"{where}: start: {gid!r} already has a row at {row['start']}")
        out[gid][start] = amps
    if not out:
        raise InputError(f"{cite(p, 2)}: no site-load rows")
    return {g: sorted(rows.items()) for g, rows in out.items()}


def apply_windows(capacity: Capacity, grid: TimeGrid, windows: list[CapacityWindow]) -> Capacity:
    """Lower the capacity over every slot a window touches (the lowest applies)."""
    return capacity.limited(grid, windows)


def read_prices(path: str | Path, grid: TimeGrid, zone: tzinfo = UTC) -> np.ndarray:
    """Price per slot: each row's price holds from its start to the next row's
    (a start without an offset is a local time in ``zone``, the site's)."""
    p = Path(path)
    points = []
    for where, row in _rows(p, ("start", "price")):
        points.append(
            (
                parse_time(row["start"], where, "start", zone),
                _float(row["price"], where, "price", minimum=None),
            )
        )
    if not points:
        raise InputError(f"{p}:2: no price rows")
    points.sort()
    stamps = np.array([t.timestamp() for t, _ in points])
    values = np.array([v for _, v in points])
    slot_stamps = np.array([grid.slot_start(i).timestamp() for i in range(grid.slots)])
    k = np.maximum(np.searchsorted(stamps, slot_stamps, side="right") - 1, 0)
    return values[k]


def write_plan(path: str | Path, plan: Plan) -> None:
    with Path(path).open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["connector_id", "start", "end", "current_a", "power_kw"])
        starts = [plan.grid.slot_start(i) for i in range(plan.grid.slots + 1)]
        for r, cid in enumerate(plan.connector_ids):
            for t in range(plan.grid.slots):
                w.writerow(
                    [
                        cid,
                        starts[t].isoformat(),
                        starts[t + 1].isoformat(),
                        f"{plan.current_a[r, t]:.1f}",
                        f"{plan.power_kw[r, t]:.3f}",
                    ]
                )
