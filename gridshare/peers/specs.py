"""What a simulated station is: its connectors, OCPP version, credentials and
the misbehaviour tests ask of it; built by hand, from a site, or in bulk."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

SUBPROTOCOL: dict[str, str] = {"1.6": "ocpp1.6", "2.0.1": "ocpp2.0.1", "2.1": "ocpp2.1"}


@dataclass(frozen=True)
class SimConnectorSpec:
    id: int
    max_current_a: float = 32.0
    min_current_a: float = 6.0
    phases: tuple[str, ...] = ("L1", "L2", "L3")
    voltage_v: float = 230.0


@dataclass(frozen=True)
class SimStationSpec:
    id: str
    connectors: tuple[SimConnectorSpec, ...] = (SimConnectorSpec(1),)
    version: str = "1.6"
    password: str | None = None
    client_cert: str | None = None
    """Certificate (PEM) the station presents over wss (security profile 3), with
    ``client_key``."""
    client_key: str | None = None
    vendor: str = "gridshare"
    model: str = "SimStation"
    meter_interval_s: float = 60.0
    """Simulated seconds between meter samples until the server configures it."""
    max_stack_level: int = 8
    max_periods: int = 48
    power_unit_only: bool = False
    """Accept only W profiles (some DC and older AC stations)."""
    never_answers_profiles: bool = False
    rejects_profiles: bool = False
    ignores_limits: bool = False
    """Accept profiles, then let the car draw its maximum anyway."""
    hides_ignoring: bool = False
    """With ``ignores_limits``: GetCompositeSchedule shows the profiles as if followed
    (only the meter tells)."""

    def __post_init__(self) -> None:
        if self.version not in SUBPROTOCOL:
            raise ValueError(f"version must be one of {sorted(SUBPROTOCOL)}, not {self.version!r}")
        if (self.client_cert is None) != (self.client_key is None):
            raise ValueError("client_cert and client_key go together")


def specs_from_site(
    site: Any,
    *,
    version: str = "1.6",
    passwords: Mapping[str, str] | None = None,
    **options: Any,
) -> list[SimStationSpec]:
    """One station per charger of an `optimizer.Site`, connectors as configured.

    ``options`` go to every `SimStationSpec` (e.g. ``meter_interval_s``).
    """
    out = []
    for ch in site.chargers:
        connectors = tuple(
            SimConnectorSpec(
                id=con.id,
                max_current_a=min(con.max_current_a, con.cable_max_current_a or math.inf),
                min_current_a=con.min_current_a,
                phases=tuple(str(p) for p in con.phases),
                voltage_v=site.connector_voltage(con),
            )
            for con in ch.connectors
        )
        pw = (passwords or {}).get(ch.id)
        out.append(SimStationSpec(ch.id, connectors, version=version, password=pw, **options))
    return out


def generated_specs(
    count: int,
    *,
    connectors: int = 2,
    version: str = "1.6",
    prefix: str = "SIM",
    **options: Any,
) -> list[SimStationSpec]:
    """``count`` identical stations named PREFIX00001… with ``connectors`` 32 A 3-phase each."""
    cons = tuple(SimConnectorSpec(i) for i in range(1, connectors + 1))
    width = max(5, len(str(count)))
    return [
        SimStationSpec(f"{prefix}{i:0{width}d}", cons, version=version, **options)
        for i in range(1, count + 1)
    ]
