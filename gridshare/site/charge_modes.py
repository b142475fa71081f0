"""Which charging mode a session starts in, and the site file's checks of PV.

```toml
[charge_modes]
default = "fast"                           # fast | solar | min+solar
id_tags = { "TAG-0042" = "solar", "TAG-7" = "min+solar" }
```

A session takes its idTag's mode (else the default) when it starts; the
operator may change it while it runs (`PATCH /api/sessions/{id}`, the
dashboard). ``solar`` and ``min+solar`` draw on the PV surplus of the
connection (`optimizer.solar`): the site needs ``[pv]`` and a generation meter
there, or a connection meter that nets the PV, for a surplus to be seen.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from forecasts.pv import PvConfig
from gridshare.meters.config import Measures, MeterConfig
from optimizer.modes import CHARGE_MODES, ChargeMode
from optimizer.site import Site, SiteValueError


class ChargeModes(BaseModel):
    """The ``[charge_modes]`` table (see the module)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    default: ChargeMode = ChargeMode.FAST
    id_tags: dict[str, ChargeMode] = Field(default_factory=dict)

    def for_tag(self, id_tag: str | None) -> ChargeMode:
        """The mode a session of ``id_tag`` starts in."""
        if id_tag is not None and id_tag in self.id_tags:
            return self.id_tags[id_tag]
        return self.default

    def of(self, stored: str | None, id_tag: str | None) -> ChargeMode:
        """A session's mode: as stored once set, else its idTag's."""
        return ChargeMode(stored) if stored in CHARGE_MODES else self.for_tag(id_tag)


def check_pv(pv: PvConfig, site: Site, meters: tuple[MeterConfig, ...]) -> None:
    """Raise `SiteValueError` where ``[pv]`` does not fit the site and its meters."""
    group = site.group_by_id.get(pv.group)
    if group is None:
        raise SiteValueError(f"group {pv.group!r} is not a group of the site", ("group",))
    if group.weights is not None:
        raise SiteValueError(f"group {pv.group!r} is a weighted group", ("group",))
    if not any(
        m.measures is Measures.GENERATION and pv.group in site.ancestors(m.group) for m in meters
    ):
        raise SiteValueError(
            f"group {pv.group!r} has no generation meter ([[meters]] with "
            'measures = "generation"): the live generation and its clear-sky index come from it',
            ("group",),
        )
