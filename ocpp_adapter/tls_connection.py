"""TLS handshakes made per WebSocket connection (``loop.start_tls``) rather than by
asyncio's server, which drops a failed one silently: here a failed handshake (no,
expired or untrusted client certificate, no common cipher, plain HTTP) is logged
at WARNING with the peer's address."""

from __future__ import annotations

import asyncio
import logging
import ssl
from typing import Any

from websockets.asyncio.server import ServerConnection

# The central system's log: a failed handshake is one of its lines.
log = logging.getLogger("ocpp_adapter.central_system")


class TlsConnection(ServerConnection):
    """A WebSocket connection that makes its own TLS handshake (``loop.start_tls``).

    asyncio's TLS server drops a failed handshake without telling anyone, and
    only here is the peer's address known. Subclassed per central system
    (`tls_connection_class`) to carry its context; given to ``serve`` as
    ``create_connection``.
    """

    tls_context: ssl.SSLContext
    handshake_timeout_s: float
    pending: set[asyncio.Task[None]]
    """Handshakes in progress (cancelled when the server stops)."""
    secured = False
    """The TLS layer is in place and websockets has the connection."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        transport.pause_reading()  # start_tls reads; nothing must reach us before it
        task = self.loop.create_task(self._secure(transport))
        self.pending.add(task)
        task.add_done_callback(self.pending.discard)

    async def _secure(self, raw: asyncio.Transport) -> None:
        peer = peer_address(raw.get_extra_info("peername"))
        try:
            secure = await self.loop.start_tls(
                raw,
                self,
                self.tls_context,
                server_side=True,
                ssl_handshake_timeout=self.handshake_timeout_s,
                ssl_shutdown_timeout=self.close_timeout,
            )
        except ssl.SSLError as e:
            # "certificate has expired", or OpenSSL's code as words ("no shared cipher")
            reason = getattr(e, "verify_message", None) or (e.reason or str(e))
            reason = reason.replace("_", " ").lower() if reason.isupper() else reason
            log.warning("TLS handshake with %s failed: %s", peer, reason)
            return
        except OSError as e:  # reset, closed or timed out before the handshake ended
            log.info("TLS handshake with %s did not finish: %s", peer, str(e) or type(e).__name__)
            return
        if secure is None:  # the peer went away as it finished
            raw.close()
            return
        self.secured = True
        super().connection_made(secure)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.secured:  # else websockets never saw this connection
            super().connection_lost(exc)


def tls_connection_class(
    context: ssl.SSLContext, timeout_s: float, handshakes: set[asyncio.Task[None]]
) -> type[ServerConnection]:
    class Connection(TlsConnection):
        tls_context = context
        handshake_timeout_s = timeout_s
        pending = handshakes

    return Connection


def peer_address(peer: Any) -> str:
    if isinstance(peer, tuple) and len(peer) >= 2:
        host, port = peer[0], peer[1]
        return f"[{host}]:{port}" if ":" in str(host) else f"{host}:{port}"
    return repr(peer)


def certificate_name(cert: dict[str, Any] | None) -> str | None:
    """The subject CN of a verified peer certificate (``ssl`` form), if any."""
    for rdn in (cert or {}).get("subject", ()):
        for key, value in rdn:
            if key == "commonName":
                return str(value)
    return None
