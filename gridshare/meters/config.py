"""``[[meters]]`` in the site file: what each meter measures and where it is read.

```toml
[[meters]]
id = "main"
group = "grid"              # the group whose connection it measures
measures = "connection"     # connection | load | generation
interval_s = 1              # how often it is read (modbus) or expected (others)
stale_after_s = 10          # silent this long: the non-EV load is taken as max_non_ev_a
max_non_ev_a = [120, 120, 120]   # per line L1, L2, L3 (or one figure for all)
annual_kwh = 150000         # the building's yearly use: the forecast's prior until
profile = "g1"              #   it has history (BDEW: g0 commerce, g1 office, h0 household)
country = "DE"              # public holidays of the forecast's day types
[meters.source]
type = "modbus"             # modbus | mqtt | http | ocpp
host = "10.0.0.5"
port = 502
unit_id = 1
register_map = "eastron-sdm630"   # or "sunspec", or a table of registers
```
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from forecasts.bdew import TABLE as BDEW_TABLE
from forecasts.building_load import DayTypes
from forecasts.errors import ForecastError
from optimizer.site import LINES, MAX_AC_CONNECTOR_A, Line, Site, SiteValueError

BDEW_PROFILES = frozenset(BDEW_TABLE)


class Measures(StrEnum):
    CONNECTION = "connection"
    """Everything through the group's connection, chargers included (import positive)."""
    LOAD = "load"
    """A non-EV load inside the group."""
    GENERATION = "generation"
    """A generator inside the group (PV): it frees capacity, never beyond the limits."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Register(_Strict):
    """One register of a table: ``address``, ``kind`` (input or holding), ``type``."""

    address: Annotated[int, Field(ge=0, le=65535)]
    kind: Literal["input", "holding"] = "input"
    type: Literal["float32", "int16", "uint16", "int32", "uint32"] = "float32"
    scale: float = 1.0
    """The value read × scale is amperes."""


class RegisterTable(_Strict):
    """Line currents at registers of the file's choosing."""

    l1: Register
    l2: Register | None = None
    l3: Register | None = None
    word_order: Literal["big", "little"] = "big"


SourceType = Literal["modbus", "mqtt", "http", "ocpp"]

_KEYS: dict[str, tuple[frozenset[str], frozenset[str]]] = {
    # type → (required keys, allowed keys) besides ``type``
    "modbus": (
        frozenset({"host"}),
        frozenset({"host", "port", "unit_id", "register_map", "sunspec_base", "timeout_s"}),
    ),
    "mqtt": (
        frozenset({"topic"}),
        frozenset({"host", "port", "topic", "json_path", "username", "password"}),
    ),
    "http": (frozenset(), frozenset()),
    "ocpp": (frozenset({"station"}), frozenset({"station"})),
}


