"""The demo's building: a simulated Modbus TCP meter on the grid connection.

An office behind the depot's connection: a low load at night, more by day,
and once during the demo a spike (a kitchen, a heat pump starting) to
``SPIKE`` of the connection's limit. The meter (`gridshare.peers.modbus_meter`,
Eastron SDM630 registers) shows what a real connection meter would: the
building plus every car's draw, per line. The service reads it over Modbus TCP
like any site's meter; the chargers step down on its reading at once, then
the planner re-plans.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from gridshare.config import GridshareConfig
from gridshare.meters.config import MeterConfig
from gridshare.peers.fleet import StationFleet
from gridshare.peers.modbus_meter import SimulatedMeter
from optimizer.site import Site

NIGHT, DAY, SPIKE = 0.08, 0.2, 0.45
"""Building load per line, as a share of the connection's limit."""
WORST = 0.5
"""``max_non_ev_a``: what the demo's building may draw at most."""
POLL_S = 0.5
SETTLE_S = 2.0


def building_share(at: datetime, spiking: bool) -> float:
    if spiking:
        return SPIKE
    return DAY if 7 <= at.hour < 19 else NIGHT


def with_meter(config: GridshareConfig, port: int, speed: float) -> GridshareConfig:
    """The demo's config with a connection meter on the root group (staleness
    in simulated seconds: the service runs on the demo's clock)."""
    root = config.site.root
    limit = root.limit_a or 0.0
    meter = MeterConfig.model_validate(
        {
            "id": "building",
            "group": root.id,
            "measures": "connection",
            "interval_s": POLL_S,
            "stale_after_s": max(10.0, 5 * POLL_S * speed),
            "max_non_ev_a": round(WORST * limit, 1),
            "source": {"type": "modbus", "host": "127.0.0.1", "port": port},
        }
    )
    return config.model_copy(update={"meters": (meter,)})


@dataclass
class DemoBuilding:
    site: Site
    meter: SimulatedMeter
    spike_at_s: float
    """Real seconds after the start when the building spikes."""
    spike_s: float
    load: dict[str, float] = field(default_factory=dict)
    worst_excess_a: float = 0.0
    """The largest excess of limits in force + building over the limit, more than
    `SETTLE_S` after the building changed (before: the meter's poll and the
    lowering on their way)."""
    stepped_down_s: float | None = None
    """Real seconds from the spike to the limits in force fitting next to it."""
    lowered: int = 0
    """Fast-path lowerings the service made (read when the feeding stops)."""
    lines_of: Callable[[str], tuple[str, ...]] | None = None
    """The site lines a connector's limit loads (a one-phase car's: one); None:
    every line it is wired to."""
    _task: asyncio.Task[None] | None = None
    _lowerings: Callable[[], int] | None = None

    @classmethod
    async def start(cls, site: Site, duration_s: float) -> DemoBuilding:
        meter = SimulatedMeter(voltage_v=site.site.voltage_v)
        await meter.start()
        return cls(site, meter, spike_at_s=0.82 * duration_s, spike_s=0.1 * duration_s)

    def follow(
        self,
        fleet: StationFleet,
        clock: Callable[[], datetime],
        t0: float,
        lowerings: Callable[[], int],
    ) -> None:
        """Draw the building on the meter from now on; ``lowerings``: how many
        fast-path lowerings the service made so far."""
        self._lowerings = lowerings
        # the summary counts them: as log lines they would scroll the live view away
        logging.getLogger("gridshare.meters.safety").setLevel(logging.ERROR)
        self._task = asyncio.get_running_loop().create_task(self._feed(fleet, clock, t0))

    async def _feed(self, fleet: StationFleet, clock: Callable[[], datetime], t0: float) -> None:
        limit = self.site.root.limit_a or 0.0
        conns = self.site.connectors
        spike_started: float | None = None
        changed = time.monotonic()
        while True:
            real = time.monotonic() - t0
            spiking = self.spike_at_s <= real < self.spike_at_s + self.spike_s
            if spiking and spike_started is None:
                spike_started = time.monotonic()
            share = building_share(clock(), spiking)
            load = dict.fromkeys(("L1", "L2", "L3"), round(share * limit, 1))
            if load != self.load:
                self.load, changed = load, time.monotonic()
            total = dict(self.load)
            in_force = dict.fromkeys(total, 0.0)
            for cid, info in conns.items():
                limit_a = fleet.limit_in_force(cid)
                for i, amps in enumerate(fleet.draw(cid).values()):
                    if i < len(info.lines):
                        total[info.lines[i].value] += amps
                lines = self.lines_of(cid) if self.lines_of else [x.value for x in info.lines]
                for line in lines:
                    in_force[line] += limit_a
            self.meter.set_currents(total)
            excess = max(in_force[k] + self.load[k] for k in total) - limit
            if time.monotonic() - changed > SETTLE_S:
                self.worst_excess_a = max(self.worst_excess_a, excess)
            if spike_started is not None and self.stepped_down_s is None and excess <= 1e-6:
                self.stepped_down_s = time.monotonic() - spike_started
            await asyncio.sleep(0.05)

    async def stop_feeding(self) -> None:
        """Stop drawing the building (before the stations go: not a state to measure)."""
        if self._lowerings is not None:
            self.lowered = self._lowerings()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def stop(self) -> None:
        await self.stop_feeding()
        await self.meter.stop()

    def summary(self) -> str:
        stepped = (
            f"the chargers fitted next to it {self.stepped_down_s:.2f} s after it began"
            if self.stepped_down_s is not None
            else "the demo ended before it"
        )
        return (
            f"building (Modbus meter): spiked to {SPIKE:.0%} of the connection; {stepped}; "
            f"chargers lowered at once on a reading {self.lowered} time(s); "
            f"largest excess of limits in force + building over the connection "
            f"({SETTLE_S:g} s after a change): {max(0.0, self.worst_excess_a):.1f} A"
        )
