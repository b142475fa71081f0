"""The operator's limits on the site's groups: one per group, each a `LimitWindow`
with who set it and when.

A new limit on a group replaces the old one; both values None clears it. The
book folds its windows into the capacity the planner sees (`fold`, the same
fold as every other limit over time) and goes to and from plain data for the
store (`export`, `recover`).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from optimizer.problem import Capacity, LimitWindow, TimeGrid

OVERRIDES_STATE = "group_overrides"
"""The store's state key under which the operator limits survive a restart."""


@dataclass(frozen=True)
class OperatorLimit:
    """An operator's limit on a group over ``[start, end)`` (None: open on that side)."""

    window: LimitWindow
    set_by: str
    set_at: datetime

    @property
    def group_id(self) -> str:
        return self.window.group_id

    @property
    def limit_a(self) -> float | None:
        return self.window.limit_a

    @property
    def limit_kw(self) -> float | None:
        return self.window.limit_kw

    @property
    def start(self) -> datetime | None:
        return self.window.start

    @property
    def end(self) -> datetime | None:
        return self.window.end

    def covers(self, t0: datetime, t1: datetime) -> bool:
        """Whether it is in force at any moment of ``[t0, t1)`` (``t0 == t1``: at t0)."""
        return self.window.covers(t0, t1)

    def to_dict(self) -> dict[str, Any]:
        return {
            "group_id": self.group_id,
            "limit_a": self.limit_a,
            "limit_kw": self.limit_kw,
            "start": None if self.start is None else self.start.isoformat(),
            "end": None if self.end is None else self.end.isoformat(),
            "set_by": self.set_by,
            "set_at": self.set_at.isoformat(),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> OperatorLimit:
        def t(v: Any) -> datetime | None:
            return None if v is None else datetime.fromisoformat(v)

        window = LimitWindow(
            group_id=str(d["group_id"]),
            start=t(d.get("start")),
            end=t(d.get("end")),
            limit_a=d.get("limit_a"),
            limit_kw=d.get("limit_kw"),
        )
        return cls(window, str(d.get("set_by", "operator")), datetime.fromisoformat(d["set_at"]))


@dataclass(frozen=True)
class LimitChange:
    """What a `OperatorLimits.set` did, for the audit log."""

    kind: str
    """``group_limit`` or ``group_limit_cleared``."""
    group_id: str
    limit: OperatorLimit | None
    detail: dict[str, Any]


@dataclass
class OperatorLimits:
    """Operator limits per group (one each; a new one replaces the old)."""

    by_group: dict[str, OperatorLimit] = field(default_factory=dict)

    @property
    def limit_a(self) -> dict[str, float]:
        return {g: o.limit_a for g, o in self.by_group.items() if o.limit_a is not None}

    @property
    def limit_kw(self) -> dict[str, float]:
        return {g: o.limit_kw for g, o in self.by_group.items() if o.limit_kw is not None}

    def set(
        self,
        group_id: str,
        *,
        limit_a: float | None,
        limit_kw: float | None,
        start: datetime | None,
        end: datetime | None,
        set_by: str,
        at: datetime,
    ) -> LimitChange:
        """Replace the group's limit (both values None: remove it)."""
        if limit_a is None and limit_kw is None:
            had = self.by_group.pop(group_id, None)
            return LimitChange(
                "group_limit_cleared", group_id, None, {"had_override": had is not None}
            )
        window = LimitWindow(
            group_id,
            start,
            end,
            None if limit_a is None else float(limit_a),
            None if limit_kw is None else float(limit_kw),
        )
        limit = self.by_group[group_id] = OperatorLimit(window, set_by, at)
        detail = {
            "limit_a": limit_a,
            "limit_kw": limit_kw,
            "start": None if start is None else start.isoformat(),
            "end": None if end is None else end.isoformat(),
        }
        return LimitChange("group_limit", group_id, limit, detail)

    def active(self, at: datetime) -> int:
        """How many are in force at ``at``."""
        return sum(1 for o in self.by_group.values() if o.covers(at, at))

    def fold(self, capacity: Capacity, grid: TimeGrid, now: datetime) -> Capacity:
        """The capacity under the operator's limits (a window that ended before
        ``now`` no longer counts, even within its slot)."""
        return capacity.limited(grid, (o.window for o in self.by_group.values()), since=now)

    def export(self) -> list[dict[str, Any]]:
        return [o.to_dict() for o in self.by_group.values()]

    def recover(self, records: Iterable[Mapping[str, Any]], groups: Collection[str]) -> None:
        """Add the limits of ``export`` records on groups the site still has."""
        for d in records:
            o = OperatorLimit.from_dict(d)
            if o.group_id in groups:
                self.by_group[o.group_id] = o
