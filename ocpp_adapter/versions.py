"""The OCPP versions this adapter speaks."""

from __future__ import annotations

from enum import StrEnum


class OcppVersion(StrEnum):
    """Sub-protocols we speak, by their WebSocket names."""

    V16 = "ocpp1.6"
    V201 = "ocpp2.0.1"
