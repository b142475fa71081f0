"""The site model: the capacity tree, the stations and their connectors.

A site is a tree of capacity *groups* (grid connection → transformers → panels
→ fuses) with stations hanging off the groups. Each connector loads one, two or
three of the site's lines (after phase rotation). Limits are per line in
amperes (`limit_a`, the same figure for every line the group carries) and/or a
total power (`limit_kw`).

A group may instead be a *weighted constraint* (``weights`` set): a linear
limit Σ |weight|·current over named stations or connectors, for electrical
limits that are not a branch of the tree (e.g. the primary side of a
delta-wye transformer). Such a group must have a parent (for display) and no
children; its limit is in amperes.

Everything here is pure data with validation: no file or network access.
"""

from __future__ import annotations

import difflib
import math
import zoneinfo
from collections.abc import Iterator
from enum import StrEnum
from functools import cached_property
from typing import Annotated

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)


class Line(StrEnum):
    L1 = "L1"
    L2 = "L2"
    L3 = "L3"


LINES: tuple[Line, ...] = (Line.L1, Line.L2, Line.L3)
SQRT3 = math.sqrt(3.0)

PositiveFloat = Annotated[float, Field(gt=0)]
NonNegativeFloat = Annotated[float, Field(ge=0)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SiteValueError(ValueError):
    """A check of the whole site that is about one entry: ``where`` is the path of
    that entry's key in the site's tables (``("groups", 2, "parent")``), so a
    reader of the file can point at its line."""

    def __init__(self, message: str, where: tuple[str | int, ...]) -> None:
        super().__init__(message)
        self.where = where


# Plausibility of the figures a site file gives: a figure far outside what exists
# is a unit typed wrong (watts for amperes or kilowatts, line-to-line for
# line-to-neutral), which the planner would otherwise take at its word.
MAX_AC_CONNECTOR_A = 500.0
"""More than any AC connector carries per line."""
LINE_TO_NEUTRAL_V = (100.0, 110.0, 115.0, 120.0, 127.0, 220.0, 230.0, 240.0, 277.0)
LINE_TO_LINE_V = (200.0, 208.0, 220.0, 240.0, 380.0, 400.0, 415.0, 480.0)
VOLTAGE_TOLERANCE = 0.06
"""How far from a nominal mains voltage a figure may be (a measured 236 V is fine)."""


def _near(volts: float, nominal: tuple[float, ...]) -> bool:
    return any(abs(volts - v) <= VOLTAGE_TOLERANCE * v for v in nominal)


def check_voltage(volts: float, line_to_line: bool, field: str = "voltage_v") -> float:
    """``volts`` if it is a mains voltage of the wiring; else the likely mistake."""
    expected, other = (
        (LINE_TO_LINE_V, LINE_TO_NEUTRAL_V) if line_to_line else (LINE_TO_NEUTRAL_V, LINE_TO_LINE_V)
    )
    if _near(volts, expected):
        return volts
    kind = "line-to-line" if line_to_line else "line-to-neutral"
    if _near(volts, other):
        if line_to_line:
            return _refuse(
                f"{field} = {volts:g}: looks like line-to-neutral; a connector on a line pair "
                f"takes line-to-line ({_nearest(volts * SQRT3, LINE_TO_LINE_V):g} V on a "
                f"{volts:g} V network)"
            )
        return _refuse(
            f"{field} = {volts:g}: looks like line-to-line; {field} is line-to-neutral here "
            f"({_nearest(volts / SQRT3, LINE_TO_NEUTRAL_V):g} V on a {volts:g} V network)"
        )
    shown = "/".join(f"{v:g}" for v in expected)
    return _refuse(f"{field} = {volts:g}: not a mains voltage ({kind}: {shown} V)")


def _nearest(volts: float, nominal: tuple[float, ...]) -> float:
    return min(nominal, key=lambda v: abs(v - volts))


def _refuse(message: str) -> float:
    raise ValueError(message)


def check_timezone(name: str) -> str:
    """``name`` if it is an IANA time zone; else the nearest names."""
    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        near = difflib.get_close_matches(name, sorted(zoneinfo.available_timezones()), n=1)
        hint = f" — did you mean {near[0]!r}?" if near else " (e.g. 'Europe/Amsterdam')"
        raise ValueError(f"timezone {name!r} is not a known time zone{hint}") from None
    return name


class SiteInfo(_Strict):
    name: str = Field(min_length=1)
    id: str | None = Field(default=None, pattern=r"^[a-z0-9][a-z0-9_-]{0,47}$")
    """The site's id in a deployment of several (URL path, schema); else the file's stem."""
    voltage_v: PositiveFloat = 230.0
    """Default line-to-neutral voltage."""
    slot_minutes: Annotated[int, Field(ge=1, le=60)] = 15
    horizon_hours: Annotated[float, Field(gt=0, le=168)] = 24.0
    timezone: str = "UTC"

    @field_validator("slot_minutes")
    @classmethod
    def _divides_hour(cls, v: int) -> int:
        if 60 % v:
            raise ValueError(
                "slot_minutes must divide 60 (1, 2, 3, 4, 5, 6, 10, 12, 15, 20, 30, 60)"
            )
        return v

    @field_validator("voltage_v")
    @classmethod
    def _mains_voltage(cls, v: float) -> float:
        return check_voltage(v, line_to_line=False)

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, v: str) -> str:
        return check_timezone(v)


