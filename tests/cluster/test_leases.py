"""Site leases on a real JetStream key-value bucket: one holder per site, a
holder that stops renewing is taken over within TTL + poll, a late holder
cannot renew, and a gateway learns the new token from the bucket."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import pytest

from gridshare.cluster.connection import connect, lease_bucket
from gridshare.cluster.errors import BusConfigError, BusUnavailable, LeaseLost, StaleFencingToken
from gridshare.cluster.fencing import FencingBook, watch_leases
from gridshare.cluster.lease import Lease, LeaseKeeper, SiteLeases, encode_record
from gridshare.cluster.settings import BusSettings
from tests.cluster.conftest import Bus, free_port


async def node(bus: Bus, name: str) -> SiteLeases:
    nc = await bus.connect(name)
    return SiteLeases(await lease_bucket(nc.jetstream(), bus.settings), name)


async def wait_for(cond: Callable[[], object], limit_s: float) -> float:
    """Seconds until `cond()` held; fails after `limit_s`."""
    start = time.monotonic()
    while not cond():
        if time.monotonic() - start > limit_s:
            pytest.fail(f"not within {limit_s} s")
        await asyncio.sleep(0.02)
    return time.monotonic() - start


async def test_of_two_nodes_asking_at_once_one_gets_each_site(bus: Bus) -> None:
    a, b = await node(bus, "n1"), await node(bus, "n2")
    sites = [f"site-{i}" for i in range(8)]
    got = await asyncio.gather(*(n.acquire(s) for s in sites for n in (a, b)))
    for i, site in enumerate(sites):
        pair = got[2 * i : 2 * i + 2]
        winners = [lease for lease in pair if lease is not None]
        assert len(winners) == 1, site
        holder = await a.holder(site)
        assert holder is not None
        assert (holder.node, holder.token) == (winners[0].node, winners[0].token)
    tokens = [lease.token for lease in got if lease is not None]
    assert len(set(tokens)) == len(sites)  # every acquisition its own token


async def test_a_renewing_holder_keeps_its_site_and_its_token(bus: Bus) -> None:
    s = bus.settings
    a, b = await node(bus, "n1"), await node(bus, "n2")
    gained: list[Lease] = []
    ka = LeaseKeeper(a, ["depot"], s, on_gained=gained.append)
    kb = LeaseKeeper(b, ["depot"], s, on_gained=gained.append)
    ka.start()
    await wait_for(lambda: ka.token("depot") is not None, 5)
    kb.start()
    first = ka.held["depot"]
    await asyncio.sleep(2.5 * s.lease_ttl_s)  # the TTL would have ended it without renewals
    assert [g.node for g in gained] == ["n1"]
    assert kb.held == {}
    assert ka.token("depot") == first.token
    assert ka.held["depot"].revision > first.revision  # renewed meanwhile
    await kb.stop()
    await ka.stop()


async def test_a_holder_that_stops_renewing_is_taken_over_within_ttl_and_poll(bus: Bus) -> None:
    s = bus.settings
    a, b = await node(bus, "n1"), await node(bus, "n2")
    lease = await a.acquire("depot")
    assert lease is not None
    for _ in range(3):  # a healthy holder for a while
        await asyncio.sleep(s.lease_renew_s)
        lease = await a.renew(lease)
    gained: list[tuple[float, Lease]] = []
    kb = LeaseKeeper(b, ["depot"], s, on_gained=lambda g: gained.append((time.monotonic(), g)))
    kb.start()
    # n1 dies here: no renewal after `lease.renewed_at`
    await wait_for(lambda: bool(gained), s.lease_ttl_s + s.lease_poll_s + 2)
    took_at, successor = gained[0]
    after = took_at - lease.renewed_at
    assert s.lease_ttl_s - 0.1 <= after <= s.lease_ttl_s + s.lease_poll_s + 1.0
    assert successor.node == "n2"
    assert successor.token > lease.token
    with pytest.raises(LeaseLost):  # n1 back from a pause cannot renew
        await a.renew(lease)
    assert await a.acquire("depot") is None
    await kb.stop()


async def test_a_released_lease_is_taken_at_the_next_poll(bus: Bus) -> None:
    s = bus.settings
    a, b = await node(bus, "n1"), await node(bus, "n2")
    ka = LeaseKeeper(a, ["depot"], s)
    ka.start()
    await wait_for(lambda: ka.token("depot") is not None, 5)
    kb = LeaseKeeper(b, ["depot"], s)
    kb.start()
    await asyncio.sleep(s.lease_poll_s * 2)
    assert kb.held == {}
    await ka.stop(release=True)  # a clean stop gives the site up at once
    took = await wait_for(lambda: kb.token("depot") is not None, s.lease_ttl_s)
    assert took < s.lease_ttl_s / 2
    await kb.stop()


async def test_a_holder_that_cannot_renew_gives_the_site_up_by_itself(bus: Bus) -> None:
    s = bus.settings
    a = await node(bus, "n1")
    lost: list[str] = []
    ka = LeaseKeeper(a, ["depot"], s, on_lost=lambda site, why: lost.append(why))
    ka.start()
    await wait_for(lambda: ka.token("depot") is not None, 5)
    renewed_at = ka.held["depot"].renewed_at
    await bus.clients[0].close()  # the bus is gone for n1: renewals fail
    await wait_for(lambda: bool(lost), s.lease_ttl_s + 1)
    assert ka.token("depot") is None
    assert time.monotonic() - renewed_at >= s.lease_ttl_s - 0.05
    await ka.stop()


async def test_the_gateway_learns_a_successors_token_from_the_bucket(bus: Bus) -> None:
    s = bus.settings
    a, b = await node(bus, "n1"), await node(bus, "n2")
    book = FencingBook()
    ready = asyncio.Event()
    watch = asyncio.create_task(watch_leases(a.kv, book, ready))
    await asyncio.wait_for(ready.wait(), 5)
    old = await a.acquire("depot")
    assert old is not None
    await wait_for(lambda: book.newest("depot") == old.token, 5)
    new = None
    for _ in range(int((s.lease_ttl_s + 2) / s.lease_poll_s)):  # n1 stopped renewing
        new = await b.acquire("depot")
        if new is not None:
            break
        await asyncio.sleep(s.lease_poll_s)
    assert new is not None
    await wait_for(lambda: book.newest("depot") == new.token, 5)
    with pytest.raises(StaleFencingToken):
        book.admit("depot", old.token)
    book.admit("depot", new.token)
    watch.cancel()
    await asyncio.gather(watch, return_exceptions=True)


async def test_a_bucket_with_another_ttl_is_refused(bus: Bus) -> None:
    nc = await bus.connect("n1")
    await lease_bucket(nc.jetstream(), bus.settings)
    other = BusSettings(**{**bus.settings.__dict__, "lease_ttl_s": 4.0})
    with pytest.raises(BusConfigError, match="same lease TTL"):
        await lease_bucket(nc.jetstream(), other)


async def test_a_renewal_whose_answer_was_lost_is_renewed_from(bus: Bus) -> None:
    a, b = await node(bus, "n1"), await node(bus, "n2")
    lease = await a.acquire("depot")
    assert lease is not None
    # n1's renewal reached the bucket, its answer did not (a timeout)
    await a.kv.update("depot", encode_record("n1", lease.token), last=lease.revision)
    renewed = await a.renew(lease)
    assert renewed.token == lease.token and renewed.revision > lease.revision + 1
    assert await b.acquire("depot") is None
    # a record that is not its own (another holder's, or another token) is a lost lease
    await a.kv.update("depot", encode_record("n2", 999), last=renewed.revision)
    with pytest.raises(LeaseLost):
        await a.renew(renewed)


async def test_an_unreachable_bus_is_one_clear_error(bus: Bus) -> None:
    port = free_port()
    settings = BusSettings(url=f"nats://127.0.0.1:{port}", request_timeout_s=0.5)
    started = time.monotonic()
    with pytest.raises(BusUnavailable, match=f"cannot reach NATS at nats://127.0.0.1:{port}"):
        await connect(settings, "n1")
    assert time.monotonic() - started < 5


async def test_never_two_planners_for_a_site_while_nodes_come_and_go(bus: Bus) -> None:
    s = bus.settings
    sites = [f"site-{i}" for i in range(5)]
    keepers = [LeaseKeeper(await node(bus, f"n{i}"), sites, s) for i in range(3)]
    keepers[0].start()
    await wait_for(lambda: len(keepers[0].held) == len(sites), 5)
    for k in keepers[1:]:
        k.start()
    overlaps: list[tuple[str, int]] = []

    def sample() -> int:
        """Sites held by some node now; records any held by two."""
        held = 0
        for site in sites:
            holders = sum(k.token(site) is not None for k in keepers)
            if holders > 1:
                overlaps.append((site, holders))
            held += holders > 0
        return held

    async def watch(for_s: float) -> None:
        end = time.monotonic() + for_s
        while time.monotonic() < end:
            sample()
            await asyncio.sleep(0.05)

    await watch(1.0)
    assert set(keepers[0].held) == set(sites)  # a holder keeps what it holds
    await keepers[0].stop(release=False)  # n0 dies with every site
    await watch(s.lease_ttl_s + s.lease_poll_s + 0.5)
    assert sample() == len(sites)
    assert {site for k in keepers[1:] for site in k.held} == set(sites)
    await keepers[1].stop(release=True)  # n1 stops cleanly: n2 takes the rest at once
    await watch(2 * s.lease_poll_s + 0.3)
    assert set(keepers[2].held) == set(sites)
    assert overlaps == []
    await keepers[2].stop()
