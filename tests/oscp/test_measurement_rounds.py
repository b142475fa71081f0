"""A new measurement plan (a new Handshake) keeps the rhythm of the last one:
no second report right after the last, as a DSO once received."""

from __future__ import annotations

import asyncio
import json

from pydantic import SecretStr

from oscp.client import CapacityProviderClient, Peer
from tests.oscp.test_unreachable_log import free_port


async def test_a_new_plan_does_not_report_again_at_once() -> None:
    received: list[dict] = []

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        length = 0
        for line in head.decode().split("\r\n"):
            if line.lower().startswith("content-length:"):
                length = int(line.split(":", 1)[1])
        body = await reader.readexactly(length)
        if b"update_group_measurements" in head:
            received.append(json.loads(body))
        writer.write(b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
        await writer.drain()
        writer.close()

    port = free_port()
    url = f"http://127.0.0.1:{port}/oscp/cp/2.0"
    client = CapacityProviderClient("dso", lambda: Peer(url, SecretStr("t")))

    async def energy(group: str) -> float:
        return 12.5

    server = await asyncio.start_server(answer, "127.0.0.1", port)
    async with server:
        client.set_measurements(lambda: ["g"], energy, interval_s=0.6)
        await client.start()
        try:
            for _ in range(100):  # the first round goes out at once
                if received:
                    break
                await asyncio.sleep(0.02)
            assert len(received) == 1
            client.set_measurements(lambda: ["g"], energy, interval_s=0.6)  # a new Handshake
            await asyncio.sleep(0.3)
            assert len(received) == 1  # the next round is still 0.3 s away
            for _ in range(100):
                if len(received) == 2:
                    break
                await asyncio.sleep(0.02)
            assert len(received) == 2
        finally:
            await client.stop()
