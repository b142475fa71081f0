"""The capacity book: every forecast and operator limit, merged into what the
optimizer reads.

In memory only; the app persists `CapacityBook.export()` records and feeds them
back with `CapacityBook.from_export` after a restart.

Size: the book keeps what is still in force (what later forecasts replaced is
gone at once), one forecast brings at most `MAX_BLOCKS` blocks, and the app
calls `CapacityBook.prune` with its own clock to forget what ended. Every view
reads through `CapacityBook.window`, so what it costs depends on the window it
looks at, not on how much the book holds.

Merging rules:

* A newer forecast of the same group and type replaces the older ones where its
  blocks lie; elsewhere older blocks stay. Blocks of one forecast that overlap
  each other count at their most restrictive. Where no block lies, the static
  limit holds.
* On a planning grid, each slot takes the most restrictive value of every block
  that overlaps it (blocks need not align with slots). `CapacityBook.applied`
  shows the same rule between block boundaries: what applies, without overlaps.
* The capacity of a group and slot is the minimum of its static limit, the
  operator's overrides, the CONSUMPTION forecast and — while the provider that
  sent it is offline (its last heartbeat's ``offline_mode_at`` passed) — the
  FALLBACK_CONSUMPTION forecast, over the whole grid.
* OPTIMUM is kept and shown, never a limit; GENERATION and FALLBACK_GENERATION
  bound what a group may feed back (`forecasts.generation`), never a consumption limit.
"""

from __future__ import annotations

import math
from bisect import bisect_left, bisect_right
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd

from forecasts.errors import InvalidForecast, InvalidRecord
from forecasts.generation import export_limits
from forecasts.model import Block, Forecast, ForecastType
from forecasts.units import Limit, block_limit, normalize
from optimizer.problem import Capacity, LimitWindow, TimeGrid
from optimizer.site import Site

EXPORT_VERSION = 1

MAX_BLOCKS = 7 * 24 * 12
"""Most blocks one forecast may hold: a week of 5-minute blocks, far more than a
DSO sends (a day ahead, in 15-minute blocks, is usual)."""

MAX_ENDED = 7 * 24 * 12
"""Most pieces that ended a group and type keeps for the views of the past (see
`CapacityBook.prune`)."""

Key = tuple[str, ForecastType]


@dataclass(frozen=True)
class Piece:
    """The part of a received block still in force (in A or KW)."""

    block: Block
    source: str
    received_at: datetime
    seq: int


@dataclass(frozen=True)
class Stretch:
    """What applies over ``[start, end)``: the most restrictive of the blocks of
    one forecast there (blocks of one forecast may overlap)."""

    start: datetime
    end: datetime
    limit: Limit
    source: str
    received_at: datetime


@dataclass(frozen=True)
class Override:
    """An operator's limit on a site group over ``[start, end)`` (``end`` None: open)."""

    id: str
    group: str
    start: datetime
    end: datetime | None = None
    limit_a: float | None = None
    limit_kw: float | None = None
    reason: str = ""

    def __post_init__(self) -> None:
        for name in ("start", "end"):
            t = getattr(self, name)
            if t is not None:
                if t.tzinfo is None:
                    raise InvalidForecast(f"override {self.id}: {name} must be timezone-aware")
                object.__setattr__(self, name, t.astimezone(UTC))
        if self.end is not None and not self.end > self.start:
            raise InvalidForecast(f"override {self.id}: end must be after start")
        for v in (self.limit_a, self.limit_kw):
            if v is not None and not (v >= 0 and math.isfinite(v)):
                raise InvalidForecast(f"override {self.id}: limits must be finite and ≥ 0")

    @property
    def window(self) -> LimitWindow:
        """The limit it sets, as every limit over time is folded into capacity."""
        return LimitWindow(self.group, self.start, self.end, self.limit_a, self.limit_kw)


def _spans(blocks: Iterable[Block]) -> list[tuple[datetime, datetime]]:
    """The time the blocks cover, as sorted disjoint ``[start, end)`` spans."""
    out: list[tuple[datetime, datetime]] = []
    for b in sorted(blocks, key=lambda b: b.start):
        if out and b.start <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], b.end))
        else:
            out.append((b.start, b.end))
    return out


