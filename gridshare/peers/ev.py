"""A plugged-in EV: battery, acceptance curve and the lag of its onboard charger.

Pure: the caller advances it by a time step with the limit offered during it.
The car draws toward min(offered limit, its max current, its taper), following
a first-order lag; below its minimum current (IEC 61851: 6 A) it pauses; at the
target SoC it stops (the station reports SuspendedEV).
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class EvSpec:
    battery_kwh: float = 60.0
    soc_start: float = 0.3
    soc_target: float = 1.0
    max_current_a: float = 32.0
    min_current_a: float = 6.0
    phases: int = 3
    """Phases the onboard charger can use (1 or 3)."""
    taper_from_soc: float = 0.8
    """Above this SoC the acceptance falls linearly to the minimum current at 100 %."""
    lag_s: float = 3.0
    """Time constant of the draw following its target."""
    max_discharge_a: float = 0.0
    """Above 0: bidirectional (ISO 15118-20 BPT), fed back at up to this per phase
    under a 2.1 CentralSetpoint (`gridshare.peers.v2x`)."""
    v2x_min_soc: float = 0.2
    """The lowest state of charge its driver allows it to be discharged to."""

    def __post_init__(self) -> None:
        if self.phases not in (1, 2, 3):
            raise ValueError("phases must be 1, 2 or 3")
        if not 0 <= self.soc_start <= 1 or not 0 < self.soc_target <= 1:
            raise ValueError("SoC values are fractions in [0, 1]")
        if self.battery_kwh <= 0 or self.max_current_a <= 0 or self.lag_s < 0:
            raise ValueError("battery_kwh and max_current_a must be > 0, lag_s >= 0")


# Longest step integrated at once: the taper changes with SoC, so long steps are cut.
MAX_STEP_S = 5.0


@dataclass
class Ev:
    spec: EvSpec
    soc: float
    current_a: float = 0.0
    """Per-phase current drawn now."""

    @classmethod
    def plugged(cls, spec: EvSpec) -> Ev:
        return cls(spec=spec, soc=spec.soc_start)

    @property
    def full(self) -> bool:
        return self.soc >= self.spec.soc_target - 1e-9

    def acceptance_a(self) -> float:
        """What the car would take now with no limit (per phase)."""
        s = self.spec
        if self.full:
            return 0.0
        if self.soc <= s.taper_from_soc or s.taper_from_soc >= 1:
            return s.max_current_a
        frac = (self.soc - s.taper_from_soc) / (1.0 - s.taper_from_soc)
        return max(s.min_current_a, s.max_current_a - (s.max_current_a - s.min_current_a) * frac)

    def target_a(self, limit_a: float) -> float:
        t = min(limit_a, self.acceptance_a())
        return 0.0 if t < self.spec.min_current_a - 1e-9 else t

    def step(self, dt_s: float, limit_a: float, volts_x_phases: float) -> float:
        """Advance dt_s seconds at the given limit; return the energy drawn (Wh).

        ``volts_x_phases`` is the voltage times the number of phases in use.
        """
        energy = 0.0
        left = dt_s
        while left > 1e-9:
            dt = min(left, MAX_STEP_S)
            left -= dt
            target = self.target_a(limit_a)
            c0 = self.current_a
            if self.spec.lag_s > 0:
                decay = math.exp(-dt / self.spec.lag_s)
                c1 = target + (c0 - target) * decay
                # exact integral of the exponential approach over dt
                amp_s = target * dt + (c0 - target) * self.spec.lag_s * (1.0 - decay)
            else:
                c1 = target
                amp_s = target * dt
            wh = max(amp_s, 0.0) * volts_x_phases / 3600.0
            room_wh = max(self.spec.soc_target - self.soc, 0.0) * self.spec.battery_kwh * 1000.0
            if wh >= room_wh:
                wh = room_wh
                c1 = 0.0
            self.soc = min(self.soc + wh / (self.spec.battery_kwh * 1000.0), 1.0)
            self.current_a = c1
            energy += wh
            if self.full:
                self.current_a = 0.0
        return energy
