"""Ideal models: the setting of the ACN paper's comparison with the offline optimum.

The realistic simulation (the default) shows the planner what it would see
live: the driver's stated departure and energy (or nothing, then the service's
defaults), stations that take only their allowed pilot steps (0 or 6-32 A in
whole amperes at the ACN sites) and cars whose current tapers off before full.
The offline optimum knows the real departures and needs in every mode, so in
that mode the gap between an online strategy and the optimum mixes what the
algorithm loses with what the missing information and the hardware cost.

With ideal models (Lee et al., "Adaptive Charging Networks", IEEE TSG 2021,
the "ideal" rows of their table) every session states its real departure and
its real energy at arrival, pilots are continuous from 0 A to the station's
maximum (no allowed steps, no minimum current) and batteries are ideal (no
taper): what is left between an online strategy and the offline optimum is the
algorithm's own loss from not knowing future arrivals.
"""

from __future__ import annotations

from collections.abc import Iterable

from gridshare.simulation.engine import CarModel
from gridshare.simulation.information import told
from gridshare.simulation.sessions import SimSession
from optimizer import Site

IDEAL_CAR = CarModel(taper_kwh=0.0)
"""An ideal battery: draws what it is offered, up to its maximum, until full."""


def ideal_site(site: Site) -> Site:
    """The site with continuous pilots: no allowed steps, no minimum current."""
    data = site.model_dump()
    for ch in data["chargers"]:
        for con in ch["connectors"]:
            con["allowed_currents_a"] = None
            con["min_current_a"] = 0.0
    return Site.model_validate(data)


def ideal_sessions(sessions: Iterable[SimSession]) -> list[SimSession]:
    """Every session states its real departure and real energy at arrival (call
    it on sessions already snapped to the step grid, so the stated departure is
    the simulated one)."""
    return told(sessions, departures="real", energies="real")
