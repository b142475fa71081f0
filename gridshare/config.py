"""The site TOML file, read once at the edge into a typed `GridshareConfig`.

Tables: ``[site]``, ``[[groups]]``, ``[[chargers]]`` (the `optimizer.Site`),
``[server]`` (ports, TLS, station passwords, database), ``[oscp]`` (the DSO's
capacity providers), ``[[api.tokens]]`` (operator API tokens) and ``[defaults]``
(estimates for sessions that state nothing), ``[controller]`` (re-planning and
rollout). Environment variables
``GRIDSHARE_SERVER__HTTP_PORT=8081`` style override ``[server]`` values.

Errors are `ConfigError` with one line naming the file and the field.
"""

from __future__ import annotations

import os
import tomllib
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

from forecasts.demand import DemandDefaults
from ocpp_adapter.settings import DEFAULT_HEARTBEAT_INTERVAL_S
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


class ConfigError(ValueError):
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
    meter_interval_s: Annotated[int, Field(ge=1)] = 10
    """Meter value sampling the stations are configured for (re-planning reacts to it)."""
    heartbeat_interval_s: Annotated[int, Field(ge=10)] = DEFAULT_HEARTBEAT_INTERVAL_S
    http_tls_cert: Path | None = None
    http_tls_key: Path | None = None
    """HTTPS on the HTTP port (API, dashboard, OSCP). Without them the OCPP
    certificate (``tls_cert``/``tls_key``) serves the HTTP port too, when set."""
    allowed_hosts: list[str] | None = None
    """Names the HTTP port answers to (its Host header; others get 400). ``"*"``
    any, ``"*.example.com"`` any below. None: localhost, 127.0.0.1, ::1, the
    bind address and the host of ``[oscp] base_url``."""
    trusted_proxies: list[str] = Field(default_factory=list)
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

    dwell_hours: Annotated[float, Field(gt=0)] = 8.0
    energy_kwh: Annotated[float, Field(ge=0)] = 20.0
    overstay_hours: Annotated[float, Field(gt=0)] = 1.0
    """A car still plugged in past its expected departure is planned to stay this much longer."""
    topup_kwh: Annotated[float, Field(ge=0)] = 1.0
    """A car whose estimated energy is delivered still gets this much (it may want more)."""
    taper_kwh: Annotated[float, Field(ge=0, le=100)] = 3.0
    """Battery tail the planner assumes (kWh before full over which a car's
    current falls to 0) for sessions whose energy is stated; 0 turns it off."""

    def demand_defaults(self) -> DemandDefaults:
        return DemandDefaults(**self.model_dump())


class ControllerConfig(_Strict):
    """``[controller]``: how the service re-plans and rolls plans out."""

    coalesce_s: Annotated[float, Field(ge=0, le=10)] = 0.02
    replan_interval_s: Annotated[float, Field(gt=0)] = 60.0
    pin_s: Annotated[float, Field(gt=0)] = 60.0
    """How long a station that refused a profile or did not answer is left alone."""
    min_change_a: Annotated[float, Field(ge=0)] = 1.0
    reserve_for_arrivals: bool = True
    """Keep each idle connector's fallback limit free for a car that plugs in."""
    solve_time_limit_s: Annotated[float, Field(gt=0)] = 5.0


class GridshareConfig(_Strict):
    site: Site
    server: ServerConfig = Field(default_factory=ServerConfig)
    controller: ControllerConfig = Field(default_factory=ControllerConfig)
    oscp: OscpConfig = Field(default_factory=OscpConfig)
    api: ApiConfig = Field(default_factory=ApiConfig)
    defaults: SessionDefaults = Field(default_factory=SessionDefaults)
    path: Path | None = None


_OWN_TABLES = ("server", "oscp", "api", "defaults", "controller")


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


def parse_config(
    data: dict[str, Any],
    name: str = "<config>",
    path: Path | None = None,
    environ: dict[str, str] | None = None,
) -> GridshareConfig:
    data = dict(data)
    own = {k: data.pop(k) for k in _OWN_TABLES if k in data}
    site = site_from_dict(data, name)
    server = dict(own.get("server", {}))
    env = os.environ if environ is None else environ
    for key, value in env.items():
        if key.startswith("GRIDSHARE_SERVER__"):
            server[key.removeprefix("GRIDSHARE_SERVER__").lower()] = value
    own["server"] = server
    try:
        return GridshareConfig(site=site, path=path, **own)
    except ValidationError as e:
        raise ConfigError(_describe(e, name)) from None


def load_config(path: str | Path, environ: dict[str, str] | None = None) -> GridshareConfig:
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
