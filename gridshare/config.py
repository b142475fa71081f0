"""The site TOML file, read once at the edge into a typed `GridshareConfig`.

Tables: ``[site]``, ``[[groups]]``, ``[[chargers]]`` (the `optimizer.Site`),
``[server]`` (ports, TLS, station passwords, database), ``[oscp]`` (the DSO's
capacity providers), ``[[api.tokens]]`` (operator API tokens) and ``[defaults]``
(estimates for sessions that state nothing), ``[controller]`` (re-planning and
rollout), ``[in_force]`` (when a station counts as ignoring its profile).

The environment overrides the file in every table but the site's, read by
pydantic-settings: ``GRIDSHARE_<TABLE>__<KEY>``, e.g.
``GRIDSHARE_SERVER__HTTP_PORT=8081`` or ``GRIDSHARE_CONTROLLER__PIN_S=30``;
lists and tables as JSON (``GRIDSHARE_API__TOKENS='[{"name": ...}]'``), but
``allowed_hosts`` and ``trusted_proxies`` as comma-separated names.

Errors are `ConfigError` with one line naming the file (or the environment
variable) and the field.
"""

from __future__ import annotations

import difflib
import os
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from types import UnionType
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    NoDecode,
    SettingsConfigDict,
    SettingsError,
)

from forecasts.demand import DemandDefaults
from forecasts.errors import ForecastError
from forecasts.pv import PvConfig, PvForecast
from gridshare.errors import UserError
from gridshare.meters.config import MeterConfig, MetersTable, check_meters
from gridshare.meters.pv import pv_forecast
from gridshare.retention import RetentionConfig
from gridshare.site.charge_modes import ChargeModes, check_pv
from gridshare.site.compliance import ComplianceSettings
from gridshare.site.settings import ControllerSettings
from ocpp_adapter.settings import DEFAULT_HEARTBEAT_INTERVAL_S, DEFAULT_METER_INTERVAL_S
from optimizer.site import Site, SiteValueError
from oscp.config import OscpConfig, OscpProviderConfig

__all__ = [
    "ApiConfig",
    "ApiToken",
    "ConfigError",
    "ControllerConfig",
    "GridshareConfig",
    "OscpConfig",
    "OscpProviderConfig",
    "ServerConfig",
    "SessionDefaults",
]


class ConfigError(UserError, ValueError):
    """A configuration or input file is invalid; the message names file and field."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ServerConfig(_Strict):
    host: str = "127.0.0.1"
    ocpp_port: Annotated[int, Field(ge=0, le=65535)] = 9000
    http_port: Annotated[int, Field(ge=0, le=65535)] = 8080
    tls_cert: Path | None = None
    tls_key: Path | None = None
    tls_client_ca: Path | None = None
    """Security profile 3: the CA that signs the stations' certificates. A station
    must then present one, whose subject CN is its id."""
    allow_unknown_stations: bool = False
    station_passwords: dict[str, SecretStr] = Field(default_factory=dict)
    """Station id → HTTP Basic password (security profile 1/2). Empty: no auth."""
    database_url: str | None = None
    """``sqlite:///path.db`` or ``postgresql://user:password@host/db`` (the
    ``postgres`` extra); default: a SQLite file next to the config."""
    authorize_id_tags: list[str] | None = None
    """Allow-list for Authorize; None accepts every idTag."""
    meter_interval_s: Annotated[int, Field(ge=1)] = DEFAULT_METER_INTERVAL_S
    """Meter value sampling the stations are configured for (re-planning reacts to it)."""
    heartbeat_interval_s: Annotated[int, Field(ge=10)] = DEFAULT_HEARTBEAT_INTERVAL_S
    http_tls_cert: Path | None = None
    http_tls_key: Path | None = None
    """HTTPS on the HTTP port (API, dashboard, OSCP). Without them the OCPP
    certificate (``tls_cert``/``tls_key``) serves the HTTP port too, when set."""
    allowed_hosts: Annotated[list[str] | None, NoDecode] = None
    """Names the HTTP port answers to (its Host header; others get 400). ``"*"``
    any, ``"*.example.com"`` any below. None: localhost, 127.0.0.1, ::1, the
    bind address and the host of ``[oscp] base_url``."""
    trusted_proxies: Annotated[list[str], NoDecode] = Field(default_factory=list)
    """Addresses (or CIDR blocks) of reverse proxies whose ``X-Forwarded-For`` and
    ``X-Forwarded-Proto`` are believed. Empty: those headers are ignored."""

    @field_validator("allowed_hosts", "trusted_proxies", mode="before")
    @classmethod
    def _comma_list(cls, v: object) -> object:
        # GRIDSHARE_SERVER__ALLOWED_HOSTS="a.example,b.example"
        return [p.strip() for p in v.split(",") if p.strip()] if isinstance(v, str) else v

    @model_validator(mode="after")
    def _tls_complete(self) -> ServerConfig:
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ValueError("tls_cert and tls_key go together")
        if (self.http_tls_cert is None) != (self.http_tls_key is None):
            raise ValueError("http_tls_cert and http_tls_key go together")
        if self.tls_client_ca is not None and self.tls_cert is None:
            raise ValueError("tls_client_ca (security profile 3) needs tls_cert and tls_key")
        return self

    def http_tls(self) -> tuple[Path, Path] | None:
        """Certificate and key of the HTTP port: its own, else the OCPP port's, else none."""
        if self.http_tls_cert is not None and self.http_tls_key is not None:
            return self.http_tls_cert, self.http_tls_key
        if self.tls_cert is not None and self.tls_key is not None:
            return self.tls_cert, self.tls_key
        return None


