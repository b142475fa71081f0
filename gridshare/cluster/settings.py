"""The bus's settings, read once at the edge and checked here."""

from __future__ import annotations

import re
from dataclasses import dataclass

from gridshare.cluster.errors import BusConfigError

_PREFIX = re.compile(r"^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$")
_NAME = re.compile(r"^[A-Za-z0-9_-]+$")


@dataclass(frozen=True)
class BusSettings:
    """Where NATS is and the names and timings the cluster's nodes share.

    Every node of a deployment must use the same names and lease timings.
    A site's planner is taken over within `lease_ttl_s + lease_poll_s` of its
    last renewal; it renews every `lease_renew_s` and gives the site up itself
    once `lease_ttl_s` has passed since it sent its last successful renewal.
    """

    url: str = "nats://127.0.0.1:4222"
    prefix: str = "gs"  # subjects <prefix>.ev.<site>.<station> and <prefix>.cmd.<station>
    stream: str = "GRIDSHARE_EVENTS"
    bucket: str = "gridshare_leases"
    file_storage: bool = True  # the events and leases survive a NATS restart
    lease_ttl_s: float = 6.0
    lease_renew_s: float = 2.0
    lease_poll_s: float = 1.0
    ack_wait_s: float = 30.0  # an event not acked within this is delivered again
    redeliver_delay_s: float = 1.0  # after a write-through that failed
    duplicate_window_s: float = 120.0  # a message id seen within this is dropped
    request_timeout_s: float = 5.0  # publish acks, lease writes, JetStream API calls
    # a command's answer: above the adapter's own wait for a station (10 s × 2 attempts)
    command_timeout_s: float = 25.0

    def __post_init__(self) -> None:
        if not self.url.startswith(("nats://", "tls://", "ws://", "wss://")):
            raise BusConfigError(f"bus url {self.url!r}: expected nats://host:port")
        if not _PREFIX.match(self.prefix):
            raise BusConfigError(f"bus prefix {self.prefix!r}: letters, digits, _ and - only")
        for what, name in (("stream", self.stream), ("bucket", self.bucket)):
            if not _NAME.match(name):
                raise BusConfigError(f"bus {what} {name!r}: letters, digits, _ and - only")
        for what, value in (
            ("lease_ttl_s", self.lease_ttl_s),
            ("lease_renew_s", self.lease_renew_s),
            ("lease_poll_s", self.lease_poll_s),
            ("ack_wait_s", self.ack_wait_s),
            ("duplicate_window_s", self.duplicate_window_s),
            ("request_timeout_s", self.request_timeout_s),
            ("command_timeout_s", self.command_timeout_s),
        ):
            if not value > 0:
                raise BusConfigError(f"bus {what} must be positive, got {value}")
        if self.redeliver_delay_s < 0:
            raise BusConfigError("bus redeliver_delay_s cannot be negative")
        # two renewals must fit in a lease's life, or one slow answer loses it
        if self.lease_renew_s * 2 > self.lease_ttl_s:
            raise BusConfigError(
                f"bus lease_renew_s ({self.lease_renew_s}) must be at most half of "
                f"lease_ttl_s ({self.lease_ttl_s})"
            )
