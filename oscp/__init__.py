"""OSCP 2.0, the Flexibility Provider side: a DSO's capacity limits reach the site.

    fp = FlexibilityProvider(config.oscp, our_base_url=..., groups=[...],
                             token_store=JsonFileTokenStore(path), on_forecast=...)
    app.include_router(create_router(fp), prefix=FP_PREFIX)
    await fp.start(); ...; await fp.stop()

Modules: `messages` (every body, pydantic), `registration` (the lifecycle's
transition table), `provider` (what we do with each message, I/O free but for
callbacks), `http` (the FastAPI shell), `client` (our outgoing messages,
heartbeats, measurements, retries), `tokens` (token persistence), `segments`
(reassembly), `errors` (the exception tree), `config`, `loopback` (serving an
app on a loopback port for tests and simulators).
"""

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
