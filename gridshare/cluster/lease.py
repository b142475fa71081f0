"""One planner per site: leases in a JetStream key-value bucket, with fencing tokens.

Nothing here elects anyone. The bucket's two atomic writes do all of it:
`create` succeeds only where the key is absent (acquire), `update` only where
the key's last revision is the one given (renew). The bucket's TTL removes a
lease its holder stopped renewing; any node polling `create` then gets it.

The fencing token of a lease is the revision its `create` got. Revisions are
the bucket stream's sequence numbers, so every later acquisition, of any site,
by any node, has a larger token: a gateway that refuses tokens older than the
newest it saw for a site refuses a planner that lost the site. (Renewals keep
the token: a planner's own commands in flight stay valid across a renewal.)

A holder counts its lease from the moment it *sent* the write that succeeded
and gives the site up itself once `lease_ttl_s` has passed without another:
by then the server may have expired the key and handed it on.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace

import nats.js.errors
from nats.js.kv import KeyValue

from gridshare.cluster.connection import bus_errors
from gridshare.cluster.errors import BadBusMessage, BusError, BusUnavailable, LeaseLost
from gridshare.cluster.names import encode_id
from gridshare.cluster.settings import BusSettings

log = logging.getLogger(__name__)

Clock = Callable[[], float]


@dataclass(frozen=True)
class Holder:
    """Who holds a site's lease, as the bucket says."""

    node: str
    token: int


@dataclass(frozen=True)
class Lease:
    """A lease this node holds."""

    site: str
    node: str
    token: int  # the revision of the acquiring write: what commands carry
    revision: int  # the revision of the last write: what a renewal must name
    renewed_at: float  # clock time the last successful write was sent

    def expires_at(self, ttl_s: float) -> float:
        return self.renewed_at + ttl_s


def encode_record(node: str, token: int | None) -> bytes:
    return json.dumps({"node": node, "token": token}).encode()


def parse_record(value: bytes | None, revision: int) -> Holder:
    """The holder a bucket entry names; a first write's token is its own revision."""
    try:
        doc = json.loads(value or b"")
        node, token = doc["node"], doc["token"]
    except (ValueError, TypeError, KeyError) as exc:
        raise BadBusMessage(f"lease record at revision {revision} does not parse") from exc
    if not isinstance(node, str) or not (token is None or isinstance(token, int)):
        raise BadBusMessage(f"lease record at revision {revision}: bad node or token")
    return Holder(node=node, token=revision if token is None else token)


class SiteLeases:
    """The lease bucket as one node uses it."""

    def __init__(self, kv: KeyValue, node: str, *, clock: Clock = time.monotonic) -> None:
        self.kv = kv
        self.node = node
        self.clock = clock

    async def acquire(self, site: str) -> Lease | None:
        """The site's lease, or None while another node holds it."""
        sent = self.clock()
        with bus_errors(f"acquiring the lease of {site!r}"):
            try:
                rev = await self.kv.create(encode_id(site), encode_record(self.node, None))
            except nats.js.errors.KeyWrongLastSequenceError:
                return None
        return Lease(site=site, node=self.node, token=rev, revision=rev, renewed_at=sent)

    async def renew(self, lease: Lease) -> Lease:
        """The lease renewed; `LeaseLost` if the key moved on (taken, or expired).

        A renewal whose answer was lost (a timeout) may still have been written:
        the key then holds our own record at a later revision, which we renew
        from rather than give the site up for nothing.
        """
        key, record = encode_id(lease.site), encode_record(self.node, lease.token)
        with bus_errors(f"renewing the lease of {lease.site!r}"):
            for _ in range(2):
                sent = self.clock()
                try:
                    rev = await self.kv.update(key, record, last=lease.revision)
                    return replace(lease, revision=rev, renewed_at=sent)
                except nats.js.errors.KeyWrongLastSequenceError as exc:
                    lost = LeaseLost(lease.site, "taken by another node, or expired")
                    try:
                        entry = await self.kv.get(key)
                    except nats.js.errors.KeyNotFoundError:
                        raise lost from exc
                    ours = entry.value == record and (entry.revision or 0) > lease.revision
                    if not ours:
                        raise lost from exc
                    lease = replace(lease, revision=entry.revision or 0)
        raise LeaseLost(lease.site, "the key keeps moving under its holder")

    async def release(self, lease: Lease) -> None:
        """Give the lease up at once (a clean stop), unless it already moved on."""
        with bus_errors(f"releasing the lease of {lease.site!r}"):
            try:
                await self.kv.delete(encode_id(lease.site), last=lease.revision)
            except nats.js.errors.APIError as exc:
                log.info("lease of %r was no longer ours to release: %s", lease.site, exc)

    async def holder(self, site: str) -> Holder | None:
        with bus_errors(f"reading the lease of {site!r}"):
            try:
                entry = await self.kv.get(encode_id(site))
            except nats.js.errors.KeyNotFoundError:
                return None
        return parse_record(entry.value, entry.revision or 0)


