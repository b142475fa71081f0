"""Who may open an OCPP connection: the WebSocket handshake's checks.

``ws[s]://HOST:PORT/ocpp/{station_id}``. The station authenticates first, then
its id is looked up, so an unauthenticated client learns nothing about which
ids exist (the rules are drawn in `ocpp_adapter.central_system`'s docstring).
"""

from __future__ import annotations

import base64
import binascii
import hmac
import logging
import secrets
from collections.abc import Sequence
from http import HTTPStatus
from urllib.parse import unquote, urlsplit

from websockets.asyncio.server import ServerConnection
from websockets.datastructures import Headers
from websockets.http11 import Request, Response
from websockets.typing import Subprotocol

from ocpp_adapter.connection import log_fields
from ocpp_adapter.settings import ServerSettings
from ocpp_adapter.tls_connection import certificate_name
from ocpp_adapter.versions import NEWEST_FIRST

# The central system's log: a refused connection is one of its lines.
log = logging.getLogger("ocpp_adapter.central_system")

PATH_PREFIX = "/ocpp/"
SUBPROTOCOLS = tuple(v.value for v in NEWEST_FIRST)
"""Ours, newest first: the newest both sides offer is chosen."""
_MAX_ID_LEN = 48
_NO_PASSWORD = secrets.token_bytes(24)


def station_id_of(path: str) -> str | None:
    """The station id a request path names, None if it is not a station's path."""
    raw = urlsplit(path).path
    if not raw.startswith(PATH_PREFIX):
        return None
    sid = unquote(raw[len(PATH_PREFIX) :])
    # OCPP's identity is a CiString: printable ASCII. A newline or an escape
    # would reach every log line and file name that carries the id.
    if not sid or len(sid) > _MAX_ID_LEN or "/" in sid or ":" in sid:
        return None
    if not (sid.isascii() and sid.isprintable()):
        return None
    return sid


def select_subprotocol(
    connection: ServerConnection, offered: Sequence[Subprotocol]
) -> Subprotocol | None:
    for ours in SUBPROTOCOLS:
        if ours in offered:
            return Subprotocol(ours)
    return None  # handshake without the header; the connection is closed at once


class Admission:
    """The handshake's answer to a station: None lets it in, a response refuses it."""

    def __init__(self, server: ServerSettings) -> None:
        self.server = server
        self.passwords = {k: v.encode() for k, v in server.station_passwords.items()}

    def process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        sid = station_id_of(request.path)
        if sid is None:
            log.info(
                "connection refused %s",
                log_fields(path=request.path, reason="not a station's path"),
            )
            return connection.respond(HTTPStatus.NOT_FOUND, "Unknown charging station\n")
        server = self.server
        known = sid in server.known_stations
        # Who it is before whether the id exists: a refusal must not tell which ids do.
        if server.tls_client_ca is not None:  # profile 3: the certificate is the credential
            name = certificate_name(connection.transport.get_extra_info("peercert"))
            if name != sid:
                reason = "client certificate is another's"
                log.warning("station refused %s", log_fields(id=sid, reason=reason, cn=name))
                return connection.respond(
                    HTTPStatus.FORBIDDEN, "Client certificate is not this station's\n"
                )
        elif self.passwords and not self._authorized(sid, request.headers):
            reason = "wrong or missing credentials"
            log.warning("station refused %s", log_fields(id=sid, reason=reason, known=known))
            response = connection.respond(HTTPStatus.UNAUTHORIZED, "Unauthorized\n")
            response.headers["WWW-Authenticate"] = 'Basic realm="ocpp", charset="UTF-8"'
            return response
        if not known and not server.allow_unknown_stations:
            log.info("station refused %s", log_fields(id=sid, reason="unknown station"))
            return connection.respond(HTTPStatus.NOT_FOUND, "Unknown charging station\n")
        return None

    def _authorized(self, sid: str, headers: Headers) -> bool:
        expected = self.passwords.get(sid)
        header = headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            user, sep, password = base64.b64decode(token, validate=True).partition(b":")
        except (binascii.Error, ValueError):
            return False
        # Both compared in constant time, the station's input second (the time
        # follows its length, not ours), and an id without a password against a
        # stand-in, so timing tells neither the password nor which ids exist.
        user_ok = hmac.compare_digest(sid.encode(), user)
        password_ok = hmac.compare_digest(
            expected if expected is not None else _NO_PASSWORD, password
        )
        return bool(sep) and user_ok and password_ok and expected is not None
