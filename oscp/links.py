"""What we know of one capacity provider: its tokens, client, behaviour and liveness."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from oscp.client import CapacityProviderClient, Peer
from oscp.config import OscpProviderConfig
from oscp.messages import RequiredBehaviour
from oscp.registration import ACCEPTS_MESSAGES, RegState
from oscp.tokens import TokenRecord


@dataclass
class ProviderLink:
    """What we know of one capacity provider."""

    config: OscpProviderConfig
    record: TokenRecord
    client: CapacityProviderClient = field(init=False)
    behaviour: RequiredBehaviour | None = None
    """What the provider asked of us in its last Handshake."""
    offline_mode_at: datetime | None = None
    """From its last Heartbeat."""
    offline_reported: bool = False

    @property
    def id(self) -> str:
        return self.config.id

    @property
    def state(self) -> RegState:
        return self.record.state

    def peer(self) -> Peer | None:
        r = self.record
        if r.state not in ACCEPTS_MESSAGES or r.token_to_them is None or r.base_url is None:
            return None
        return Peer(r.base_url, r.token_to_them)

    def __repr__(self) -> str:
        return f"ProviderLink({self.id!r}, state={self.state.value})"


def initial_record(pc: OscpProviderConfig) -> TokenRecord:
    """A provider's record before any was stored: registered if both tokens are configured."""
    both = pc.token_to_us is not None and pc.token_to_them is not None
    return TokenRecord(
        token_to_us=pc.token_to_us,
        token_to_them=pc.token_to_them,
        base_url=pc.base_url,
        state=RegState.REGISTERED if both else RegState.UNREGISTERED,
    )
