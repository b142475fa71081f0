"""OSCP 2.0, the Flexibility Provider side: a DSO's capacity limits reach the site.

    fp = FlexibilityProvider(config.oscp, our_base_url=..., groups=[...],
                             token_store=JsonFileTokenStore(path), on_forecast=...)
    app.include_router(create_router(fp), prefix=FP_PREFIX)
    await fp.start(); ...; await fp.stop()

Modules: `messages` (every body, pydantic), `registration` (the lifecycle's
transition table), `registrar` (its steps with one provider), `provider` (what
we do with each message, I/O free but for callbacks), `inbound` (the checks on
a request), `links` (what we know of each provider), `http` (the FastAPI
shell), `client` (our outgoing messages, heartbeats, measurements, retries),
`tokens` (token persistence), `segments` (reassembly), `errors` (the exception
tree), `config`, `loopback` (serving an app on a loopback port for tests and
simulators).

Importing the package is cheap (the site config imports `oscp.config`): the
names below load their module, with httpx and FastAPI, on first use.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from oscp.client import CapacityProviderClient, MeasurementSource, Peer, RetryPolicy
    from oscp.config import OscpConfig, OscpProviderConfig
    from oscp.errors import (
        BadRequest,
        DeliveryError,
        MethodNotAllowed,
        MissingToken,
        NoCommonVersion,
        NotConnected,
        NotRegistered,
        NotStored,
        OscpError,
        PeerRejected,
        PeerUnreachable,
        ProtocolError,
        RegistrationError,
        UnknownGroup,
        WrongToken,
    )
    from oscp.http import FP_PREFIX, create_app, create_router
    from oscp.messages import OSCP_VERSION, Message
    from oscp.provider import FlexibilityProvider, ProviderLink, Reply
    from oscp.registration import RegEvent, RegState
    from oscp.tokens import JsonFileTokenStore, MemoryTokenStore, TokenRecord, TokenStore

_MODULE_OF = {
    "BadRequest": "oscp.errors",
    "CapacityProviderClient": "oscp.client",
    "DeliveryError": "oscp.errors",
    "FP_PREFIX": "oscp.http",
    "FlexibilityProvider": "oscp.provider",
    "JsonFileTokenStore": "oscp.tokens",
    "MeasurementSource": "oscp.client",
    "MemoryTokenStore": "oscp.tokens",
    "Message": "oscp.messages",
    "MethodNotAllowed": "oscp.errors",
    "MissingToken": "oscp.errors",
    "NoCommonVersion": "oscp.errors",
    "NotConnected": "oscp.errors",
    "NotRegistered": "oscp.errors",
    "NotStored": "oscp.errors",
    "OSCP_VERSION": "oscp.messages",
    "OscpConfig": "oscp.config",
    "OscpError": "oscp.errors",
    "OscpProviderConfig": "oscp.config",
    "Peer": "oscp.client",
    "PeerRejected": "oscp.errors",
    "PeerUnreachable": "oscp.errors",
    "ProtocolError": "oscp.errors",
    "ProviderLink": "oscp.provider",
    "RegEvent": "oscp.registration",
    "RegState": "oscp.registration",
    "RegistrationError": "oscp.errors",
    "Reply": "oscp.provider",
    "RetryPolicy": "oscp.client",
    "TokenRecord": "oscp.tokens",
    "TokenStore": "oscp.tokens",
    "UnknownGroup": "oscp.errors",
    "WrongToken": "oscp.errors",
    "create_app": "oscp.http",
    "create_router": "oscp.http",
}

__all__ = [
    "FP_PREFIX",
    "OSCP_VERSION",
    "BadRequest",
    "CapacityProviderClient",
    "DeliveryError",
    "FlexibilityProvider",
    "JsonFileTokenStore",
    "MeasurementSource",
    "MemoryTokenStore",
    "Message",
    "MethodNotAllowed",
    "MissingToken",
    "NoCommonVersion",
    "NotConnected",
    "NotRegistered",
    "NotStored",
    "OscpConfig",
    "OscpError",
    "OscpProviderConfig",
    "Peer",
    "PeerRejected",
    "PeerUnreachable",
    "ProtocolError",
    "ProviderLink",
    "RegEvent",
    "RegState",
    "RegistrationError",
    "Reply",
    "RetryPolicy",
    "TokenRecord",
    "TokenStore",
    "UnknownGroup",
    "WrongToken",
    "create_app",
    "create_router",
]


def __getattr__(name: str) -> Any:
    module = _MODULE_OF.get(name)
    if module is None:
        raise AttributeError(f"module 'oscp' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
