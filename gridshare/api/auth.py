"""Bearer tokens from ``[[api.tokens]]``: who is asking, and may they.

* Writes need ``Authorization: Bearer <token>`` of a token with role ``write``:
  none or an unknown token → 401, a ``read`` token → 403.
* Reads need a token of either role, except from a loopback address when
  ``open_reads_on_loopback`` is set (then a request without a token reads as
  ``anonymous``; a token that is sent must still be valid). Behind a reverse
  proxy on the same host every request comes from loopback: turn the option
  off there.

Tokens are compared in constant time and never logged.
"""

from __future__ import annotations

import hmac
import ipaddress
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


def is_loopback(host: str | None) -> bool:
    if not host:
        return False
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class TokenAuth:
    def __init__(self, config: ApiConfig) -> None:
        self._tokens = [
            (t.token.get_secret_value().encode(), Principal(t.name, t.role)) for t in config.tokens
        ]
        self.open_reads_on_loopback = config.open_reads_on_loopback

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
        client = conn.client.host if conn.client else None
        if self.open_reads_on_loopback and is_loopback(client):
            return ANONYMOUS
        raise AuthError("a bearer token is required")

    def writer(self, conn: HTTPConnection) -> Principal:
        principal = self.identify(conn)
        if principal is None:
            raise AuthError("a bearer token with role 'write' is required")
        if principal.role != "write":
            raise Forbidden(f"token {principal.name!r} may only read")
        return principal
