"""The OCPP versions this adapter speaks.

OCPP 2.1 is backward compatible with 2.0.1: every message 2.0.1 defines keeps
its fields (2.1 only adds optional ones), so 2.1 takes the 2.0.1 path
everywhere and adds its own messages and fields on top. Code asks
``version is V16`` (or `OcppVersion.is_v2`) rather than naming 2.0.1.
"""

from __future__ import annotations

from enum import StrEnum


class OcppVersion(StrEnum):
    """Sub-protocols we speak, by their WebSocket names."""

    V16 = "ocpp1.6"
    V201 = "ocpp2.0.1"
    V21 = "ocpp2.1"

    @property
    def is_v2(self) -> bool:
        """2.0.1 or 2.1: the device-model family (EVSE ids, TransactionEvent)."""
        return self is not OcppVersion.V16


NEWEST_FIRST = (OcppVersion.V21, OcppVersion.V201, OcppVersion.V16)
"""Our preference when a station offers several."""
