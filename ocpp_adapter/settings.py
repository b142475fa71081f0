"""What the central system is told by whoever runs it: where to listen, whom to
let in, and how patient to be. Read once by the application from its own
configuration; nothing in the adapter reads that configuration."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

DEFAULT_HEARTBEAT_INTERVAL_S = 300
"""Seconds between a station's Heartbeats, as the BootNotification answer tells it."""

DEFAULT_METER_INTERVAL_S = 10
"""Seconds between a station's meter values during a transaction, unless configured."""


@dataclass(frozen=True)
class ServerSettings:
    """Where the central system listens and which stations and id tags it accepts."""

    host: str = "127.0.0.1"
    port: int = 9000
    """0 picks a free port (`CentralSystem.port` then tells which)."""
    known_stations: frozenset[str] = frozenset()
    """Station ids that may connect; others get HTTP 404 unless ``allow_unknown_stations``."""
    allow_unknown_stations: bool = False
    station_passwords: Mapping[str, str] = field(default_factory=dict)
    """Station id → HTTP Basic password (security profiles 1 and 2). Once any is
    set, every station must send one."""
    tls_cert: Path | None = None
    tls_key: Path | None = None
    tls_client_ca: Path | None = None
    """Security profile 3: stations present a certificate signed by this CA."""
    authorize_id_tags: frozenset[str] | None = None
    """None accepts every idTag."""


@dataclass(frozen=True)
class AdapterSettings:
    call_timeout_s: float = 10.0
    """Per attempt. A station that does not answer holds its own queue this long
    (× 1 + ``call_retries``); keep it below the caller's own command timeout."""
    call_retries: int = 1
    """Resends after a timeout, for idempotent commands (profiles, reads)."""
    boot_wait_s: float = 60.0
    """How long a command waits for a connected station to finish booting."""
    max_queued_calls: int = 32
    """Commands waiting per station (for boot or for the CALL before them)."""
    heartbeat_interval_s: int = DEFAULT_HEARTBEAT_INTERVAL_S
    meter_interval_s: int | None = DEFAULT_METER_INTERVAL_S
    ping_interval_s: float | None = 60.0
    ping_timeout_s: float | None = 30.0
    max_frame_bytes: int = 256 * 1024
    bad_frame_limit: int = 20
    """Invalid frames a station may send within ``bad_frame_window_s`` before we close it."""
    bad_frame_window_s: float = 60.0
    max_inbound_calls: int = 8
    """CALLs a station may have waiting for our answer (the spec allows one)."""
    validate_replies: bool = False
    """Check our own CALLRESULT payloads against the schemas (tests)."""
    backdate_s: float = 5.0
    offline_profile_s: int | None = 300
    """2.1: ``maxOfflineDuration`` of a TxProfile; after this long offline the station
    uses its TxDefault (`ocpp_adapter.profiles.OfflinePolicy`). None: no bound."""
    randomized_delay_s: int = 30
    """2.1: ``randomizedDelay`` on schedules that only go up (0: none)."""
    dynamic_profiles: bool = True
    """2.1: a transaction's limit as one Dynamic profile, re-plans as
    UpdateDynamicSchedule (`ocpp_adapter.dynamic`). Needs ``offline_profile_s``;
    a station that refuses one gets Absolute profiles."""
    dyn_update_interval_s: int = 60
    """2.1: ``dynUpdateInterval``: how often a station pulls its dynamic limit."""
    default_max_periods: int = 24
    rate_limit_backoff_s: float = 60.0
    gc_freeze_interval_s: float | None = 1.0
    """Collect the young generation, then move every object the GC tracks into
    its permanent generation (`gc.freeze`), this often. Frozen objects are never
    scanned and are still freed when their last reference goes. Thousands of
    connections are ~200 tracked objects each, and after every message ~30 new
    ones (websockets' pending read, our worker's wait) live a whole meter
    interval: generational collection promotes those, and full collections then
    rescan everything, stalling the loop for long at thousands of stations. Handling
    a message leaves no cyclic garbage, and cycles that die young are collected
    before each freeze. None leaves the collector alone. Process-wide (the whole
    service), see `ocpp_adapter.gc_keeper`."""
    gc_threshold0: int | None = 10_000
    """Generation-0 threshold while running (CPython's default: 700): between
    freezes young collections are then rare, and each is still short. None keeps
    the interpreter's thresholds."""
    gc_full_collect_s: float = 3600.0
    """Unfreeze and collect everything this often, so cycles that became garbage
    after being frozen are freed: one longer pause per interval."""
    gc_full_collect_closed: int = 1000
    """... or once this many connections closed since the last such collection:
    a closed connection's objects are reference cycles inside ``websockets`` and
    ``asyncio``, frozen while it was open."""
    gc_freeze_settle_s: float = 2.0
    """That collection waits until no connection came or went for this long, so
    a reconnect wave costs one pause, not one per batch of closes."""
    first_transaction_id: int | None = None
    """First 1.6 transaction id without a ``transaction_ids`` source (default: the
    clock's Unix seconds)."""
    tls_handshake_timeout_s: float = 10.0
