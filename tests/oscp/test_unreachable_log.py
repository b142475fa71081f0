"""A DSO that stops answering is said once, and again when it is back."""

from __future__ import annotations

import asyncio
import logging
import socket

import pytest
from pydantic import SecretStr

from oscp.client import CapacityProviderClient, Peer, RetryPolicy
from oscp.messages import Message


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def _answer_204(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.decode().split("\r\n"):
        if line.lower().startswith("content-length:"):
            length = int(line.split(":", 1)[1])
    await reader.readexactly(length)
    writer.write(b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
    await writer.drain()
    writer.close()


async def test_an_unreachable_dso_is_one_warning_then_one_line_when_back(
    caplog: pytest.LogCaptureFixture,
) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}/oscp/cp/2.0"
    client = CapacityProviderClient(
        "dso",
        lambda: Peer(url, SecretStr("t")),
        retry=RetryPolicy(attempts=4, first_delay_s=0.01, timeout_s=1.0),
    )
    await client.start()
    try:
        with caplog.at_level(logging.INFO, logger="oscp.client"):
            for _ in range(3):  # nothing listens: every try fails
                with pytest.raises(Exception, match="ConnectError"):
                    await client.send(Message.HEARTBEAT, None)
            server = await asyncio.start_server(_answer_204, "127.0.0.1", port)
            async with server:
                await client.send(Message.HEARTBEAT, None)
                await client.send(Message.HEARTBEAT, None)
    finally:
        await client.stop()
    lines = [r for r in caplog.records if r.name == "oscp.client"]
    warnings = [r for r in lines if r.levelno == logging.WARNING]
    assert len(warnings) == 1, [r.getMessage() for r in lines]
    assert url in warnings[0].getMessage()
    assert "does not answer" in warnings[0].getMessage()
    back = [r.getMessage() for r in lines if "answers again" in r.getMessage()]
    assert len(back) == 1 and url in back[0]
    # twelve failed tries, and no line for each of them at INFO
    assert len(lines) == 2, [r.getMessage() for r in lines]