class ApiToken(_Strict):
    name: str
    token: SecretStr
    role: Literal["read", "write"] = "read"


class ApiConfig(_Strict):
    tokens: list[ApiToken] = Field(default_factory=list)
    open_reads_on_loopback: bool = False
    """Let loopback clients read without a token (a demo on one machine). Off:
    every read needs a token."""


class SessionDefaults(_Strict):
    """What to assume where a session does not say: departure, energy, battery tail."""

    dwell_hours: Annotated[float, Field(gt=0)] = DemandDefaults.dwell_hours
    energy_kwh: Annotated[float, Field(ge=0)] = DemandDefaults.energy_kwh
    overstay_hours: Annotated[float, Field(gt=0)] = DemandDefaults.overstay_hours
    """A car still plugged in past its expected departure is planned to stay this much longer."""
    topup_kwh: Annotated[float, Field(ge=0)] = DemandDefaults.topup_kwh
    """A car whose estimated energy is delivered still gets this much (it may want more)."""
    taper_kwh: Annotated[float, Field(ge=0, le=100)] = DemandDefaults.taper_kwh
    """Battery tail the planner assumes (kWh before full over which a car's
    current falls to 0) for sessions whose energy is stated; 0 turns it off."""

    def demand_defaults(self) -> DemandDefaults:
        return DemandDefaults(**self.model_dump())


class ControllerConfig(_Strict):
    """``[controller]``: how the service re-plans and rolls plans out (the
    defaults are the controller's own)."""

    coalesce_s: Annotated[float, Field(ge=0, le=10)] = ControllerSettings.coalesce_s
    replan_interval_s: Annotated[float, Field(gt=0)] = ControllerSettings.replan_interval_s
    pin_s: Annotated[float, Field(gt=0)] = ControllerSettings.pin_s
    """How long a station that refused a profile or did not answer is left alone."""
    min_change_a: Annotated[float, Field(ge=0)] = ControllerSettings.min_change_a
    reserve_for_arrivals: bool = ControllerSettings.reserve_for_arrivals
    """Keep each idle connector's fallback limit free for a car that plugs in."""
    solve_time_limit_s: Annotated[float, Field(gt=0)] = ControllerSettings.solve_time_limit_s


class InForceConfig(_Strict):
    """``[in_force]``: when a station is flagged as ignoring its profile."""

    ev_response_s: Annotated[float, Field(gt=0, le=600)] = ComplianceSettings.response_s
    """How long a car may take to follow a lowered limit (plus one meter interval)."""
    tolerance_a: Annotated[float, Field(ge=0)] = ComplianceSettings.tolerance_a
    """Draw over a connector's limit (or composite schedule over it) that is no excess."""