def _subtract(p: Piece, spans: Sequence[tuple[datetime, datetime]]) -> list[Piece]:
    """What is left of ``p`` outside ``spans`` (sorted, disjoint)."""
    b = p.block
    j = bisect_right(spans, b.start, key=lambda s: s[1])
    if j == len(spans) or spans[j][0] >= b.end:
        return [p]
    out: list[Piece] = []
    cur = b.start
    for s0, s1 in spans[j:]:
        if s0 >= b.end:
            break
        if s0 > cur:
            out.append(_trim(p, cur, s0))
        cur = max(cur, s1)
    if cur < b.end:
        out.append(_trim(p, cur, b.end))
    return out


def _trim(p: Piece, start: datetime, end: datetime) -> Piece:
    b = p.block
    return Piece(Block(b.capacity, b.unit, b.phase, start, end), p.source, p.received_at, p.seq)


def _fold(
    blocks: Iterable[Block], edges: Sequence[datetime], voltage_v: float
) -> tuple[np.ndarray, np.ndarray]:
    """Between consecutive ``edges`` (sorted), the most restrictive (limit_a,
    limit_kw) of the blocks overlapping there (``inf``: no block)."""
    n = len(edges) - 1
    la = np.full(n, np.inf)
    lk = np.full(n, np.inf)
    for b in blocks:
        lo = max(bisect_right(edges, b.start) - 1, 0)
        hi = min(bisect_left(edges, b.end), n)
        if lo >= hi:
            continue
        lim = block_limit(b, voltage_v)
        la[lo:hi] = np.minimum(la[lo:hi], lim.limit_a)
        lk[lo:hi] = np.minimum(lk[lo:hi], lim.limit_kw)
    return la, lk


def _edges(grid: TimeGrid) -> list[datetime]:
    return [grid.slot_start(i) for i in range(grid.slots + 1)]


def _start(p: Piece) -> datetime:
    return p.block.start


def _index(grid: TimeGrid) -> pd.DatetimeIndex:
    return pd.DatetimeIndex(grid.starts(), name="slot")


