"""Server-side TLS: one context for every listener of the service.

TLS 1.2 and 1.3 only. On TLS 1.2 only AEAD suites are offered, ECDHE first
(AES-GCM, ChaCha20-Poly1305); static-RSA AES-GCM last, because OCPP's
compliance tests require a central system to support
``TLS_RSA_WITH_AES_128/256_GCM_SHA256/384`` next to
``TLS_ECDHE_ECDSA_WITH_AES_128/256_GCM_*``, and a station may have only the
RSA pair (those need an RSA server certificate; with an EC one they are never
chosen). CBC suites and SHA-1 MACs are refused. The server's order wins, so a
client that offers ECDHE gets it. TLS 1.3's suites are all AEAD and not
affected by the cipher string.
"""

from __future__ import annotations

import ssl
from os import PathLike

TLS12_CIPHERS = "ECDHE+AESGCM:ECDHE+CHACHA20:RSA+AESGCM"

StrPath = str | PathLike[str]


def server_tls_context(
    cert: StrPath,
    key: StrPath,
    ca: StrPath | None = None,
    require_client_cert: bool = False,
) -> ssl.SSLContext:
    """A server context with ``cert``/``key`` (PEM).

    With ``ca``, client certificates are verified against it: required with
    ``require_client_cert`` (OCPP security profile 3), else checked only when a
    client presents one.
    """
    if require_client_cert and ca is None:
        raise ValueError("require_client_cert needs the CA that signs the client certificates")
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.set_ciphers(TLS12_CIPHERS)
    ctx.options |= ssl.OP_NO_RENEGOTIATION | ssl.OP_CIPHER_SERVER_PREFERENCE
    ctx.load_cert_chain(cert, key)
    if ca is not None:
        ctx.load_verify_locations(cafile=ca)
        ctx.verify_mode = ssl.CERT_REQUIRED if require_client_cert else ssl.CERT_OPTIONAL
    return ctx