class LeaseKeeper:
    """Holds, renews and takes over the leases of the sites a node may plan.

    `on_gained(lease)` runs when the node starts holding a site, `on_lost(site,
    why)` when it stops (taken, expired, not renewable within the TTL). Both
    are plain callables: start or stop the site's planning from them.
    """

    def __init__(
        self,
        leases: SiteLeases,
        sites: Iterable[str],
        settings: BusSettings,
        *,
        on_gained: Callable[[Lease], None] | None = None,
        on_lost: Callable[[str, str], None] | None = None,
    ) -> None:
        self.leases = leases
        self.sites = tuple(dict.fromkeys(sites))
        self.ttl = settings.lease_ttl_s
        self.renew_every = settings.lease_renew_s
        self.poll_every = settings.lease_poll_s
        self.on_gained = on_gained
        self.on_lost = on_lost
        self.held: dict[str, Lease] = {}
        self._next_poll = 0.0
        self._task: asyncio.Task[None] | None = None
        self._running = False

    def token(self, site: str) -> int | None:
        """The site's fencing token while this node holds its lease, else None."""
        lease = self.held.get(site)
        if lease is None or self.leases.clock() >= lease.expires_at(self.ttl):
            return None
        return lease.token

    def _lose(self, site: str, why: str) -> None:
        del self.held[site]
        log.log(
            logging.INFO if why == "stopped" else logging.WARNING,
            "no longer planning %r: %s",
            site,
            why,
        )
        if self.on_lost is not None:
            self.on_lost(site, why)

    async def _renew_due(self) -> None:
        for site, lease in list(self.held.items()):
            now = self.leases.clock()
            if now >= lease.expires_at(self.ttl):
                self._lose(site, "not renewed within its TTL")
            elif now - lease.renewed_at >= self.renew_every:
                try:
                    self.held[site] = await self.leases.renew(lease)
                except LeaseLost as exc:
                    self._lose(site, str(exc))
                except BusError as exc:  # try again next round, until the TTL is up
                    log.warning("%s", exc)

    async def _acquire_free(self) -> None:
        for site in self.sites:
            if site in self.held:
                continue
            try:
                lease = await self.leases.acquire(site)
            except BusError as exc:
                log.warning("%s", exc)
                return
            if lease is not None:
                self.held[site] = lease
                log.info("planning site %r (fencing token %d)", site, lease.token)
                if self.on_gained is not None:
                    self.on_gained(lease)

    async def step(self) -> float:
        """One round: renew what is due, take what is free; returns the next round's time."""
        await self._renew_due()
        if self.leases.clock() >= self._next_poll:
            self._next_poll = self.leases.clock() + self.poll_every
            await self._acquire_free()
        due = [self._next_poll]
        for lease in self.held.values():
            due += [lease.renewed_at + self.renew_every, lease.expires_at(self.ttl)]
        return min(due)

    async def run(self) -> None:
        self._running = True
        # the flag as well as the cancel: Python 3.11's wait_for (in nats-py) can swallow one
        while self._running:
            wake = await self.step()
            await asyncio.sleep(max(0.01, wake - self.leases.clock()))

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self.run(), name="lease-keeper")

    async def stop(self, *, release: bool = True) -> None:
        """Stop renewing; `release` gives the leases up at once for another node."""
        self._running = False
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        for site, lease in list(self.held.items()):
            if release:
                try:
                    await self.leases.release(lease)
                except BusUnavailable as exc:
                    log.warning("%s", exc)
            self._lose(site, "stopped")
