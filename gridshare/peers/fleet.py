"""Many simulated stations in one event loop, driven by connector name.

`StationFleet` owns the stations (`station.SimStation`), their shared simulated
clock, connection settings and counters (`wire.FleetStats`); tests and demos
plug EVs in and read what each connector draws and is offered through it.

Misbehaviour for tests (`specs.SimStationSpec`): ``never_answers_profiles``,
``rejects_profiles``, ``ignores_limits`` (with ``hides_ignoring``: its composite
schedule looks obeyed), ``power_unit_only``.
"""

from __future__ import annotations

import asyncio
import itertools
import ssl
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from gridshare.peers.ev import EvSpec
from gridshare.peers.specs import SimStationSpec, specs_from_site
from gridshare.peers.station import FrameTap, SimStation
from gridshare.peers.station_protocol import StationProtocol
from gridshare.peers.wire import FleetStats


class _SimClock:
    """Simulated UTC time running ``speed`` times faster than the wall clock."""

    def __init__(self, speed: float, start: datetime | None = None) -> None:
        self.speed = speed
        self.start = start or datetime.now(UTC)
        self.t0 = time.monotonic()

    def __call__(self) -> datetime:
        return self.start + timedelta(seconds=(time.monotonic() - self.t0) * self.speed)


class StationFleet:
    """Many simulated stations in one event loop.

    ``url`` is the central system's OCPP endpoint (``ws://host:port/ocpp``);
    each station connects to ``{url}/{station_id}``.
    """

    def __init__(
        self,
        url: str,
        stations: Sequence[SimStationSpec],
        *,
        clock: Callable[[], datetime] | None = None,
        speed: float = 1.0,
        connect_concurrency: int = 100,
        call_timeout_s: float = 30.0,
        ping_interval_s: float | None = None,
        open_timeout_s: float = 10.0,
        max_backoff_s: float = 30.0,
        server_ca: str | None = None,
    ) -> None:
        """``server_ca``: the certificate (PEM) that signed the central system's,
        for a ``wss://`` url (default: the system's trusted CAs)."""
        if speed <= 0:
            raise ValueError("speed must be > 0")
        ids = [s.id for s in stations]
        if len(set(ids)) != len(ids):
            raise ValueError("station ids repeat")
        self.url = url
        self.speed = speed
        self.clock: Callable[[], datetime] = clock or _SimClock(speed)
        self.call_timeout_s = call_timeout_s
        self.ping_interval_s = ping_interval_s
        self.open_timeout_s = open_timeout_s
        self.max_backoff_s = max_backoff_s
        self.stats = FleetStats()
        self.server_ca = server_ca
        self.frame_taps: list[FrameTap] = []
        """Called on every frame of every station: (station id, "in" or "out",
        frame), when read (before it is handled) and after it is written."""
        self._concurrency = connect_concurrency
        self.connect_slots = asyncio.Semaphore(connect_concurrency)
        self._jitter = itertools.cycle([i / 16 for i in range(16)])
        self.stations: dict[str, SimStation] = {s.id: SimStation(s, self) for s in stations}

    def tls_for(self, spec: SimStationSpec) -> ssl.SSLContext | None:
        """The station's TLS context on a ``wss://`` url (its certificate, if any)."""
        if not self.url.startswith("wss://"):
            return None
        ctx = ssl.create_default_context(cafile=self.server_ca)
        if spec.client_cert is not None and spec.client_key is not None:
            ctx.load_cert_chain(spec.client_cert, spec.client_key)
        return ctx

    def jitter(self) -> float:
        return next(self._jitter)

    async def start(self) -> None:
        """Start every station's task (connections open in waves of ``connect_concurrency``)."""
        for st in self.stations.values():
            if st.task is None:
                st.stopping = False
                st.task = asyncio.create_task(st.run(), name=f"station {st.spec.id}")

    async def wait_booted(self, timeout_s: float = 30.0) -> int:
        """Wait until every station booted (or the timeout); return how many did."""
        waits = [st.booted_event.wait() for st in self.stations.values()]
        try:
            async with asyncio.timeout(timeout_s):
                await asyncio.gather(*waits)
        except TimeoutError:
            pass
        return sum(1 for st in self.stations.values() if st.booted)

    async def stop(self, timeout_s: float = 10.0) -> None:
        """Close every connection (close handshake), then end the tasks."""
        for st in self.stations.values():
            st.stopping = True
        closing = [st.ws.close() for st in self.stations.values() if st.ws is not None]
        await asyncio.gather(*closing, return_exceptions=True)
        tasks = [st.task for st in self.stations.values() if st.task is not None]
        if tasks:
            # those still connecting or waiting to reconnect are cancelled
            _, pending = await asyncio.wait(tasks, timeout=min(timeout_s, 0.5))
            for t in pending:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        for st in self.stations.values():
            st.task = None

    async def __aenter__(self) -> StationFleet:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # --- per connector ------------------------------------------------------------

    def _find(self, connector_id: str) -> tuple[StationProtocol, int]:
        station_id, _, n = connector_id.rpartition("/")
        if station_id not in self.stations or not n.isdigit():
            raise KeyError(f"unknown connector {connector_id!r}")
        return self.stations[station_id].protocol, int(n)

    def station(self, station_id: str) -> SimStation:
        return self.stations[station_id]

    def plug_in(
        self,
        connector_id: str,
        ev: EvSpec,
        departure: datetime | None = None,
        energy_wh: float | None = None,
        id_tag: str = "SIMTAG",
    ) -> None:
        st, n = self._find(connector_id)
        st.plug_in(n, ev, departure=departure, energy_wh=energy_wh, id_tag=id_tag)

    def unplug(self, connector_id: str) -> None:
        st, n = self._find(connector_id)
        st.unplug(n)

    def set_ev_max_current(self, connector_id: str, amps: float) -> None:
        """The plugged-in EV now takes at most ``amps`` per phase (e.g. its BMS limits it)."""
        st, n = self._find(connector_id)
        c = st.connector(n)
        if c.ev is None:
            raise ValueError(f"{connector_id} has no EV")
        st.advance()  # the time so far at the old acceptance
        c.ev.spec = replace(c.ev.spec, max_current_a=amps)
        st.advance()

    def send_meter_values_now(self, connector_id: str) -> None:
        """Sample the connector now and queue its MeterValues as a periodic sample
        (sent only during a transaction, as periodic samples are)."""
        st, n = self._find(connector_id)
        st.connector(n)  # KeyError for a connector the station does not have
        st.send_samples(only=n)

    def limit_in_force(self, connector_id: str) -> float:
        """Per-phase current the station offers the connector now (A)."""
        st, n = self._find(connector_id)
        st.advance()
        return st.connector(n).limit_a

    def line_limits_in_force(self, connector_id: str) -> dict[str, float]:
        """The limit in force on each line the connector is wired to (A): the same
        figure on each, except where a 2.1 profile gives per-phase limits."""
        st, n = self._find(connector_id)
        st.advance()
        c = st.connector(n)
        limits = st.bank.phase_limits_at(c, st.clock())
        return dict(zip(c.spec.phases, limits, strict=True))

    def draw(self, connector_id: str) -> dict[str, float]:
        """Current drawn now per line (A)."""
        st, n = self._find(connector_id)
        st.advance()
        return st.connector(n).draw()

    def energy_wh(self, connector_id: str) -> float:
        """The connector's energy register (Wh, only grows)."""
        st, n = self._find(connector_id)
        st.advance()
        return st.connector(n).energy_wh

    def soc(self, connector_id: str) -> float | None:
        st, n = self._find(connector_id)
        st.advance()
        ev = st.connector(n).ev
        return None if ev is None else ev.soc

    def status(self, connector_id: str) -> str:
        st, n = self._find(connector_id)
        st.advance()
        return st.status(st.connector(n))

    def transaction_id(self, connector_id: str) -> str | None:
        st, n = self._find(connector_id)
        return st.connector(n).tx_id if st.connector(n).in_tx else None

    def composite_schedule(
        self, connector_id: str, duration_s: int, unit: str = "A"
    ) -> tuple[datetime, list[dict[str, Any]]]:
        st, n = self._find(connector_id)
        return st.bank.composite_schedule(n, duration_s, unit)

    def latency_summary(self) -> dict[str, float | None]:
        s = self.stats
        return {"p50_s": s.percentile_s(50), "p99_s": s.percentile_s(99)}


def fleet_from_site(
    site: Any,
    url: str,
    *,
    version: str = "1.6",
    passwords: Mapping[str, str] | None = None,
    clock: Callable[[], datetime] | None = None,
    speed: float = 1.0,
    **options: Any,
) -> StationFleet:
    """A fleet with one simulated station per charger of the site."""
    specs = specs_from_site(site, version=version, passwords=passwords, **options)
    return StationFleet(url, specs, clock=clock, speed=speed)