class Group(_Strict):
    id: str = Field(min_length=1)
    parent: str | None = None
    limit_a: NonNegativeFloat | None = None
    """Per-line current limit (every line the group carries)."""
    limit_kw: NonNegativeFloat | None = None
    """Total active-power limit over all lines."""
    fallback_limit_a: NonNegativeFloat | None = None
    """Per-line limit to keep if the central system is gone (defaults to limit_a)."""
    export_limit_a: NonNegativeFloat | None = None
    """Per-line current the group may feed back (V2X discharge). Default: 0 at
    the root (no export beyond the connection), ``limit_a`` below it."""
    oscp_group_id: str | None = None
    weights: dict[str, float] | None = None
    """Weighted constraint: station or connector id → factor (|factor| is used)."""
    phasor: bool = False
    """Limits on phasor sums, exactly: each line's current is |Σ I·e^(jθ)| over
    what loads it, θ the phase angle of each member's current (that of the
    voltage it is wired across: line pairs are 30° off the line). With
    ``weights``: |Σ factor·I·e^(jθ)|, the factor's sign kept (e.g. a transformer
    primary). Off: magnitudes summed (Σ I, Σ |factor|·I), never looser."""
    description: str = ""


class Connector(_Strict):
    id: Annotated[int, Field(ge=1)]
    max_current_a: PositiveFloat
    min_current_a: NonNegativeFloat = 6.0
    phases: tuple[Line, ...] = (Line.L1, Line.L2, Line.L3)
    voltage_v: PositiveFloat | None = None
    """Voltage across what the connector loads: line-to-neutral for one or three
    lines, line-to-line for a pair (e.g. 208 for a US charger). Defaults to the
    site's voltage (×√3 for a pair)."""
    cable_max_current_a: PositiveFloat | None = None
    allowed_currents_a: tuple[NonNegativeFloat, ...] | None = None
    """Discrete pilot steps the station accepts (0 is always allowed)."""

    @field_validator("phases", mode="before")
    @classmethod
    def _upper(cls, v: object) -> object:
        if isinstance(v, list | tuple):
            return tuple(str(p).upper() for p in v)
        return v

    @field_validator("max_current_a", "cable_max_current_a")
    @classmethod
    def _amperes(cls, v: float | None, info: ValidationInfo) -> float | None:
        if v is not None and v > MAX_AC_CONNECTOR_A:
            mistake = "looks like watts" if v >= 1000 else "more than an AC connector carries"
            raise ValueError(
                f"{info.field_name} = {v:g}: {mistake}; {info.field_name} is in amperes per "
                f"line (at most {MAX_AC_CONNECTOR_A:g})"
            )
        return v

    @model_validator(mode="after")
    def _check(self) -> Connector:
        if self.voltage_v is not None and 1 <= len(self.phases) <= 3:
            try:
                check_voltage(self.voltage_v, line_to_line=len(self.phases) == 2)
            except ValueError as e:
                raise SiteValueError(str(e), ("voltage_v",)) from None
        if not 1 <= len(self.phases) <= 3 or len(set(self.phases)) != len(self.phases):
            raise ValueError("phases must list 1 to 3 distinct lines of L1, L2, L3")
        if self.min_current_a > self.max_current_a:
            raise ValueError(
                f"min_current_a {self.min_current_a} exceeds max_current_a {self.max_current_a}"
            )
        if self.allowed_currents_a is not None:
            steps = sorted(set(self.allowed_currents_a))
            if not steps or steps[-1] <= 0:
                raise ValueError("allowed_currents_a needs at least one step above 0")
        return self