class GridshareConfig(_Strict):
    site: Site
    server: ServerConfig = Field(default_factory=ServerConfig)
    controller: ControllerConfig = Field(default_factory=ControllerConfig)
    in_force: InForceConfig = Field(default_factory=InForceConfig)
    oscp: OscpConfig = Field(default_factory=OscpConfig)
    api: ApiConfig = Field(default_factory=ApiConfig)
    defaults: SessionDefaults = Field(default_factory=SessionDefaults)
    retention: RetentionConfig = Field(default_factory=RetentionConfig)
    meters: tuple[MeterConfig, ...] = ()
    pv: PvConfig | None = None
    charge_modes: ChargeModes = Field(default_factory=ChargeModes)
    path: Path | None = None


ENV_PREFIX = "GRIDSHARE_"


class _EnvironmentTables(BaseSettings):
    """The tables the environment may override, as pydantic-settings reads them:
    ``GRIDSHARE_<TABLE>__<KEY>``, one ``__`` more per table within. A schema for
    the environment source only: the values are validated by `GridshareConfig`."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, env_nested_delimiter="__")

    server: ServerConfig
    oscp: OscpConfig
    api: ApiConfig
    defaults: SessionDefaults
    controller: ControllerConfig
    in_force: InForceConfig
    retention: RetentionConfig


_OWN_TABLES = tuple(_EnvironmentTables.model_fields)


Loc = tuple[int | str, ...]


def _key_lines(text: str) -> dict[Loc, int]:
    """The line of every table header and key of a TOML text, by its path
    (``("groups", 2, "limit_a")``, indexes 0-based as pydantic gives them).

    tomllib gives values only, no positions, so the lines are found by scanning
    the text: ``[a.b]`` and ``[[a.b]]`` headers (the n-th ``[[a.b]]`` under one
    parent is index n-1) and ``key =`` lines. A key inside an inline table or a
    multi-line value is cited by the line of its table.
    """
    lines: dict[Loc, int] = {}
    arrays: dict[Loc, int] = {}  # path of an array of tables → index of its last table
    current: Loc = ()

    def resolve(parts: list[str]) -> Loc:
        path: Loc = ()
        for part in parts:
            path = (*path, part)
            if path in arrays:
                path = (*path, arrays[path])
        return path

    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        header = _ARRAY_HEADER.match(line) or _TABLE_HEADER.match(line)
        if header:
            parts = _key_parts(header.group(1))
            if line.startswith("[["):
                parent = resolve(parts[:-1])
                table = (*parent, parts[-1])
                arrays[table] = arrays.get(table, -1) + 1
                current = (*table, arrays[table])
            else:
                current = resolve(parts)
            lines.setdefault(current, number)
            continue
        key = _KEY_LINE.match(line)
        if key:
            lines.setdefault((*current, *_key_parts(key.group(1))), number)
    return lines


_ARRAY_HEADER = re.compile(r"^\[\[\s*([^\]]+?)\s*\]\]")
_TABLE_HEADER = re.compile(r"^\[\s*([^\]\[]+?)\s*\]")
_KEY_LINE = re.compile(
    r"^((?:[A-Za-z0-9_-]+|\"[^\"]*\")(?:\s*\.\s*(?:[A-Za-z0-9_-]+|\"[^\"]*\"))*)\s*="
)


def _key_parts(dotted: str) -> list[str]:
    return [p.strip().strip('"') for p in dotted.split(".")]


def _line_of(loc: Loc, lines: Mapping[Loc, int]) -> int | None:
    """The line of ``loc``'s key, else of the nearest table above it."""
    for n in range(len(loc), -1, -1):
        if loc[:n] in lines:
            return lines[loc[:n]]
    return None