@dataclass
class CapacityBook:
    """Forecasts by (provider group id, type), operator overrides, provider liveness.

    Per group and type the book holds `Piece` s sorted by start: what is left
    in force of each forecast. Pieces of different forecasts never overlap (a
    newer one cuts the older ones where its blocks lie); pieces of one forecast
    may.
    """

    _pieces: dict[Key, list[Piece]] = field(default_factory=dict)
    _longest: dict[Key, timedelta] = field(default_factory=dict)
    """No piece of the key is longer (a bound: where a window's search starts)."""
    _sources: dict[Key, Counter[str]] = field(default_factory=dict)
    """Pieces per provider, per key."""
    _overrides: dict[str, Override] = field(default_factory=dict)
    _offline_at: dict[str, datetime] = field(default_factory=dict)
    _seq: int = 0

    # --- input ---------------------------------------------------------------

    def add(self, forecast: Forecast) -> None:
        """Record a forecast; its blocks replace older ones of its group and type.

        Raises `InvalidForecast` (and changes nothing) for more than `MAX_BLOCKS`."""
        if len(forecast.blocks) > MAX_BLOCKS:
            raise InvalidForecast(
                f"a forecast holds at most {MAX_BLOCKS} blocks, not {len(forecast.blocks)}"
            )
        self._seq += 1
        self._apply(self._seq, forecast)

    def _apply(self, seq: int, forecast: Forecast) -> None:
        if not forecast.blocks:
            return
        key = (forecast.group_id, forecast.type)
        pieces = self._pieces.get(key, [])
        new = [
            Piece(normalize(b), forecast.source, forecast.received_at, seq) for b in forecast.blocks
        ]
        spans = _spans(p.block for p in new)
        longest = self._longest.get(key, timedelta(0))
        # only pieces starting in here can overlap the new blocks
        i0 = bisect_left(pieces, spans[0][0] - longest, key=_start)
        i1 = bisect_left(pieces, spans[-1][1], key=_start)
        old = pieces[i0:i1]
        kept = [r for p in old for r in _subtract(p, spans)]
        middle = sorted(kept + new, key=lambda p: (p.block.start, p.seq))
        self._pieces[key] = pieces[:i0] + middle + pieces[i1:]
        self._longest[key] = max([longest, *(p.block.end - p.block.start for p in new)])
        sources = self._sources.setdefault(key, Counter())
        sources.subtract(p.source for p in old)
        sources.update(p.source for p in middle)
        self._sources[key] = +sources

    def set_override(self, override: Override) -> None:
        self._overrides[override.id] = override

    def remove_override(self, override_id: str) -> bool:
        return self._overrides.pop(override_id, None) is not None

    def heartbeat(self, source: str, offline_mode_at: datetime) -> None:
        """The provider ``source`` is online until ``offline_mode_at``."""
        if offline_mode_at.tzinfo is None:
            raise InvalidForecast("offline_mode_at must be timezone-aware")
        self._offline_at[source] = offline_mode_at.astimezone(UTC)

    def prune(self, before: datetime, *, now: datetime | None = None) -> int:
        """Forget every block and override that ended at or before ``before``
        (the caller's clock less what its views of the past still need), and the
        offline time of a provider that passed then and that no block is left of;
        how many forecasts went with them.

        With ``now``, at most `MAX_ENDED` pieces that ended by then stay per group
        and type (the oldest go first): a DSO that sends a forecast every few
        seconds leaves a short remnant of each, and the history they make is cut
        by count as well as by time."""
        gone: set[int] = set()
        for key, pieces in self._pieces.items():
            # only pieces that started before ``before`` (or ``now``) can have ended
            head = pieces[: bisect_left(pieces, before, key=_start)]
            ended = [p for p in head if p.block.end <= before]
            if now is not None:
                past = pieces[: bisect_left(pieces, now, key=_start)]
                over = [p for p in past if before < p.block.end <= now]
                ended += over[: max(0, len(over) - MAX_ENDED)]
            if not ended:
                continue
            gone.update(p.seq for p in ended)
            dropped = {id(p) for p in ended}
            left = [p for p in pieces if id(p) not in dropped]
            self._pieces[key] = left
            self._longest[key] = max(
                (p.block.end - p.block.start for p in left), default=timedelta(0)
            )
            self._sources[key] = Counter(p.source for p in left)
        for oid, o in list(self._overrides.items()):
            if o.end is not None and o.end <= before:
                del self._overrides[oid]
        # a provider long silent whose forecasts all ended changes nothing any more
        sending = {s for counts in self._sources.values() for s in counts}
        for source, t in list(self._offline_at.items()):
            if t <= before and source not in sending:
                del self._offline_at[source]
        if not gone:
            return 0
        return len(gone - {p.seq for pieces in self._pieces.values() for p in pieces})

    # --- views ---------------------------------------------------------------

    def _kept(self) -> list[tuple[int, Forecast]]:
        """What is left in force of each forecast, by ``seq``."""
        parts: dict[int, tuple[Key, list[Piece]]] = {}
        for key, pieces in self._pieces.items():
            for p in pieces:
                parts.setdefault(p.seq, (key, []))[1].append(p)
        return [
            (
                seq,
                Forecast(
                    key[0],
                    key[1],
                    tuple(p.block for p in ps),
                    ps[0].received_at,
                    ps[0].source,
                ),
            )
            for seq, (key, ps) in sorted(parts.items())
        ]

    def forecasts(self) -> list[Forecast]:
        """Every forecast with a block still in force, oldest first, as far as it
        is still in force (blocks in A or KW, see `forecasts.units.normalize`)."""
        return [f for _, f in self._kept()]

    def pieces(self, group_id: str, type_: ForecastType) -> tuple[Piece, ...]:
        """What is in force for a provider group and type, by start time."""
        return tuple(self._pieces.get((group_id, type_), ()))

    def window(
        self,
        group_id: str,
        type_: ForecastType,
        start: datetime | None = None,
        end: datetime | None = None,
    ) -> list[Piece]:
        """The pieces overlapping ``[start, end)`` (None: unbounded), by start time.

        Every view reads the book through here."""
        pieces = self._pieces.get((group_id, type_), [])
        i1 = len(pieces) if end is None else bisect_left(pieces, end, key=_start)
        if start is None:
            return pieces[:i1]
        longest = self._longest.get((group_id, type_), timedelta(0))
        i0 = bisect_left(pieces, start - longest, key=_start, hi=i1)
        return [p for p in pieces[i0:i1] if p.block.end > start]

    def applied(
        self,
        group_id: str,
        type_: ForecastType,
        voltage_v: float,
        start: datetime | None = None,
        end: datetime | None = None,
    ) -> list[Stretch]:
        """What applies over ``[start, end)`` (None: unbounded), by start time:
        between block boundaries, the rule the planning grid uses (`capacity`),
        so overlapping blocks of one forecast show as the most restrictive."""
        by_seq: dict[int, list[Piece]] = {}
        for p in self.window(group_id, type_, start, end):
            by_seq.setdefault(p.seq, []).append(p)
        out: list[Stretch] = []
        for pieces in by_seq.values():
            edges = sorted({t for p in pieces for t in (p.block.start, p.block.end)})
            la, lk = _fold((p.block for p in pieces), edges, voltage_v)
            first = pieces[0]
            for i in range(len(edges) - 1):
                t0, t1 = edges[i], edges[i + 1]
                covered = math.isfinite(la[i]) or math.isfinite(lk[i])
                if (
                    not covered
                    or (end is not None and t0 >= end)
                    or (start is not None and t1 <= start)
                ):
                    continue
                lim = Limit(float(la[i]), float(lk[i]))
                out.append(Stretch(t0, t1, lim, first.source, first.received_at))
        out.sort(key=lambda s: s.start)
        return out

    def applied_at(
        self, group_id: str, type_: ForecastType, voltage_v: float, at: datetime
    ) -> Stretch | None:
        """What applies at the instant ``at`` (None: no block)."""
        here = self.applied(group_id, type_, voltage_v, at, at + timedelta(microseconds=1))
        return here[0] if here else None

    def overrides(self) -> list[Override]:
        return list(self._overrides.values())

    def offline_mode_at(self, source: str) -> datetime | None:
        return self._offline_at.get(source)

    def is_offline(self, source: str, now: datetime) -> bool:
        """True once the provider's last ``offline_mode_at`` passed (never heard: online)."""
        t = self._offline_at.get(source)
        return t is not None and now >= t

    def next_change(self, now: datetime) -> datetime | None:
        """The next time a provider goes offline unless it sends a heartbeat
        (the controller should re-plan then)."""
        future = [t for t in self._offline_at.values() if t > now]
        return min(future) if future else None

    def fallback_active(self, group_id: str, now: datetime) -> bool:
        """Whether the group's FALLBACK_CONSUMPTION forecast is enforced now."""
        sources = self._sources.get((group_id, ForecastType.FALLBACK_CONSUMPTION), Counter())
        return any(self.is_offline(s, now) for s in sources)

    def _layers(
        self, site: Site, grid: TimeGrid, now: datetime
    ) -> dict[str, dict[str, np.ndarray]]:
        v = site.site.voltage_v
        out: dict[str, dict[str, np.ndarray]] = {}
        n = grid.slots
        edges = _edges(grid)
        for g in site.groups:
            unlimited = Capacity({g.id: np.full(n, np.inf)}, {g.id: np.full(n, np.inf)})
            overrides = unlimited.limited(
                grid, (o.window for o in self._overrides.values() if o.group == g.id)
            )
            layer: dict[str, np.ndarray] = {
                "static_a": np.full(n, g.limit_a if g.limit_a is not None else np.inf),
                "static_kw": np.full(n, g.limit_kw if g.limit_kw is not None else np.inf),
                "override_a": overrides.limit_a[g.id],
                "override_kw": overrides.limit_kw[g.id],
            }
            gid = g.oscp_group_id
            for name, t in (
                ("dso", ForecastType.CONSUMPTION),
                ("fallback", ForecastType.FALLBACK_CONSUMPTION),
                ("optimum", ForecastType.OPTIMUM),
            ):
                blocks = [p.block for p in self.window(gid, t, grid.start, grid.end)] if gid else []
                layer[f"{name}_a"], layer[f"{name}_kw"] = _fold(blocks, edges, v)
            active = gid is not None and self.fallback_active(gid, now)
            layer["fallback_active"] = np.full(n, active)
            fa = layer["fallback_a"] if active else np.full(n, np.inf)
            fk = layer["fallback_kw"] if active else np.full(n, np.inf)
            layer["limit_a"] = np.minimum.reduce(
                [layer["static_a"], layer["override_a"], layer["dso_a"], fa]
            )
            layer["limit_kw"] = np.minimum.reduce(
                [layer["static_kw"], layer["override_kw"], layer["dso_kw"], fk]
            )
            out[g.id] = layer
        return out

    def capacity(self, site: Site, grid: TimeGrid, now: datetime) -> Capacity:
        """What the optimizer reads: per group and slot, the minimum of the static
        limit, the overrides, the DSO's forecast and (provider offline) its fallback."""
        layers = self._layers(site, grid, now)
        return Capacity(
            {g: lay["limit_a"] for g, lay in layers.items()},
            {g: lay["limit_kw"] for g, lay in layers.items()},
            export_a=export_limits(self, site, grid, now),  # GENERATION: what may be fed back
        )

    def fallback_capacity(self, site: Site, grid: TimeGrid) -> Capacity:
        """Limits for the stations' fallback profiles (kept if gridshare is gone):
        each group's ``fallback_limit_a`` (else ``limit_a``), its ``limit_kw`` and
        the FALLBACK_CONSUMPTION forecast, whichever is lowest."""
        v = site.site.voltage_v
        la: dict[str, np.ndarray] = {}
        lk: dict[str, np.ndarray] = {}
        for g in site.groups:
            static_a = g.fallback_limit_a if g.fallback_limit_a is not None else g.limit_a
            a = np.full(grid.slots, static_a if static_a is not None else np.inf)
            k = np.full(grid.slots, g.limit_kw if g.limit_kw is not None else np.inf)
            if g.oscp_group_id:
                fb = self.window(
                    g.oscp_group_id, ForecastType.FALLBACK_CONSUMPTION, grid.start, grid.end
                )
                fa, fk = _fold((p.block for p in fb), _edges(grid), v)
                a, k = np.minimum(a, fa), np.minimum(k, fk)
            la[g.id], lk[g.id] = a, k
        return Capacity(la, lk)

    def frame(self, site: Site, grid: TimeGrid, now: datetime) -> pd.DataFrame:
        """The capacity as a table: one row per slot start (UTC), columns
        ``(group, "limit_a" | "limit_kw")``; ``inf`` means no limit."""
        layers = self._layers(site, grid, now)
        cols = {(g, q): lay[q] for g, lay in layers.items() for q in ("limit_a", "limit_kw")}
        df = pd.DataFrame(cols, index=_index(grid))
        df.columns = pd.MultiIndex.from_tuples(list(cols), names=["group", "quantity"])
        return df

    def series(
        self, site: Site, grid: TimeGrid, now: datetime, group: str, quantity: str = "limit_a"
    ) -> pd.Series:
        """One group's ``limit_a`` or ``limit_kw`` over the grid."""
        layer = self._layers(site, grid, now)[group]
        return pd.Series(layer[quantity], index=_index(grid), name=f"{group}.{quantity}")

    def breakdown(self, site: Site, grid: TimeGrid, now: datetime, group: str) -> pd.DataFrame:
        """Where a group's limit comes from, per slot: static, override, dso,
        fallback (and whether it is active), optimum, and the resulting limit."""
        layer = self._layers(site, grid, now)[group]
        return pd.DataFrame(layer, index=_index(grid))

    # --- persistence -----------------------------------------------------------

    def export(self) -> dict[str, Any]:
        """Plain-data records (JSON-ready) from which `from_export` rebuilds the book."""
        return {
            "version": EXPORT_VERSION,
            # what is left of each forecast: replayed, it rebuilds the same pieces
            "forecasts": [{"seq": seq, **f.to_dict()} for seq, f in self._kept()],
            "overrides": [
                {
                    "id": o.id,
                    "group": o.group,
                    "start": o.start.isoformat(),
                    "end": o.end.isoformat() if o.end else None,
                    "limit_a": o.limit_a,
                    "limit_kw": o.limit_kw,
                    "reason": o.reason,
                }
                for o in self._overrides.values()
            ],
            "offline_mode_at": {s: t.isoformat() for s, t in self._offline_at.items()},
        }

    @classmethod
    def from_export(cls, data: Mapping[str, Any]) -> CapacityBook:
        if data.get("version") != EXPORT_VERSION:
            raise InvalidRecord(f"unknown capacity book version {data.get('version')!r}")
        book = cls()
        try:
            recs = sorted(data.get("forecasts", []), key=lambda r: int(r["seq"]))
            for r in recs:
                f = Forecast.from_dict(r)
                book._seq = max(book._seq, int(r["seq"]))
                book._apply(int(r["seq"]), f)
            for o in data.get("overrides", []):
                book.set_override(
                    Override(
                        id=o["id"],
                        group=o["group"],
                        start=datetime.fromisoformat(o["start"]),
                        end=datetime.fromisoformat(o["end"]) if o.get("end") else None,
                        limit_a=o.get("limit_a"),
                        limit_kw=o.get("limit_kw"),
                        reason=o.get("reason", ""),
                    )
                )
            for s, t in data.get("offline_mode_at", {}).items():
                book.heartbeat(s, datetime.fromisoformat(t))
        except (KeyError, TypeError, ValueError) as e:
            raise InvalidRecord(f"bad capacity book record: {e}") from None
        return book
