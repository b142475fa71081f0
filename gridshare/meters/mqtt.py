"""Reading a meter from MQTT with aiomqtt: JSON messages on a topic.

Each of the source's ``json_path`` (dotted, e.g. ``"current.l1"`` or
``"phases.0.a"``) points at one line's current (L1, L2, L3 in order). A
message may carry its time under ``"time"`` or ``"timestamp"`` (ISO 8601
with an offset, or seconds since the epoch); without one, it is read as of
its arrival.
"""

from __future__ import annotations

import json
import math
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import aiomqtt

from gridshare.meters.config import SourceConfig
from gridshare.meters.readings import ReadingRefused

LINE_NAMES = ("L1", "L2", "L3")


def _dig(payload: Any, path: str) -> Any:
    node = payload
    for part in path.split("."):
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            raise ReadingRefused(f"no value at {path!r}")
    return node


def _time(payload: dict[str, Any]) -> datetime | None:
    raw = payload.get("time", payload.get("timestamp"))
    if raw is None:
        return None
    if isinstance(raw, int | float) and not isinstance(raw, bool) and math.isfinite(raw):
        return datetime.fromtimestamp(raw, UTC)
    if isinstance(raw, str):
        try:
            at = datetime.fromisoformat(raw)
        except ValueError:
            raise ReadingRefused(f"time {raw!r} is not ISO 8601") from None
        if at.tzinfo is None:
            raise ReadingRefused(f"time {raw!r} has no UTC offset")
        return at
    raise ReadingRefused(f"time {raw!r} is not a time")


def parse_message(
    source: SourceConfig, payload: bytes
) -> tuple[datetime | None, dict[str, object]]:
    """(time if the message has one, line → value) of one message, or `ReadingRefused`."""
    try:
        data = json.loads(payload)
    except (ValueError, UnicodeDecodeError):
        raise ReadingRefused("the message is not JSON") from None
    values = {
        line: _dig(data, path)
        for line, path in zip(LINE_NAMES[: len(source.json_path)], source.json_path, strict=True)
    }
    return (_time(data) if isinstance(data, dict) else None), values


async def messages(source: SourceConfig) -> AsyncIterator[bytes]:
    """The payloads on the source's topic, for as long as the broker stays."""
    assert source.topic is not None
    async with aiomqtt.Client(
        source.host or "127.0.0.1",
        source.port_or_default,
        username=source.username,
        password=source.password,
    ) as client:
        await client.subscribe(source.topic, qos=1)
        async for message in client.messages:
            payload = message.payload
            yield payload if isinstance(payload, bytes) else str(payload).encode()


MqttError = aiomqtt.MqttError