def _named(loc: Loc, data: Any) -> str:
    """``("groups", 2, "limit_a")`` → ``groups[panel-b].limit_a``: a table of a
    list by its id (else its 1-based position), as the file's reader sees it."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            item = data[part] if isinstance(data, list | tuple) and part < len(data) else None
            ident = item.get("id") if isinstance(item, dict) else None
            out += f"[{ident}]" if ident is not None else f"[#{part + 1}]"
            data = item
        else:
            out += f".{part}" if out else str(part)
            data = data.get(part) if isinstance(data, dict) else None
    return out


def _fields_at(model: type[BaseModel], loc: Loc) -> tuple[str, ...]:
    """The keys the table at ``loc`` may have (empty if it is no model)."""
    tp: Any = model
    for part in loc:
        if isinstance(tp, type) and issubclass(tp, BaseModel):
            field = tp.model_fields.get(str(part))
            tp = field.annotation if field is not None else None
        else:
            args = [a for a in get_args(tp) if a is not type(None) and a is not Ellipsis]
            tp = args[-1] if args else None
        while get_origin(tp) in (Union, UnionType):
            tp = next(a for a in get_args(tp) if a is not type(None))
    return tuple(tp.model_fields) if isinstance(tp, type) and issubclass(tp, BaseModel) else ()


def _describe(
    err: ValidationError,
    name: str,
    model: type[BaseModel],
    data: Any = None,
    lines: Mapping[Loc, int] | None = None,
) -> str:
    """One line for the first mistake: file (and line), the table, what is wrong.

    An unknown key comes first: a misspelt key also makes its right spelling
    "missing", and the misspelling is the mistake to show.
    """
    errors = err.errors()
    unknown = [e for e in errors if e["type"] == "extra_forbidden"]
    first = unknown[0] if unknown else errors[0]
    loc: Loc = tuple(p for p in first["loc"] if p != "function-after")
    message = first["msg"]
    cause = (first.get("ctx") or {}).get("error")
    if isinstance(cause, ValueError):
        message = str(cause)  # without pydantic's "Value error, "
        if isinstance(cause, SiteValueError):
            loc = (*loc, *cause.where)
    if first["type"] == "extra_forbidden":
        key = str(loc[-1])
        missing = [str(e["loc"][-1]) for e in errors if e["type"] == "missing"]
        known = missing + [k for k in _fields_at(model, loc[:-1]) if k not in missing]
        near = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
        message = f"unknown key {key!r}" + (f" — did you mean {near[0]!r}?" if near else "")
    elif first["type"] == "missing":
        message = f"required key {str(loc[-1])!r} is missing"
    line = _line_of(loc, lines) if lines is not None else None
    if (
        data is not None
        and loc
        and (message.startswith(f"{loc[-1]} ") or f"key {str(loc[-1])!r}" in message)
    ):
        loc = loc[:-1]  # the message names the key itself
    where = _named(loc, data) if data is not None else ".".join(str(p) for p in loc)
    file = f"{name}:{line}" if line is not None else name
    return f"{file}: {where}: {message}" if where else f"{file}: {message}"


def site_from_dict(
    data: dict[str, Any], name: str = "<site>", lines: Mapping[Loc, int] | None = None
) -> Site:
    try:
        return Site.model_validate(data)
    except ValidationError as e:
        raise ConfigError(_describe(e, name, Site, data, lines)) from None


def meters_from_dict(
    data: dict[str, Any], site: Site, name: str, lines: Mapping[Loc, int] | None = None
) -> tuple[MeterConfig, ...]:
    """The ``[[meters]]`` tables, checked against the site; errors like the site's."""
    try:
        meters = MetersTable.model_validate(data).meters
        check_meters(meters, site)
    except ValidationError as e:
        raise ConfigError(_describe(e, name, MetersTable, data, lines)) from None
    except SiteValueError as e:
        loc: Loc = ("meters", *e.where)
        line = _line_of(loc, lines) if lines is not None else None
        file = f"{name}:{line}" if line is not None else name
        raise ConfigError(f"{file}: {_named(loc[:-1], data)}: {e}") from None
    return meters


def _variable_path(variable: str) -> list[str] | None:
    """``GRIDSHARE_SERVER__HTTP_PORT`` → ``["server", "http_port"]`` (None: not ours)."""
    if not variable.upper().startswith(ENV_PREFIX):
        return None
    return variable[len(ENV_PREFIX) :].lower().split("__")


def _read_environment(environ: Mapping[str, str]) -> dict[str, Any]:
    """The tables' values set in ``environ``, as nested dicts (JSON decoded)."""
    source = EnvSettingsSource(_EnvironmentTables)
    # this mapping, not the process's (tests and `load_site` pass their own)
    source.env_vars = {k.lower(): v for k, v in environ.items()}
    return source()


