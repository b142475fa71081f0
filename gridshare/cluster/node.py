"""One node of a cluster on the bus: the entry point the service would start with `--bus`.

A node may hold stations (gateway) and plan sites (planner); the same object
does both, so every node can run the same command. What it needs from the
rest of the application comes in `NodeHooks`, and nothing here reaches into
the service:

- as a gateway: `accept(event)` before answering a station's message (the
  event is then durable in JetStream), `station_connected` and
  `station_disconnected` as sockets come and go, and the local central
  system's `LimitCommands` to run the commands planners send;
- as a planner: `on_planning(site, limits)` when this node takes a site
  (`limits` is the rollout's `LimitCommands` over the bus, fenced by the
  site's token), `on_stopped(site)` when it loses it; the site's events go
  to `write_through(site)`'s handler, acked after it returns.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import nats.errors
from nats.aio.client import Client

from gridshare.cluster.commands import CommandClient, CommandGateway
from gridshare.cluster.connection import connect, events_stream, lease_bucket
from gridshare.cluster.errors import CommandRefused
from gridshare.cluster.events import (
    EventPublisher,
    Handler,
    Published,
    SiteEventConsumer,
    StationEvent,
)
from gridshare.cluster.fencing import watch_leases
from gridshare.cluster.lease import Lease, LeaseKeeper, SiteLeases
from gridshare.cluster.limits import FencedLimits, limit_executor
from gridshare.cluster.settings import BusSettings
from ocpp_adapter.ports import LimitCommands

log = logging.getLogger(__name__)


def _nothing(*_: object) -> None:
    return None


@dataclass
class NodeHooks:
    """What the application gives a node."""

    write_through: Callable[[str], Handler]  # site → the handler of its events
    local_limits: LimitCommands | None = None  # this node's central system, if it holds stations
    on_planning: Callable[[str, FencedLimits], None] = _nothing
    on_stopped: Callable[[str], None] = _nothing


class ClusterNode:
    """A gateway and a planner on the bus; `sites` are those this node may plan."""

    def __init__(
        self, settings: BusSettings, node_id: str, sites: Iterable[str], hooks: NodeHooks
    ) -> None:
        self.settings = settings
        self.node_id = node_id
        self.sites = tuple(sites)
        self.hooks = hooks
        self.consumers: dict[str, tuple[SiteEventConsumer, asyncio.Task[None]]] = {}
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        self.nc: Client = await connect(self.settings, self.node_id)
        js = self.nc.jetstream(timeout=self.settings.request_timeout_s)
        await events_stream(js, self.settings)
        kv = await lease_bucket(js, self.settings)
        self.publisher = EventPublisher(js, self.settings)
        self.client = CommandClient(self.nc, self.settings)
        local = self.hooks.local_limits
        self.gateway = CommandGateway(
            self.nc, self.settings, limit_executor(local) if local is not None else _refuse_all
        )
        ready = asyncio.Event()
        self._tasks.append(asyncio.create_task(watch_leases(kv, self.gateway.book, ready)))
        await asyncio.wait_for(ready.wait(), self.settings.request_timeout_s)
        self.keeper = LeaseKeeper(
            SiteLeases(kv, self.node_id),
            self.sites,
            self.settings,
            on_gained=self._gained,
            on_lost=self._lost,
        )
        self.keeper.start()

    def planning(self) -> set[str]:
        return {s for s in self.keeper.held if self.keeper.token(s) is not None}

    async def accept(self, event: StationEvent) -> Published:
        """Make a station's event durable; answer the station only after this returns."""
        return await self.publisher.publish(event)

    async def station_connected(self, station: str, site: str) -> None:
        await self.gateway.hold(station, site)

    async def station_disconnected(self, station: str) -> None:
        await self.gateway.release(station)

    def _gained(self, lease: Lease) -> None:
        site = lease.site
        js = self.nc.jetstream(timeout=self.settings.request_timeout_s)
        consumer = SiteEventConsumer(js, self.settings, site, self.hooks.write_through(site))
        task = asyncio.create_task(consumer.run(), name=f"events-{site}")
        self.consumers[site] = (consumer, task)
        self.hooks.on_planning(
            site, FencedLimits(self.client, site, lambda: self.keeper.token(site))
        )

    def _lost(self, site: str, why: str) -> None:
        held = self.consumers.pop(site, None)
        if held is not None:  # unacked events stay in JetStream for the next planner
            held[0].stop()
            held[1].cancel()
            self._tasks.append(held[1])  # awaited by stop()
        self.hooks.on_stopped(site)

    async def stop(self, *, release: bool = True) -> None:
        """Stop; `release=False` leaves the leases to expire, as a crash would."""
        await self.keeper.stop(release=release)  # stops the consumers too (on_lost)
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.gateway.close()
        with contextlib.suppress(nats.errors.Error):
            await self.nc.close()


async def _refuse_all(station: str, action: str, payload: dict[str, Any]) -> dict[str, Any]:
    raise CommandRefused(f"this node holds no stations ({action} to {station!r})", "NoStations")
