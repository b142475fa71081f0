"""A capacity provider's request before it is handled: who sent it, which message,
its body whole and parsed. Pure: each check raises the `ProtocolError` whose
status the provider answers.

    request ──authenticate──▶ link ──message_of──▶ Message ──reassemble──▶ body ──parse──▶ model
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from oscp.errors import BadRequest, MethodNotAllowed, MissingToken, WrongToken
from oscp.links import ProviderLink
from oscp.messages import Message
from oscp.segments import Reassembler, parse_segment_headers

M = TypeVar("M", bound=BaseModel)

FP_MESSAGES: dict[Message, frozenset[str]] = {
    Message.REGISTER: frozenset({"POST", "PUT", "DELETE"}),
    Message.HANDSHAKE: frozenset({"POST"}),
    Message.HEARTBEAT: frozenset({"POST"}),
    Message.UPDATE_GROUP_CAPACITY_FORECAST: frozenset({"POST"}),
    Message.ADJUST_GROUP_CAPACITY_FORECAST: frozenset({"POST"}),
    Message.GROUP_CAPACITY_COMPLIANCE_ERROR: frozenset({"POST"}),
}
"""The messages a Flexibility Provider takes, and their methods."""


@dataclass(frozen=True)
class Reply:
    status: int
    body: dict[str, Any] | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    after: tuple[Callable[[], Awaitable[None]], ...] = ()


def header(headers: Mapping[str, str], name: str) -> str | None:
    v = headers.get(name)
    if v is None:
        v = headers.get(name.lower())
    return v


def parse(model: type[M], body: bytes) -> M:
    try:
        return model.model_validate_json(body or b"{}")
    except ValidationError as e:
        first = e.errors()[0]
        loc = ".".join(str(p) for p in first["loc"])
        raise BadRequest(f"invalid {model.__name__}: {loc}: {first['msg']}") from None


def authenticate(links: Iterable[ProviderLink], headers: Mapping[str, str]) -> ProviderLink:
    """The provider whose token the request carries (every token compared, in constant time)."""
    auth = header(headers, "Authorization")
    if not auth:
        raise MissingToken("Authorization: Token ... required")
    scheme, _, token = auth.strip().partition(" ")
    if scheme.lower() != "token" or not token.strip():
        raise MissingToken("Authorization: Token ... required")
    given = token.strip().encode()
    found: ProviderLink | None = None
    for link in links:
        ours = link.record.token_to_us
        expected = ours.get_secret_value().encode() if ours else b"\x00" * 43
        if hmac.compare_digest(given, expected) and ours is not None:
            found = link
    if found is None:
        raise WrongToken("token not accepted")
    return found


def message_of(message: str, method: str) -> Message:
    """The Flexibility Provider message a path names, if the method is allowed on it."""
    try:
        msg = Message(message)
    except ValueError:
        raise BadRequest(f"unknown message {message!r}") from None
    if msg not in FP_MESSAGES:
        raise BadRequest(f"{message} is not a Flexibility Provider message")
    if method.upper() not in FP_MESSAGES[msg]:
        raise MethodNotAllowed(f"{method} not allowed on {message}")
    return msg


def reassemble(
    segments: Reassembler[bytes],
    link: ProviderLink,
    msg: Message,
    headers: Mapping[str, str],
    body: bytes,
    clock: Callable[[], datetime],
) -> bytes | None:
    """The whole body, or None while parts are missing. Parts are objects whose
    ``forecasted_blocks`` lists are concatenated; other fields must agree."""
    seg = parse_segment_headers(
        header(headers, "X-Segment-Index"), header(headers, "X-Segment-Count")
    )
    if seg is None:
        return body
    try:
        part = json.loads(body)
    except ValueError:
        raise BadRequest("segment is not JSON") from None
    if not isinstance(part, dict):
        raise BadRequest("segment is not a JSON object")
    fixed = {k: v for k, v in part.items() if k != "forecasted_blocks"}
    corr = header(headers, "X-Correlation-ID")
    key = (link.id, msg.value, corr or json.dumps(fixed, sort_keys=True))
    parts = segments.add(key, seg[0], seg[1], body, clock())
    if parts is None:
        return None
    merged: dict[str, Any] = {}
    blocks: list[Any] = []
    for raw in parts:
        p = json.loads(raw)
        rest = {k: v for k, v in p.items() if k != "forecasted_blocks"}
        if merged and rest != merged:
            raise BadRequest("segments of one message disagree")
        merged = rest
        got = p.get("forecasted_blocks", [])
        if not isinstance(got, list):
            raise BadRequest("forecasted_blocks must be a list")
        blocks += got
    merged["forecasted_blocks"] = blocks
    return json.dumps(merged).encode()
