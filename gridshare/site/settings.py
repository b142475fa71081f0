"""How a site is run: the settings of its planning, rollouts and fallbacks."""

from __future__ import annotations

from dataclasses import dataclass, field

from forecasts.demand import RateSettings
from gridshare.site.charge_modes import ChargeModes


@dataclass(frozen=True)
class ControllerSettings:
    coalesce_s: float = 0.02
    """Wait this long after the first event of a burst before planning."""
    replan_interval_s: float = 60.0
    """Periodic re-plan (besides every slot boundary)."""
    pin_s: float = 60.0
    """How long a station that refused or did not answer is left alone."""
    min_change_a: float = 1.0
    """Hysteresis: smaller changes of a limit are not sent."""
    rates: RateSettings = field(default_factory=RateSettings)
    """How meter values teach what each car takes (the simulator's rules too)."""
    learn_settle_s: float = 10.0
    """Readings this soon after a limit change or a session start are not used to
    learn: a car has 5 s to follow a new pilot (IEC 61851-1) and ramps over a
    few more, so an earlier reading shows the ramp, not what the car takes."""
    solve_time_limit_s: float = 5.0
    answer_timeout_s: float = 15.0
    """A station that has not answered a profile by then counts as not answering
    (the rollout goes on; what it may have taken stays reserved)."""
    fallback_on_boot: bool = True
    reserve_for_arrivals: bool = True
    """Reserve every idle connector's fallback (TxDefault) limit: a car that plugs
    in draws it before the next plan reaches it, so without the reserve the sum
    of limits in force can exceed a group's capacity for that moment. Off: more
    capacity for the cars already charging, at that risk."""
    charge_modes: ChargeModes = field(default_factory=ChargeModes)
    """The mode a session starts in, by idTag (``[charge_modes]``)."""
    max_periods: int | None = None
