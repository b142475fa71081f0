"""The site TOML file, read once at the edge into a typed `GridshareConfig`.

Tables: ``[site]``, ``[[groups]]``, ``[[chargers]]`` (the `optimizer.Site`),
``[server]`` (ports, TLS, station passwords, database), ``[oscp]`` (the DSO's
capacity providers), ``[[api.tokens]]`` (operator API tokens) and ``[defaults]``
(estimates for sessions that state nothing), ``[controller]`` (re-planning and
rollout).

The environment overrides the file in every table but the site's, read by
pydantic-settings: ``GRIDSHARE_<TABLE>__<KEY>``, e.g.
``GRIDSHARE_SERVER__HTTP_PORT=8081`` or ``GRIDSHARE_CONTROLLER__PIN_S=30``;
lists and tables as JSON (``GRIDSHARE_API__TOKENS='[{"name": ...}]'``), but
``allowed_hosts`` and ``trusted_proxies`` as comma-separated names.

Errors are `ConfigError` with one line naming the file (or the environment
variable) and the field.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

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
from gridshare.errors import UserError
from gridshare.retention import RetentionConfig
from gridshare.site.settings import ControllerSettings
from ocpp_adapter.settings import DEFAULT_HEARTBEAT_INTERVAL_S, DEFAULT_METER_INTERVAL_S
from optimizer.site import Site
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
    """``sqlite:///path.db``; default: a SQLite file next to the config."""
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


class GridshareConfig(_Strict):
    site: Site
    server: ServerConfig = Field(default_factory=ServerConfig)
    controller: ControllerConfig = Field(default_factory=ControllerConfig)
    oscp: OscpConfig = Field(default_factory=OscpConfig)
    api: ApiConfig = Field(default_factory=ApiConfig)
    defaults: SessionDefaults = Field(default_factory=SessionDefaults)
    retention: RetentionConfig = Field(default_factory=RetentionConfig)
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
    retention: RetentionConfig


_OWN_TABLES = tuple(_EnvironmentTables.model_fields)


def _describe(err: ValidationError, name: str) -> str:
    first = err.errors()[0]
    loc = ".".join(str(p) for p in first["loc"] if p not in ("function-after",))
    where = f"{name}: {loc}: " if loc else f"{name}: "
    return where + first["msg"]


def site_from_dict(data: dict[str, Any], name: str = "<site>") -> Site:
    try:
        return Site.model_validate(data)
    except ValidationError as e:
        raise ConfigError(_describe(e, name)) from None


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
) -> GridshareConfig:
    """The configuration of ``data`` (the TOML file's tables) with the
    environment's values over them (``environ``, default the process's)."""
    data = dict(data)
    own = {k: data.pop(k) for k in _OWN_TABLES if k in data}
    site = site_from_dict(data, name)
    env = os.environ if environ is None else environ
    tables = _merged(own, _environment_tables(env))
    try:
        return GridshareConfig(site=site, path=path, **tables)
    except ValidationError as e:
        variable = _source_of(e.errors()[0]["loc"], env)
        raise ConfigError(_describe(e, variable or name)) from None


def load_config(path: str | Path, environ: Mapping[str, str] | None = None) -> GridshareConfig:
    p = Path(path)
    try:
        with p.open("rb") as f:
            data = tomllib.load(f)
    except FileNotFoundError:
        raise ConfigError(f"{p}: no such file") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{p}: {e}") from None
    return parse_config(data, str(p), p, environ)


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
