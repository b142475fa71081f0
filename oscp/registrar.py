"""Registration with each capacity provider: every step one transition of
`oscp.registration`, the provider's record saved before it is used.

    we register       begin ──our Register, registration token──▶ (their Register) received
    they register     received ──▶ reply: our Register with the token they are to use
    Handshake         handshake ──▶ HandshakeAcknowledge, loops (re)started
    DELETE Register   unregister: their token and behaviour forgotten, heartbeats stop

Work owed once the answer is sent (our Register, the acknowledgement) is given
back to be run then, as ``Reply.after``.
"""

from __future__ import annotations

import contextlib
import logging
import secrets
from collections.abc import Awaitable, Callable
from typing import Any

from pydantic import SecretStr

from oscp.client import Peer, RetryPolicy
from oscp.config import OscpProviderConfig
from oscp.errors import DeliveryError, NoCommonVersion, RegistrationError
from oscp.links import ProviderLink, initial_record
from oscp.messages import (
    OSCP_VERSION,
    Handshake,
    HandshakeAcknowledge,
    Message,
    Register,
    RequiredBehaviour,
    VersionUrl,
)
from oscp.registration import RegEvent, RegState, next_state
from oscp.tokens import TokenRecord, TokenStore

log = logging.getLogger("oscp.provider")

AfterReply = tuple[Callable[[], Awaitable[None]], ...]
"""Work owed once the answer is on its way."""


class Registrar:
    """Keeps each provider's registration and the token store in step."""

    def __init__(
        self,
        token_store: TokenStore,
        *,
        version_urls: Callable[[], list[VersionUrl]],
        retry: RetryPolicy,
        spawn: Callable[[Awaitable[None]], None],
        on_registered: Callable[[ProviderLink], None],
    ) -> None:
        self._store = token_store
        self._version_urls = version_urls
        self._retry = retry
        self._spawn = spawn
        self._on_registered = on_registered
        """Start the heartbeats and measurements towards a newly registered provider."""

    async def load(self, pc: OscpProviderConfig) -> TokenRecord:
        """The provider's stored record, else one from its configuration."""
        return await self._store.load(pc.id) or initial_record(pc)

    async def set_record(self, link: ProviderLink, **changes: Any) -> None:
        record = link.record.model_copy(update=changes)
        await self._store.save(link.id, record)
        link.record = record

    async def _transition(self, link: ProviderLink, event: RegEvent, **changes: Any) -> None:
        await self.set_record(link, state=next_state(link.state, event), **changes)

    # --- we register -------------------------------------------------------------------

    async def begin(self, link: ProviderLink) -> None:
        """Send our Register with the out-of-band registration token (in the background)."""
        token = link.record.token_to_us
        if link.state is not RegState.AWAITING_REPLY or token is None:
            token = SecretStr(secrets.token_urlsafe(32))
        await self._transition(link, RegEvent.SEND_REGISTER, token_to_us=token)
        self._spawn(self._send_register(link, token))

    async def _send_register(self, link: ProviderLink, token_for_them: SecretStr) -> None:
        reg = link.config.registration_token
        assert reg is not None
        body = Register(token=token_for_them.get_secret_value(), version_url=self._version_urls())
        try:
            await link.client.send(
                Message.REGISTER,
                body,
                peer=Peer(link.config.base_url, reg),
                retry=self._retry,
            )
        except DeliveryError as e:
            log.warning("%s: Register not delivered: %s", link.id, e)

    async def register(self, link: ProviderLink) -> None:
        """Start (again) the Register flow with the out-of-band registration token."""
        if link.config.registration_token is None:
            raise RegistrationError(f"{link.id}: no registration_token configured")
        if link.state is not RegState.AWAITING_REPLY:
            await self.set_record(link, state=RegState.UNREGISTERED)
        await self.begin(link)

    # --- their messages ----------------------------------------------------------------

    async def received(self, link: ProviderLink, reg: Register) -> AfterReply:
        """Their Register: the answer to ours, or their own (we reply with a new token)."""
        version = next((v for v in reg.version_url if v.version == OSCP_VERSION), None)
        if version is None:
            offered = ", ".join(v.version for v in reg.version_url)
            raise NoCommonVersion(f"no common version (we speak {OSCP_VERSION}; got {offered})")
        their = SecretStr(reg.token)
        if link.state is RegState.AWAITING_REPLY:
            await self._transition(
                link, RegEvent.REGISTER_RECEIVED, token_to_them=their, base_url=version.base_url
            )
            log.info("%s: registered (our Register answered)", link.id)
            return (lambda: self._after_registered(link),)
        new = SecretStr(secrets.token_urlsafe(32))
        await self._transition(
            link,
            RegEvent.REGISTER_RECEIVED,
            token_to_them=their,
            token_to_us=new,
            base_url=version.base_url,
        )
        log.info("%s: registered with us; token rotated", link.id)
        return (lambda: self.reply(link, new),)

    async def _after_registered(self, link: ProviderLink) -> None:
        self._on_registered(link)

    async def reply(self, link: ProviderLink, token_for_them: SecretStr) -> None:
        """Our Register in answer to theirs, then the loops start."""
        body = Register(token=token_for_them.get_secret_value(), version_url=self._version_urls())
        try:
            await link.client.send(Message.REGISTER, body, retry=self._retry)
        except DeliveryError as e:
            log.warning("%s: our Register not delivered: %s", link.id, e)
            return
        with contextlib.suppress(RegistrationError):
            await self._transition(link, RegEvent.REPLY_SENT)
        self._on_registered(link)

    async def unregister(self, link: ProviderLink) -> None:
        await self._transition(
            link, RegEvent.UNREGISTER_RECEIVED, token_to_them=None, behaviour=None
        )
        link.client.set_heartbeat(None)
        link.behaviour = None
        log.info("%s: unregistered", link.id)

    async def handshake(self, link: ProviderLink, hs: Handshake, request_id: str) -> AfterReply:
        """Keep what they require of us; acknowledge once answered."""
        await self._transition(
            link,
            RegEvent.HANDSHAKE_RECEIVED,
            behaviour=hs.required_behaviour.model_dump(mode="json", exclude_none=True),
        )
        link.behaviour = hs.required_behaviour

        async def acknowledge() -> None:
            ack = HandshakeAcknowledge(
                required_behaviour=RequiredBehaviour(
                    heartbeat_interval=link.config.heartbeat_interval_s
                )
            )
            link.client.enqueue(Message.HANDSHAKE_ACKNOWLEDGE, ack, correlation_id=request_id)
            self._on_registered(link)

        return (acknowledge,)