class Charger(_Strict):
    id: str = Field(min_length=1, max_length=48, pattern=r"^[^/:\s]+$")
    group: str
    connectors: tuple[Connector, ...] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique_connectors(self) -> Charger:
        ids = [c.id for c in self.connectors]
        if len(ids) != len(set(ids)):
            raise ValueError(f"charger {self.id}: connector ids repeat: {ids}")
        return self


def connector_key(station_id: str, connector_id: int) -> str:
    """The one name of a connector everywhere: ``STATION/CONNECTOR``."""
    return f"{station_id}/{connector_id}"


def station_of(connector: str) -> str:
    """``STATION/CONNECTOR`` → ``STATION``: the station part of a `connector_key`."""
    return connector.rsplit("/", 1)[0]


class ConnectorInfo(BaseModel):
    """A connector resolved against its site: name, group path, electrical data."""

    model_config = ConfigDict(frozen=True)

    key: str
    station_id: str
    connector: Connector
    group: str
    ancestors: tuple[str, ...]
    """The connector's group and every group above it, nearest first."""
    voltage_v: float

    @property
    def lines(self) -> tuple[Line, ...]:
        return self.connector.phases

    def kw_per_amp(self, lines: tuple[Line, ...] | None = None) -> float:
        """kW drawn per ampere of (per-line) current on the given lines."""
        return power_per_amp_kw(lines or self.connector.phases, self.connector, self.voltage_v)

    @property
    def max_current_a(self) -> float:
        c = self.connector
        return min(c.max_current_a, c.cable_max_current_a or math.inf)


def power_per_amp_kw(lines: tuple[Line, ...], connector: Connector, site_voltage: float) -> float:
    """Power per ampere: V×3 for three lines, V for one line or a line pair.

    ``site_voltage`` is what `Site.connector_voltage` resolved for the connector's
    own wiring; a 1-phase car on a 3-phase connector keeps the line-to-neutral
    figure.
    """
    if len(lines) == 3:
        return site_voltage * 3 / 1000.0
    return site_voltage / 1000.0


