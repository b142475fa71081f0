"""The NATS connection and the two JetStream resources the cluster uses.

nats-py's errors enter the application here: `bus_errors()` turns a timeout
or a lost connection into `BusUnavailable` and an API refusal into `BusError`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from contextlib import contextmanager

import nats
import nats.errors
import nats.js.errors
from nats.aio.client import Client
from nats.js import JetStreamContext
from nats.js.api import DiscardPolicy, RetentionPolicy, StorageType, StreamConfig
from nats.js.kv import KeyValue

from gridshare.cluster.errors import BusConfigError, BusError, BusUnavailable
from gridshare.cluster.names import Subjects
from gridshare.cluster.settings import BusSettings

log = logging.getLogger(__name__)


@contextmanager
def bus_errors(what: str) -> Iterator[None]:
    """Translate nats-py's errors met while doing `what`."""
    try:
        yield
    except (nats.errors.TimeoutError, TimeoutError) as exc:
        raise BusUnavailable(f"{what}: NATS did not answer in time") from exc
    except (
        nats.errors.ConnectionClosedError,
        nats.errors.NoServersError,
        nats.errors.StaleConnectionError,
        nats.js.errors.NoStreamResponseError,
        nats.js.errors.ServiceUnavailableError,
        OSError,
    ) as exc:
        raise BusUnavailable(f"{what}: {exc}") from exc
    except nats.js.errors.APIError as exc:
        raise BusError(f"{what}: JetStream refused ({exc.code} {exc.description})") from exc


async def connect(settings: BusSettings, name: str) -> Client:
    """A connection that, once made, reconnects by itself for as long as it takes
    (the node's leases lapse meanwhile); the first attempt gives up after
    twice `request_timeout_s` with one clear error."""

    async def on_error(exc: Exception) -> None:
        log.warning("bus connection %s: %s", name, exc)

    wait = 2 * settings.request_timeout_s
    try:
        return await asyncio.wait_for(
            nats.connect(
                settings.url,
                name=name,
                connect_timeout=settings.request_timeout_s,
                max_reconnect_attempts=-1,  # and so retries the first connection too
                reconnect_time_wait=0.5,
                error_cb=on_error,
            ),
            wait,
        )
    except TimeoutError as exc:
        raise BusUnavailable(f"cannot reach NATS at {settings.url} within {wait:g} s") from exc
    except (nats.errors.NoServersError, OSError) as exc:
        raise BusUnavailable(f"cannot reach NATS at {settings.url}: {exc}") from exc


def _storage(settings: BusSettings) -> StorageType:
    return StorageType.FILE if settings.file_storage else StorageType.MEMORY


async def events_stream(js: JetStreamContext, settings: BusSettings) -> None:
    """The stream of station events, created if missing.

    A work queue: an event stays until the planner of its site acked it (one
    durable consumer per site, their subjects apart), however long that takes,
    and leaves once it has, so the stream holds what is not written through yet.
    """
    subject = Subjects(settings.prefix).all_events()
    with bus_errors(f"stream {settings.stream}"):
        try:
            info = await js.stream_info(settings.stream)
        except nats.js.errors.NotFoundError:
            await js.add_stream(
                StreamConfig(
                    name=settings.stream,
                    subjects=[subject],
                    retention=RetentionPolicy.WORK_QUEUE,
                    discard=DiscardPolicy.OLD,
                    storage=_storage(settings),
                    duplicate_window=settings.duplicate_window_s,
                )
            )
            return
    if subject not in (info.config.subjects or []):
        raise BusConfigError(
            f"stream {settings.stream} exists without subject {subject} "
            f"(it has {info.config.subjects}): another deployment's? choose another name"
        )


async def lease_bucket(js: JetStreamContext, settings: BusSettings) -> KeyValue:
    """The key-value bucket of site leases (TTL = the lease's), created if missing."""
    with bus_errors(f"bucket {settings.bucket}"):
        try:
            kv = await js.key_value(settings.bucket)
        except nats.js.errors.BucketNotFoundError:
            return await js.create_key_value(
                bucket=settings.bucket,
                ttl=settings.lease_ttl_s,
                history=1,
                storage=_storage(settings),
            )
        ttl = (await kv.status()).ttl
    # the bucket's TTL is what ends a dead planner's lease: every node must agree on it
    if ttl is None or abs(ttl - settings.lease_ttl_s) > 1e-3:
        raise BusConfigError(
            f"bucket {settings.bucket} has a TTL of {ttl} s, not lease_ttl_s = "
            f"{settings.lease_ttl_s} s: every node must use the same lease TTL"
        )
    return kv