def _environment_tables(environ: Mapping[str, str]) -> dict[str, Any]:
    try:
        return _read_environment(environ)
    except SettingsError as e:
        for variable, value in environ.items():
            path = _variable_path(variable)
            if path is None:
                continue
            try:
                _read_environment({variable: value})
            except SettingsError as alone:
                raise ConfigError(
                    f"{variable}: {'.'.join(path)}: not valid JSON ({alone.__cause__})"
                ) from None
        raise ConfigError(f"environment: {e}") from None


def _merged(base: dict[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    """``base`` with ``over``'s values in its place, table by table."""
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = _merged(dict(out[key]), value)
        else:
            out[key] = value
    return out


def _source_of(loc: tuple[int | str, ...], environ: Mapping[str, str]) -> str | None:
    """The environment variable that set the value at ``loc``, if one did."""
    parts = [str(p).lower() for p in loc]
    setting = [
        (len(path), variable)
        for variable in environ
        if (path := _variable_path(variable)) is not None and parts[: len(path)] == path
    ]
    return max(setting)[1] if setting else None


def parse_config(
    data: dict[str, Any],
    name: str = "<config>",
    path: Path | None = None,
    environ: Mapping[str, str] | None = None,
    text: str | None = None,
) -> GridshareConfig:
    """The configuration of ``data`` (the TOML file's tables) with the
    environment's values over them (``environ``, default the process's).
    ``text``, the file's own text, lets errors cite its lines."""
    lines = _key_lines(text) if text is not None else None
    data = dict(data)
    own = {k: data.pop(k) for k in _OWN_TABLES if k in data}
    meters_data = {"meters": data.pop("meters")} if "meters" in data else {}
    solar = {k: data.pop(k) for k in ("pv", "charge_modes") if k in data}  # file only
    site = site_from_dict(data, name, lines)
    meters = meters_from_dict(meters_data, site, name, lines)
    env = os.environ if environ is None else environ
    tables = _merged(own, _environment_tables(env))
    try:
        config = GridshareConfig(site=site, meters=meters, path=path, **tables, **solar)
    except ValidationError as e:
        variable = _source_of(e.errors()[0]["loc"], env)
        if variable is not None:
            raise ConfigError(_describe(e, variable, GridshareConfig)) from None
        raise ConfigError(_describe(e, name, GridshareConfig, {**own, **solar}, lines)) from None
    if config.pv is not None:
        try:
            check_pv(config.pv, site, meters)
        except SiteValueError as e:
            line = _line_of(("pv", *e.where), lines) if lines is not None else None
            raise ConfigError(f"{name}:{line or ''}: pv: {e}".replace(":: ", ": ")) from None
        try:
            pv_source(config)
        except ForecastError as e:
            raise ConfigError(f"{name}: pv: {e}") from None
    return config


def pv_source(config: GridshareConfig) -> PvForecast | None:
    """The site's PV forecaster (its ``forecast_csv`` read, relative to the file)."""
    if config.pv is None:
        return None
    base = config.path.parent if config.path is not None else None
    return pv_forecast(config.pv, config.site.site.voltage_v, config.site.site.timezone, base)


def load_config(path: str | Path, environ: Mapping[str, str] | None = None) -> GridshareConfig:
    p = Path(path)
    try:
        text = p.read_bytes().decode("utf-8")
        data = tomllib.loads(text)
    except FileNotFoundError:
        raise ConfigError(f"{p}: no such file") from None
    except UnicodeDecodeError as e:
        raise ConfigError(f"{p}: not UTF-8 text ({e.reason} at byte {e.start})") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{p}: {e}") from None
    return parse_config(data, str(p), p, environ, text)


def database_url(config: GridshareConfig, override: str | None = None) -> str:
    """The store's URL: the command line, else ``[server] database_url``, else a
    SQLite file next to the config (``depot.toml`` → ``depot.db``)."""
    if override:
        return override if "://" in override else f"sqlite:///{override}"
    if config.server.database_url:
        return config.server.database_url
    if config.path is not None:
        return f"sqlite:///{config.path.with_suffix('.db')}"
    return "sqlite:///gridshare.db"


def load_site(path: str | Path) -> Site:
    return load_config(path, environ={}).site