class Site(_Strict):
    site: SiteInfo
    groups: tuple[Group, ...] = Field(min_length=1)
    chargers: tuple[Charger, ...] = ()

    @model_validator(mode="after")
    def _check_tree(self) -> Site:
        def at(i: int, key: str) -> tuple[str | int, ...]:
            return ("groups", i, key)

        ids = [g.id for g in self.groups]
        for i, g in enumerate(self.groups):
            if g.id in ids[:i]:
                raise SiteValueError(f"group id {g.id!r} repeats", at(i, "id"))
        by_id = {g.id: g for g in self.groups}
        for i, g in enumerate(self.groups):
            if g.parent is not None and g.parent not in by_id:
                raise SiteValueError(
                    f"group {g.id}: parent {g.parent!r} is not a group", at(i, "parent")
                )
            if g.weights is not None:
                if g.parent is None:
                    raise SiteValueError(f"weighted group {g.id} needs a parent", at(i, "weights"))
                if g.limit_a is None:
                    raise SiteValueError(f"weighted group {g.id} needs limit_a", at(i, "weights"))
        for i, g in enumerate(self.groups):  # cycles: walk up at most len(groups) steps
            seen = [g.id]
            cur = g.parent
            while cur is not None:
                if cur in seen:
                    raise SiteValueError(
                        f"group cycle: {' -> '.join([*seen, cur])}", at(i, "parent")
                    )
                seen.append(cur)
                cur = by_id[cur].parent
        roots = [g.id for g in self.groups if g.parent is None and g.weights is None]
        if len(roots) != 1:
            raise ValueError(f"the group tree needs exactly one root (no parent); found {roots}")
        weighted = {g.id for g in self.groups if g.weights is not None}
        for i, g in enumerate(self.groups):
            if g.parent in weighted:
                raise SiteValueError(
                    f"group {g.id}: parent {g.parent} is a weighted group", at(i, "parent")
                )
            self._check_kw_against_current(g, i)
        station_ids = [c.id for c in self.chargers]
        for i, c in enumerate(self.chargers):
            if c.id in station_ids[:i]:
                raise SiteValueError(f"charger id {c.id!r} repeats", ("chargers", i, "id"))
            if c.group not in by_id:
                raise SiteValueError(
                    f"charger {c.id}: group {c.group!r} is not a group", ("chargers", i, "group")
                )
            if c.group in weighted:
                raise SiteValueError(
                    f"charger {c.id}: group {c.group} is a weighted group", ("chargers", i, "group")
                )
        keys = set(station_ids) | {
            connector_key(c.id, k.id) for c in self.chargers for k in c.connectors
        }
        for i, g in enumerate(self.groups):
            for name in g.weights or {}:
                if name not in keys:
                    raise SiteValueError(
                        f"weighted group {g.id}: {name!r} is no station or connector",
                        at(i, "weights"),
                    )
        return self

    def _check_kw_against_current(self, group: Group, index: int) -> None:
        """A kW limit far above what the group's current limit lets through on
        three lines is a unit typed wrong (a little above is harmless: the
        current limit binds first)."""
        if group.weights is not None or group.limit_a is None or group.limit_kw is None:
            return
        reachable_kw = group.limit_a * self.site.voltage_v * 3 / 1000.0
        if reachable_kw <= 0 or group.limit_kw <= max(10 * reachable_kw, 1000.0):
            return
        mistake = "looks like watts" if group.limit_kw >= 300 * reachable_kw else "too high"
        raise SiteValueError(
            f"limit_kw = {group.limit_kw:g}: {mistake}; limit_kw is in kilowatts, and "
            f"limit_a = {group.limit_a:g} A per line at {self.site.voltage_v:g} V on three "
            f"lines is {reachable_kw:.0f} kW",
            ("groups", index, "limit_kw"),
        )

    # --- derived views -------------------------------------------------------

    @cached_property
    def group_by_id(self) -> dict[str, Group]:
        return {g.id: g for g in self.groups}

    @cached_property
    def root(self) -> Group:
        return next(g for g in self.groups if g.parent is None and g.weights is None)

    def ancestors(self, group_id: str) -> tuple[str, ...]:
        out = []
        cur: str | None = group_id
        while cur is not None:
            out.append(cur)
            cur = self.group_by_id[cur].parent
        return tuple(out)

    def children(self, group_id: str) -> tuple[str, ...]:
        return tuple(g.id for g in self.groups if g.parent == group_id)

    @cached_property
    def connectors(self) -> dict[str, ConnectorInfo]:
        """Every connector by its ``STATION/CONNECTOR`` key, in config order."""
        out: dict[str, ConnectorInfo] = {}
        for ch in self.chargers:
            anc = self.ancestors(ch.group)
            for con in ch.connectors:
                key = connector_key(ch.id, con.id)
                out[key] = ConnectorInfo(
                    key=key,
                    station_id=ch.id,
                    connector=con,
                    group=ch.group,
                    ancestors=anc,
                    voltage_v=self.connector_voltage(con),
                )
        return out

    def connector_voltage(self, con: Connector) -> float:
        if con.voltage_v is not None:
            return con.voltage_v
        if len(con.phases) == 2:
            return self.site.voltage_v * SQRT3
        return self.site.voltage_v

    def connectors_under(self, group_id: str) -> Iterator[ConnectorInfo]:
        for info in self.connectors.values():
            if group_id in info.ancestors:
                yield info

    def weighted_members(self, group: Group, *, signed: bool = False) -> dict[str, float]:
        """Connector key → |weight| (``signed``: weight) for a weighted group
        (station weights apply to each of its connectors)."""
        out: dict[str, float] = {}
        for name, w in (group.weights or {}).items():
            w = w if signed else abs(w)
            if "/" in name:
                out[name] = out.get(name, 0.0) + w
            else:
                for info in self.connectors.values():
                    if info.station_id == name:
                        out[info.key] = out.get(info.key, 0.0) + w
        return out
