"""The cluster's bus on loopback: events, commands and lease failover on NATS JetStream.

    .venv/bin/python benchmarks/bus_scale.py                  # NATS on 127.0.0.1:4222
    .venv/bin/python benchmarks/bus_scale.py --events 500 --commands 200 --failovers 1

Needs a NATS server with JetStream (`make nats` installs Debian's; run
`nats-server -js`). Uses names of its own, removed after. Prints:

- station events published with JetStream's ack (file storage, as deployed),
  one at a time (a gateway answering one station) and `--in-flight` at once
  (many stations), next to the reference: a plain NATS request answered by an
  echo subscriber in this process (a round trip through the server and the
  client library, nothing stored), timed alternately with what is measured;
- events written through by a site's durable consumer (acked after a no-op);
- command round trips (planner → gateway → answer, fencing checked), p50/p99,
  next to the same echo;
- lease failover: from the holder's last renewal to another node holding the
  site, against the bound lease TTL + poll; and after a clean release.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
import uuid
from collections.abc import Callable
from typing import Any

from gridshare.cluster.commands import Command, CommandClient, CommandGateway
from gridshare.cluster.connection import connect, events_stream, lease_bucket
from gridshare.cluster.events import EventPublisher, SiteEventConsumer, StationEvent
from gridshare.cluster.lease import Lease, LeaseKeeper, SiteLeases
from gridshare.cluster.settings import BusSettings


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--url", default="nats://127.0.0.1:4222")
    p.add_argument("--events", type=int, default=2000)
    p.add_argument("--in-flight", type=int, default=64)
    p.add_argument("--commands", type=int, default=500)
    p.add_argument("--failovers", type=int, default=3)
    p.add_argument("--ttl", type=float, default=2.0, help="lease TTL, s")
    p.add_argument("--poll", type=float, default=0.25, help="lease poll, s")
    return p


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def event(i: int) -> StationEvent:
    payload = {"connectorId": 1, "meterValue": [{"sampledValue": [{"value": str(i)}]}]}
    return StationEvent("depot", f"CP{i % 500:04d}", str(i), "MeterValues", payload, "", "n1")


class Echo:
    """The reference: a plain NATS request/reply to an echo on the same server,
    timed alternately with what is measured, so both see the same load."""

    def __init__(self, settings: BusSettings) -> None:
        self.settings = settings
        self.subject = f"{settings.prefix}.echo"
        self.body = event(0).to_bytes()
        self.times: list[float] = []

    async def open(self) -> None:
        self.server = await connect(self.settings, "echo")

        async def answer(msg: Any) -> None:
            await msg.respond(msg.data)

        await self.server.subscribe(self.subject, cb=answer)
        await self.server.flush()
        self.client = await connect(self.settings, "echo-client")

    async def once(self) -> None:
        t = time.perf_counter()
        await self.client.request(self.subject, self.body, timeout=5)
        self.times.append(time.perf_counter() - t)

    async def close(self) -> None:
        await self.client.close()
        await self.server.close()


async def events_bench(
    settings: BusSettings, n: int, in_flight: int, echo: Echo
) -> dict[str, float]:
    nc = await connect(settings, "gateway")
    js = nc.jetstream()
    await events_stream(js, settings)
    pub = EventPublisher(js, settings)
    serial: list[float] = []
    for i in range(n):
        t = time.perf_counter()
        await pub.publish(event(i))
        serial.append(time.perf_counter() - t)
        await echo.once()
    gate = asyncio.Semaphore(in_flight)

    async def one(i: int) -> None:
        async with gate:
            await pub.publish(event(i))

    t = time.perf_counter()
    await asyncio.gather(*(one(i) for i in range(n, 2 * n)))
    concurrent = n / (time.perf_counter() - t)
    dup = await pub.publish(event(0))
    assert dup.duplicate, "a repeated event was stored twice"

    done = 0

    async def write(_: StationEvent) -> None:
        nonlocal done
        done += 1

    reader = await connect(settings, "planner")
    consumer = SiteEventConsumer(reader.jetstream(), settings, "depot", write, batch=256)
    t = time.perf_counter()
    deadline = t + 60
    while done < 2 * n and time.perf_counter() < deadline:
        await consumer.process(await consumer.fetch(1.0))
    drained = done / (time.perf_counter() - t)
    await consumer.close()
    await reader.close()
    await js.delete_stream(settings.stream)
    await nc.close()
    return {
        "serial": 1 / statistics.mean(serial),
        "echo": 1 / statistics.mean(echo.times),
        "concurrent": concurrent,
        "drained": drained,
        "read": done,
    }


async def commands_bench(settings: BusSettings, n: int, echo: Echo) -> list[float]:
    async def execute(station: str, action: str, payload: dict[str, Any]) -> dict[str, Any]:
        return {"status": "Accepted"}

    gw_nc = await connect(settings, "gateway")
    gateway = CommandGateway(gw_nc, settings, execute)
    await gateway.hold("CP0001", "depot")
    nc = await connect(settings, "planner")
    client = CommandClient(nc, settings)
    cmd = Command("depot", 1, "SetChargingProfile", event(1).payload)
    times = []
    for _ in range(n):
        t = time.perf_counter()
        await client.send("CP0001", cmd)
        times.append(time.perf_counter() - t)
        await echo.once()
    await gateway.close()
    await nc.close()
    await gw_nc.close()
    return times


def gained(took: asyncio.Event) -> Callable[[Lease], None]:
    return lambda _: took.set()


async def failover_bench(settings: BusSettings, trials: int) -> tuple[list[float], list[float]]:
    crashes: list[float] = []
    releases: list[float] = []
    a_nc, b_nc = await connect(settings, "n1"), await connect(settings, "n2")
    kv = await lease_bucket(a_nc.jetstream(), settings)
    kv_b = await lease_bucket(b_nc.jetstream(), settings)
    for trial in range(trials):
        for clean in (False, True):
            site = f"site-{trial}-{clean}"
            a = SiteLeases(kv, "n1")
            lease = await a.acquire(site)
            assert lease is not None
            lease = await a.renew(lease)
            took = asyncio.Event()
            keeper = LeaseKeeper(SiteLeases(kv_b, "n2"), [site], settings, on_gained=gained(took))
            keeper.start()
            start = lease.renewed_at
            if clean:
                await asyncio.sleep(settings.lease_poll_s * 1.5)
                start = time.monotonic()
                await a.release(lease)
            await asyncio.wait_for(took.wait(), settings.lease_ttl_s + settings.lease_poll_s + 10)
            (releases if clean else crashes).append(time.monotonic() - start)
            await keeper.stop()
    await a_nc.jetstream().delete_key_value(settings.bucket)
    await a_nc.close()
    await b_nc.close()
    return crashes, releases


async def run(args: argparse.Namespace) -> None:
    tag = uuid.uuid4().hex[:10]
    settings = BusSettings(
        url=args.url,
        prefix=f"gsbench.{tag}",
        stream=f"GSBENCH_{tag}",
        bucket=f"gsbench_{tag}",
        lease_ttl_s=args.ttl,
        lease_renew_s=args.ttl / 4,
        lease_poll_s=args.poll,
    )
    load = os.getloadavg()
    print(f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} on {os.cpu_count()} cores")
    echo = Echo(settings)
    await echo.open()
    ev = await events_bench(settings, args.events, args.in_flight, echo)
    print(f"\nstation events, {args.events} each way, JetStream file storage:")
    print(f"  published one at a time, acked  {ev['serial']:9.0f} /s")
    print(f"  published {args.in_flight} in flight, acked  {ev['concurrent']:9.0f} /s")
    print(f"  request/reply to an echo (reference) {ev['echo']:9.0f} /s   ", end="")
    print(f"acked publish one at a time = {ev['serial'] / ev['echo']:.2f} × the reference")
    print(f"  written through by the durable consumer {ev['drained']:9.0f} /s ({ev['read']} read)")
    echo.times.clear()
    cmd = await commands_bench(settings, args.commands, echo)
    ref = echo.times
    await echo.close()
    print(f"\ncommand round trips ({args.commands}, one at a time, fencing checked):")
    print(f"  p50 {pct(cmd, 0.5) * 1e3:6.2f} ms  p99 {pct(cmd, 0.99) * 1e3:6.2f} ms")
    print(f"  request/reply to an echo (reference): p50 {pct(ref, 0.5) * 1e3:6.2f} ms  ", end="")
    print(f"p99 {pct(ref, 0.99) * 1e3:6.2f} ms; p50 ratio {pct(cmd, 0.5) / pct(ref, 0.5):.2f}")
    crashes, releases = await failover_bench(settings, args.failovers)
    bound = settings.lease_ttl_s + settings.lease_poll_s
    print(f"\nlease failover (TTL {settings.lease_ttl_s} s, poll {settings.lease_poll_s} s):")
    print(f"  holder stopped renewing: {', '.join(f'{c:.2f}' for c in crashes)} s ", end="")
    print(f"after its last renewal (bound {bound:.2f} s; ratio {max(crashes) / bound:.2f})")
    print(f"  holder released it: {', '.join(f'{r * 1e3:.0f}' for r in releases)} ms later")


def main(argv: list[str]) -> int:
    asyncio.run(run(parser().parse_args(argv)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
