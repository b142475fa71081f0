"""The registration lifecycle with one capacity provider, as a transition table.

    UNREGISTERED ──SEND_REGISTER──▶ AWAITING_REPLY ──REGISTER_RECEIVED──▶ REGISTERED
    UNREGISTERED ──REGISTER_RECEIVED──▶ REPLYING ──REPLY_SENT──▶ REGISTERED
    REGISTERED / HANDSHAKEN ──REGISTER_RECEIVED──▶ REPLYING       (token rotation)
    REGISTERED / HANDSHAKEN ──HANDSHAKE_RECEIVED──▶ HANDSHAKEN
    REPLYING ──HANDSHAKE_RECEIVED──▶ HANDSHAKEN ──REPLY_SENT──▶ HANDSHAKEN
    any ──UNREGISTER_RECEIVED──▶ UNREGISTERED

* AWAITING_REPLY: we posted Register (with the token they are to use towards
  us) using the out-of-band registration token, and wait for their Register
  carrying the token we are to use.
* REPLYING: they registered with us; we stored their token and our new one and
  owe them our Register. Their messages are accepted already (they may use the
  new token as soon as our Register reached them).

Messages other than Register are accepted in REPLYING, REGISTERED and
HANDSHAKEN only (`ACCEPTS_MESSAGES`).
"""

from __future__ import annotations

from enum import StrEnum

from oscp.errors import RegistrationError


class RegState(StrEnum):
    UNREGISTERED = "UNREGISTERED"
    AWAITING_REPLY = "AWAITING_REPLY"
    REPLYING = "REPLYING"
    REGISTERED = "REGISTERED"
    HANDSHAKEN = "HANDSHAKEN"


class RegEvent(StrEnum):
    SEND_REGISTER = "SEND_REGISTER"
    REGISTER_RECEIVED = "REGISTER_RECEIVED"
    REPLY_SENT = "REPLY_SENT"
    HANDSHAKE_RECEIVED = "HANDSHAKE_RECEIVED"
    UNREGISTER_RECEIVED = "UNREGISTER_RECEIVED"


S, E = RegState, RegEvent

TRANSITIONS: dict[tuple[RegState, RegEvent], RegState] = {
    (S.UNREGISTERED, E.SEND_REGISTER): S.AWAITING_REPLY,
    (S.AWAITING_REPLY, E.SEND_REGISTER): S.AWAITING_REPLY,
    (S.AWAITING_REPLY, E.REGISTER_RECEIVED): S.REGISTERED,
    (S.UNREGISTERED, E.REGISTER_RECEIVED): S.REPLYING,
    (S.REPLYING, E.REGISTER_RECEIVED): S.REPLYING,
    (S.REGISTERED, E.REGISTER_RECEIVED): S.REPLYING,
    (S.HANDSHAKEN, E.REGISTER_RECEIVED): S.REPLYING,
    (S.REPLYING, E.REPLY_SENT): S.REGISTERED,
    (S.REGISTERED, E.REPLY_SENT): S.REGISTERED,
    (S.HANDSHAKEN, E.REPLY_SENT): S.HANDSHAKEN,
    (S.REPLYING, E.HANDSHAKE_RECEIVED): S.HANDSHAKEN,
    (S.REGISTERED, E.HANDSHAKE_RECEIVED): S.HANDSHAKEN,
    (S.HANDSHAKEN, E.HANDSHAKE_RECEIVED): S.HANDSHAKEN,
    **{(s, E.UNREGISTER_RECEIVED): S.UNREGISTERED for s in RegState},
}

ACCEPTS_MESSAGES = frozenset({S.REPLYING, S.REGISTERED, S.HANDSHAKEN})


def next_state(state: RegState, event: RegEvent) -> RegState:
    try:
        return TRANSITIONS[(state, event)]
    except KeyError:
        raise RegistrationError(f"{event.value} is not allowed in {state.value}") from None
