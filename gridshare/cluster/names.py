"""Names on the bus: ids made safe as one subject token or KV key, and the subjects.

A NATS subject token may not hold `.`, `*`, `>` or white space, and a KV key
only `[-/_=.a-zA-Z0-9]`; station ids in OCPP are free text. Every byte of an
id outside `[A-Za-z0-9_-]` is written `=XX` (its UTF-8 byte in hex), so the
mapping is one-to-one and reversible: `CP.01` → `CP=2E01`.
"""

from __future__ import annotations

import string

from gridshare.cluster.errors import BadBusMessage

_SAFE = frozenset((string.ascii_letters + string.digits + "_-").encode())
_HEX = frozenset(b"0123456789ABCDEF")


def encode_id(value: str) -> str:
    """One subject token (and KV key) for a site or station id."""
    if not value:
        raise BadBusMessage("an id on the bus cannot be empty")
    return "".join(chr(b) if b in _SAFE else f"={b:02X}" for b in value.encode())


def decode_id(token: str) -> str:
    """The id `encode_id` made `token` from."""
    raw = token.encode()
    out = bytearray()
    i = 0
    while i < len(raw):
        if raw[i] == ord("="):
            pair = raw[i + 1 : i + 3]
            if len(pair) != 2 or not set(pair) <= _HEX:
                raise BadBusMessage(f"{token!r} is not an encoded id (bad escape at {i})")
            out.append(int(pair, 16))
            i += 3
        elif raw[i] in _SAFE:
            out.append(raw[i])
            i += 1
        else:
            raise BadBusMessage(f"{token!r} is not an encoded id ({chr(raw[i])!r} at {i})")
    try:
        return out.decode()
    except UnicodeDecodeError as exc:
        raise BadBusMessage(f"{token!r} is not an encoded id (not UTF-8)") from exc


class Subjects:
    """The subjects under one prefix: `<p>.ev.<site>.<station>`, `<p>.cmd.<station>`."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix

    def event(self, site: str, station: str) -> str:
        return f"{self.prefix}.ev.{encode_id(site)}.{encode_id(station)}"

    def site_events(self, site: str) -> str:
        return f"{self.prefix}.ev.{encode_id(site)}.*"

    def all_events(self) -> str:
        return f"{self.prefix}.ev.>"

    def command(self, station: str) -> str:
        return f"{self.prefix}.cmd.{encode_id(station)}"
