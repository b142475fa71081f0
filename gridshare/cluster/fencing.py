"""The gateway's side of fencing: the newest token seen per site.

A command is admitted only if its token is at least the newest the gateway
has seen for the site, from commands or from the lease bucket itself
(`watch_leases`): a planner that lost its site, and does not know it yet, is
refused as soon as the gateway has heard of its successor.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

import nats.errors
from nats.js.kv import KeyValue

from gridshare.cluster.errors import BadBusMessage, StaleFencingToken
from gridshare.cluster.lease import parse_record
from gridshare.cluster.names import decode_id

log = logging.getLogger(__name__)


class FencingBook:
    """Site → the newest fencing token seen. Plain code: no I/O."""

    def __init__(self) -> None:
        self._newest: dict[str, int] = {}

    def newest(self, site: str) -> int | None:
        return self._newest.get(site)

    def observe(self, site: str, token: int) -> None:
        if token > self._newest.get(site, -1):
            self._newest[site] = token

    def admit(self, site: str, token: int) -> None:
        """Accept a command's token (remembering it) or raise `StaleFencingToken`."""
        newest = self._newest.get(site)
        if newest is not None and token < newest:
            raise StaleFencingToken(
                f"fencing token {token} for site {site!r} is older than {newest}: "
                "the sender no longer plans this site"
            )
        self.observe(site, token)


async def watch_leases(kv: KeyValue, book: FencingBook, ready: asyncio.Event | None = None) -> None:
    """Feed every lease written to the bucket into `book`, until cancelled.

    `ready` is set once the leases already in the bucket are read.
    """
    watcher = await kv.watchall()
    try:
        # iterated, not `updates(timeout)`: Python 3.11's wait_for can swallow a cancel
        async for entry in watcher:
            if entry is None:  # the bucket's current leases are all read
                if ready is not None:
                    ready.set()
                continue
            if entry.operation is not None:  # a release (delete marker)
                continue
            try:
                holder = parse_record(entry.value, entry.revision)
                book.observe(decode_id(entry.key), holder.token)
            except BadBusMessage as exc:  # one bad record is reported, not fatal
                log.warning("lease bucket: %s", exc)
    finally:
        with contextlib.suppress(nats.errors.Error):
            await watcher.stop()
