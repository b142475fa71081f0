"""The HTTP port: uvicorn serving the operator API, dashboard, metrics and OSCP.

Which Host names it answers to, its TLS policy (the OCPP port's), which
proxies it believes, what the startup log warns of, and `HttpServer`: a
listening socket and a uvicorn server on it, started and stopped by the
service.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import ssl
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import urlsplit

import uvicorn
from starlette.types import ASGIApp

from gridshare.api.auth import is_loopback
from gridshare.api.security import LOCAL_HOSTS
from gridshare.config import GridshareConfig
from gridshare.errors import GridshareError
from ocpp_adapter.tls import server_tls_context
from oscp.loopback import listen_socket


class HttpServerError(GridshareError):
    """The HTTP server stopped while it started."""


class _Uvicorn(uvicorn.Server):
    """uvicorn without its own signal handling: the service owns SIGINT/SIGTERM."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def _is_wildcard(host: str) -> bool:
    return host in ("", "0.0.0.0", "::")


def http_allowed_hosts(config: GridshareConfig, host: str) -> list[str]:
    """The Host names the HTTP port answers to: ``[server] allowed_hosts``, else the
    loopback names, the bind address and the host of ``[oscp] base_url``."""
    if config.server.allowed_hosts is not None:
        return list(config.server.allowed_hosts)
    names = list(LOCAL_HOSTS)
    if not _is_wildcard(host):
        names.append(host)
    if config.oscp.base_url:
        advertised = urlsplit(config.oscp.base_url).hostname
        if advertised:
            names.append(advertised)
    return names


def _tls_context(config: uvicorn.Config, default: Callable[[], ssl.SSLContext]) -> ssl.SSLContext:
    """The same TLS policy as the OCPP port (TLS 1.2+, AEAD suites only), not uvicorn's."""
    assert config.ssl_certfile is not None and config.ssl_keyfile is not None
    return server_tls_context(config.ssl_certfile, config.ssl_keyfile)


def http_server_config(app: ASGIApp, config: GridshareConfig, **kw: Any) -> uvicorn.Config:
    """uvicorn's settings for the HTTP port: TLS from `ServerConfig.http_tls`, and
    ``X-Forwarded-*`` believed only from ``[server] trusted_proxies``. Its warnings
    and errors are logged; its startup lines and one line per request only at
    DEBUG (``gridshare serve --log-level DEBUG``)."""
    server = config.server
    tls = server.http_tls()
    proxies = list(server.trusted_proxies)
    debug = logging.getLogger("uvicorn").isEnabledFor(logging.DEBUG)
    return uvicorn.Config(
        app,
        log_level="info" if debug else "warning",
        lifespan="off",
        access_log=debug,
        timeout_graceful_shutdown=2,
        log_config=None,  # uvicorn's records go to the app's root handler (gridshare.logs)
        server_header=False,
        proxy_headers=bool(proxies),
        forwarded_allow_ips=proxies or None,
        ssl_certfile=str(tls[0]) if tls else None,
        ssl_keyfile=str(tls[1]) if tls else None,
        ssl_context_factory=_tls_context if tls else None,
        **kw,
    )


def security_warnings(config: GridshareConfig, host: str) -> list[str]:
    """What the startup log warns of: secrets in clear, stations without credentials,
    a public HTTP port answering only loopback names."""
    s = config.server
    out = []
    if s.tls_cert is None:
        out.append("OCPP without TLS (ws://): station passwords and traffic travel in clear")
    if not s.station_passwords and s.tls_client_ca is None:
        out.append(
            "OCPP without station authentication: no [server] station_passwords or tls_client_ca"
        )
    loopback = host == "localhost" or is_loopback(host)
    if s.http_tls() is None and not loopback:
        out.append(
            f"HTTP on {host} without TLS: API and OSCP tokens travel in clear"
            " (set [server] http_tls_cert and http_tls_key)"
        )
    if _is_wildcard(host) and s.allowed_hosts is None:
        out.append(
            f"HTTP bound to {host or 'every address'} answers only the Host names "
            + ", ".join(http_allowed_hosts(config, host))
            + ": list the names clients use in [server] allowed_hosts"
        )
    if _is_wildcard(host) and config.oscp.capacity_providers and not config.oscp.base_url:
        out.append(
            f"OSCP: the base URL sent to the DSO names {host or 'no host'}: set [oscp] base_url"
        )
    return out


class HttpServer:
    """The HTTP port: `bind` first (the port is known before the app is built, so
    OSCP can name our base URL), then `serve` an app, then `stop`."""

    def __init__(self, config: GridshareConfig, host: str, port: int) -> None:
        self.config = config
        self.host = host
        self._port = port
        self._socket: socket.socket | None = None
        self._server: _Uvicorn | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def port(self) -> int:
        """The bound port (the configured one before `bind`)."""
        if self._socket is not None:
            return int(self._socket.getsockname()[1])
        return self._port

    @property
    def url(self) -> str:
        """``http(s)://host:port`` of the HTTP port (IPv6 in brackets)."""
        scheme = "https" if self.config.server.http_tls() is not None else "http"
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{scheme}://{host}:{self.port}"

    def bind(self) -> None:
        sock = listen_socket(self.host, self._port, "HTTP")
        sock.setblocking(False)
        self._socket = sock

    async def serve(self, app: ASGIApp) -> None:
        """Serve ``app`` on the bound socket; returns once uvicorn has started."""
        assert self._socket is not None
        self._server = _Uvicorn(http_server_config(app, self.config))
        self._task = asyncio.get_running_loop().create_task(self._server.serve([self._socket]))
        for _ in range(500):
            if self._server.started or self._task.done():
                break
            await asyncio.sleep(0.01)
        if self._task.done():
            self._task.result()
            raise HttpServerError("the HTTP server stopped at start")

    async def stop(self) -> None:
        if self._server is not None and self._task is not None:
            self._server.should_exit = True
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._task, 5)
            self._server = self._task = None
        if self._socket is not None:
            self._socket.close()
            self._socket = None