class SourceConfig(_Strict):
    """Where a meter is read. ``modbus``: Modbus TCP (``host``, ``port`` 502,
    ``unit_id``, ``register_map``); ``mqtt``: JSON messages on ``topic`` (broker
    ``host``/``port`` 1883, ``json_path`` per line); ``http``: readings posted to
    ``POST /api/meters/{id}/readings`` with a ``write`` token; ``ocpp``: the
    main meter of ``station`` (MeterValues on connector/EVSE 0, location Inlet).

    One flat table, checked per type, so that a misspelt key gets its
    "did you mean"."""

    type: SourceType
    host: str | None = Field(default=None, min_length=1)
    port: Annotated[int, Field(ge=1, le=65535)] | None = None
    unit_id: Annotated[int, Field(ge=0, le=255)] = 1
    register_map: Literal["sunspec", "eastron-sdm630"] | RegisterTable = "eastron-sdm630"
    sunspec_base: Annotated[int, Field(ge=0, le=65535)] = 40000
    """Where the SunSpec map starts (its ``SunS`` marker): 40000, 0 or 50000."""
    timeout_s: Annotated[float, Field(gt=0, le=60)] = 1.0
    topic: str | None = Field(default=None, min_length=1)
    json_path: tuple[str, ...] = ("L1", "L2", "L3")
    """Per line, the dotted path of its current in the message (``"current.l1"``);
    one path for a meter of one line."""
    username: str | None = None
    password: str | None = None
    station: str | None = Field(default=None, min_length=1)

    @field_validator("json_path", mode="before")
    @classmethod
    def _one_or_more(cls, v: object) -> object:
        return (v,) if isinstance(v, str) else v

    @field_validator("json_path")
    @classmethod
    def _paths(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        if not 1 <= len(v) <= 3 or any(not p for p in v):
            raise ValueError("json_path gives 1 to 3 paths: the current of L1, L2, L3")
        return v

    @model_validator(mode="after")
    def _keys_of_type(self) -> SourceConfig:
        required, allowed = _KEYS[self.type]
        given = self.model_fields_set - {"type"}
        for key in sorted(required - given):
            raise SiteValueError(
                f"required key {key!r} is missing for a {self.type} source", (key,)
            )
        for key in sorted(given - allowed):
            known = ", ".join(sorted(allowed)) or "none but type"
            raise SiteValueError(
                f"unknown key {key!r} for a {self.type} source (its keys: {known})", (key,)
            )
        return self

    @property
    def port_or_default(self) -> int:
        return self.port if self.port is not None else (502 if self.type == "modbus" else 1883)


def _per_line(v: object) -> object:
    if isinstance(v, int | float):
        return (v, v, v)
    if isinstance(v, Mapping):
        return tuple(v.get(line.value, v.get(line.value.lower(), 0.0)) for line in LINES)
    return v


class MeterConfig(_Strict):
    id: str = Field(min_length=1, max_length=48, pattern=r"^[A-Za-z0-9_.-]+$")
    group: str = Field(min_length=1)
    measures: Measures
    source: SourceConfig
    interval_s: Annotated[float, Field(gt=0, le=3600)] = 1.0
    stale_after_s: Annotated[float, Field(gt=0, le=86400)] = 10.0
    max_non_ev_a: tuple[float, ...] = (0.0, 0.0, 0.0)
    """Per line L1, L2, L3: the non-EV load to assume when the meter is silent
    or stale (a generation meter: what it frees then, always 0)."""

    annual_kwh: Annotated[float, Field(gt=0, le=1e9, allow_inf_nan=False)] | None = None
    """The building's yearly use (kWh) behind this meter: with ``profile``, the
    building forecaster's prior until it has readings enough."""
    profile: str | None = None
    """The BDEW standard load profile of that use: ``g0`` (commerce), ``g1``
    (office, workshop) or ``h0`` (household)."""
    country: str | None = Field(default=None, min_length=2, max_length=3)
    """Whose public holidays count as Sundays in the forecast (ISO code, ``"DE"``)."""

    @field_validator("profile")
    @classmethod
    def _profile(cls, v: str | None) -> str | None:
        if v is None:
            return v
        name = v.strip().lower()
        if name not in BDEW_PROFILES:
            known = ", ".join(sorted(BDEW_PROFILES))
            raise ValueError(f"profile {v!r} is not a BDEW profile (one of {known})")
        return name

    @field_validator("country")
    @classmethod
    def _country(cls, v: str | None) -> str | None:
        if v is None:
            return v
        try:
            DayTypes(v.upper())
        except ForecastError:
            raise ValueError(f"country {v!r}: no public holidays known for it") from None
        return v.upper()

    @field_validator("max_non_ev_a", mode="before")
    @classmethod
    def _lines(cls, v: object) -> object:
        return _per_line(v)

    @field_validator("max_non_ev_a")
    @classmethod
    def _amperes(cls, v: tuple[float, ...]) -> tuple[float, ...]:
        if len(v) != 3:
            raise ValueError("max_non_ev_a takes one figure for every line, or three (L1, L2, L3)")
        for a in v:
            if not math.isfinite(a) or a < 0:
                raise ValueError("max_non_ev_a is in amperes per line, ≥ 0")
            if a > 20 * MAX_AC_CONNECTOR_A:
                raise ValueError(
                    f"max_non_ev_a = {a:g}: looks like watts; max_non_ev_a is in amperes per line"
                )
        return v

    @model_validator(mode="after")
    def _profile_with_use(self) -> MeterConfig:
        if (self.annual_kwh is None) != (self.profile is None):
            given, missing = (
                ("annual_kwh", "profile") if self.profile is None else ("profile", "annual_kwh")
            )
            raise SiteValueError(
                f"{given} is given without {missing}: the prior needs both", (given,)
            )
        if self.profile is not None and self.measures is Measures.GENERATION:
            raise SiteValueError(
                "a generation meter has no load profile (profile is for a load)", ("profile",)
            )
        return self

    @model_validator(mode="after")
    def _stale_after_interval(self) -> MeterConfig:
        if self.stale_after_s < self.interval_s:
            raise SiteValueError(
                f"stale_after_s = {self.stale_after_s:g} is shorter than interval_s = "
                f"{self.interval_s:g}: every reading would be stale",
                ("stale_after_s",),
            )
        return self

    def worst_a(self) -> dict[Line, float]:
        """The non-EV load per line when nothing is known (0 for a generator)."""
        if self.measures is Measures.GENERATION:
            return dict.fromkeys(LINES, 0.0)
        return dict(zip(LINES, self.max_non_ev_a, strict=True))


class MetersTable(_Strict):
    """The ``[[meters]]`` of a site file, checked against the site."""

    meters: tuple[MeterConfig, ...] = ()


def check_meters(meters: tuple[MeterConfig, ...], site: Site) -> None:
    """Raise `SiteValueError` at the entry that does not fit the site."""
    seen: set[str] = set()
    connection: dict[str, str] = {}
    stations = {c.id for c in site.chargers}
    for i, m in enumerate(meters):
        if m.id in seen:
            raise SiteValueError(f"meter id {m.id!r} repeats", (i, "id"))
        seen.add(m.id)
        group = site.group_by_id.get(m.group)
        if group is None:
            raise SiteValueError(f"group {m.group!r} is not a group of the site", (i, "group"))
        if group.weights is not None:
            raise SiteValueError(f"group {m.group!r} is a weighted group", (i, "group"))
        if m.measures is Measures.CONNECTION:
            if m.group in connection:
                raise SiteValueError(
                    f"group {m.group!r} already has connection meter {connection[m.group]!r}",
                    (i, "group"),
                )
            connection[m.group] = m.id
        limit = group.limit_a
        if limit is not None and any(a > limit for a in m.max_non_ev_a):
            raise SiteValueError(
                f"max_non_ev_a {max(m.max_non_ev_a):g} A is above the group's limit_a "
                f"{limit:g} A: no charger could ever charge",
                (i, "max_non_ev_a"),
            )
        if m.source.type == "ocpp" and m.source.station not in stations:
            raise SiteValueError(
                f"station {m.source.station!r} is not a charger of the site", (i, "source")
            )
