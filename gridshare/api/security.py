"""What every HTTP answer of the service is wrapped in: a Host check and security headers.

Both are plain ASGI middleware around the whole app (operator API, dashboard,
metrics, OSCP endpoints), so they hold for error answers and static files too.

* `HostCheck`: a request whose ``Host`` header is not one of the configured
  names gets 400 ``invalid Host header``. A web page from another origin can
  point its own name at 127.0.0.1 (DNS rebinding) and read the answers as
  same-origin; the Host header still carries its name.
* `SecurityHeaders`: CSP, nosniff, no framing, no referrer on every answer;
  ``Cache-Control: no-store`` on everything but the static files and the page.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Iterable

from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

LOCAL_HOSTS = ("localhost", "127.0.0.1", "::1")
"""The names a loopback client reaches the service by."""

CONTENT_SECURITY_POLICY = (
    "default-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'"
)
"""The dashboard loads only its own script and style files (no inline ones);
``data:`` images for the empty favicon."""

SECURITY_HEADERS = {
    "content-security-policy": CONTENT_SECURITY_POLICY,
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "no-referrer",
}

CACHEABLE_PREFIXES = ("/static/",)
"""Paths whose answers may be cached (the dashboard's files; the page says no-cache)."""


def host_name(header: str) -> str:
    """The name in a Host header: lower case, without port, brackets or final dot."""
    h = header.strip().lower()
    if h.startswith("["):
        end = h.find("]")
        rest = h[end + 1 :] if end > 0 else ""
        if end > 0 and (rest == "" or (rest.startswith(":") and rest[1:].isdigit())):
            return h[1:end]
        return h
    name, sep, port = h.rpartition(":")
    if sep and ":" not in name:
        return name.rstrip(".") if port.isdigit() else h
    return h.rstrip(".")


def normalise_host(name: str) -> str:
    """An allowed name as configured: ``[::1]`` → ``::1``, ``Example.COM.`` → ``example.com``."""
    n = name.strip().lower().rstrip(".")
    if n.startswith("[") and n.endswith("]"):
        n = n[1:-1]
    try:
        return str(ipaddress.ip_address(n))
    except ValueError:
        return n


class HostCheck:
    """Refuse requests for a Host not in ``allowed`` (``*`` allows any, ``*.example.com``
    any name under example.com)."""

    def __init__(self, app: ASGIApp, allowed: Iterable[str]) -> None:
        self.app = app
        names = {normalise_host(a) for a in allowed if a.strip()}
        self.any = "*" in names
        self.suffixes = tuple(n[1:] for n in names if n.startswith("*."))
        self.names = frozenset(n for n in names if not n.startswith("*"))

    def allows(self, header: str | None) -> bool:
        if self.any:
            return True
        if not header:
            return False
        name = host_name(header)
        if name in self.names:
            return True
        try:
            name = str(ipaddress.ip_address(name))  # ::0:1 is ::1
        except ValueError:
            return name.endswith(self.suffixes) if self.suffixes else False
        return name in self.names

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket") or self.allows(
            Headers(scope=scope).get("host")
        ):
            await self.app(scope, receive, send)
            return
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008, "reason": "invalid Host header"})
            return
        body = json.dumps({"detail": "invalid Host header"}).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 400,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


class SecurityHeaders:
    """Add `SECURITY_HEADERS` to every answer (and ``no-store`` where none is said)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        cacheable = scope["path"].startswith(CACHEABLE_PREFIXES) or scope["path"] == "/"

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in SECURITY_HEADERS.items():
                    headers[name] = value
                if not cacheable and "cache-control" not in headers:
                    headers["cache-control"] = "no-store"
            await send(message)

        await self.app(scope, receive, send_with_headers)


__all__ = [
    "CONTENT_SECURITY_POLICY",
    "LOCAL_HOSTS",
    "SECURITY_HEADERS",
    "HostCheck",
    "SecurityHeaders",
    "host_name",
]
