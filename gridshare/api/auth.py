"""Bearer tokens from ``[[api.tokens]]``: who is asking, and may they.

* Writes need ``Authorization: Bearer <token>`` of a token with role ``write``:
  none or an unknown token → 401, a ``read`` token → 403.
* Reads need a token of either role, except from a loopback address when
  ``[api] open_reads_on_loopback`` is set (off by default; then a request
  without a token reads as ``anonymous``; a token that is sent must still be
  valid). The address is the TCP peer's, or the one a trusted proxy
  (``[server] trusted_proxies``) names in ``X-Forwarded-For``; a request whose
  address is still a trusted proxy's (the proxy said nothing of its client) is
  never anonymous.

Tokens are compared in constant time and never logged.
"""

from __future__ import annotations

import hmac
import ipaddress
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

from starlette.requests import HTTPConnection

from gridshare.api.errors import AuthError, Forbidden
from gridshare.config import ApiConfig

Role = Literal["read", "write"]


@dataclass(frozen=True)
class Principal:
    name: str
    role: Role | None
    """None: an anonymous reader on loopback."""


ANONYMOUS = Principal("anonymous", None)


def in_networks(host: str | None, networks: Iterable[str]) -> bool:
    """Whether ``host`` is one of ``networks`` (addresses, CIDR blocks or ``*``)."""
    if not host:
        return False
    try:
        addr = ipaddress.ip_address(host)
    except ValueError:
        return False
    for n in networks:
        if n.strip() == "*":
            return True
        try:
            if addr in ipaddress.ip_network(n.strip(), strict=False):
                return True
        except ValueError:
            continue
    return False


def is_loopback(host: str | None) -> bool:
    if not host:
        return False
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class TokenAuth:
    def __init__(self, config: ApiConfig, trusted_proxies: Sequence[str] = ()) -> None:
        self._tokens = [
            (t.token.get_secret_value().encode(), Principal(t.name, t.role)) for t in config.tokens
        ]
        self.open_reads_on_loopback = config.open_reads_on_loopback
        self.trusted_proxies = tuple(trusted_proxies)

    def is_local(self, conn: HTTPConnection) -> bool:
        """A loopback client that is not a proxy speaking for someone else."""
        client = conn.client.host if conn.client else None
        return is_loopback(client) and not in_networks(client, self.trusted_proxies)

    def identify(self, conn: HTTPConnection) -> Principal | None:
        """The token's principal; None without a token; `AuthError` for a bad one."""
        header = conn.headers.get("authorization")
        if header is None:
            return None
        scheme, _, value = header.partition(" ")
        value = value.strip()
        if scheme.lower() != "bearer" or not value:
            raise AuthError("expected 'Authorization: Bearer <token>'")
        given = value.encode()
        found: Principal | None = None
        for secret, principal in self._tokens:
            # compare against every token so the time taken does not tell which matched
            if hmac.compare_digest(secret, given) and found is None:
                found = principal
        if found is None:
            raise AuthError("unknown token")
        return found

    def reader(self, conn: HTTPConnection) -> Principal:
        principal = self.identify(conn)
        if principal is not None:
            return principal
        if self.open_reads_on_loopback and self.is_local(conn):
            return ANONYMOUS
        raise AuthError("a bearer token is required")

    def writer(self, conn: HTTPConnection) -> Principal:
        principal = self.identify(conn)
        if principal is None:
            raise AuthError("a bearer token with role 'write' is required")
        if principal.role != "write":
            raise Forbidden(f"token {principal.name!r} may only read")
        return principal
