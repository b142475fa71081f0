"""``[tariff]`` and ``[carbon]``: in the site file, or a file of their own
(``--tariff FILE``, ``--carbon FILE``).

```toml
[tariff]
currency = "USD"
energy_prices = [{ from = "00:00", price = 0.28 }, { from = "08:00", price = 0.15 },
                 { from = "16:00", price = 0.45 }, { from = "21:00", price = 0.28 }]
energy_prices_csv = "day-ahead.csv"   # start,price rows: over the table where they hold
feed_in_price = 0.05          # per kWh exported
peak_price_per_kw = 15.0      # per kW of the billing period's peak
peak_interval_minutes = 15    # the peak: the highest average import over such an interval
billing_period = "month"      # in the site's time zone
carbon_price_per_kg = 0.0     # what a kg of CO2 is worth to the site (with a carbon signal)
# value_of_unmet_kwh = 0.5    # unset: drivers first (see the README)
hedge_share = 0.25            # money moves energy only up to this share of the stay before
                              # the stated departure (drivers leave early); 0: no hedge

[carbon]
csv = ["moer-2019-05.csv.gz", "moer-2019-06.csv.gz"]   # time,moer,f1..fN (one file or several)
```
Relative paths are read from the folder of the file that names them.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

_HHMM = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class PriceStep(_Strict):
    start: str = Field(alias="from")
    """``HH:MM`` in the site's time zone: the price holds from then to the next step."""
    price: float

    @field_validator("start")
    @classmethod
    def _clock(cls, v: str) -> str:
        if not _HHMM.match(v):
            raise ValueError(f'from = {v!r}: expected a time of day as HH:MM (e.g. "08:00")')
        return v

    @property
    def minutes(self) -> int:
        h, m = self.start.split(":")
        return int(h) * 60 + int(m)


class TariffConfig(_Strict):
    currency: Annotated[str, Field(min_length=1, max_length=8)] = "EUR"
    energy_prices: list[PriceStep] = Field(default_factory=list)
    energy_prices_csv: Path | None = None
    feed_in_price: float = 0.0
    peak_price_per_kw: Annotated[float, Field(ge=0)] = 0.0
    peak_interval_minutes: Annotated[int, Field(gt=0, le=60)] = 15
    billing_period: Literal["month"] = "month"
    carbon_price_per_kg: Annotated[float, Field(ge=0)] = 0.0
    value_of_unmet_kwh: Annotated[float, Field(gt=0)] | None = None
    hedge_share: Annotated[float, Field(ge=0, lt=1)] = 0.25
    """`optimizer.cost_signal.CostSignal.hedge_share`: the conservative departure."""

    @field_validator("peak_interval_minutes")
    @classmethod
    def _divides_an_hour(cls, v: int) -> int:
        if 60 % v:
            raise ValueError(f"peak_interval_minutes = {v}: must divide an hour (5, 15, 30, 60…)")
        return v

    @field_validator("energy_prices")
    @classmethod
    def _in_order(cls, v: list[PriceStep]) -> list[PriceStep]:
        times = [s.minutes for s in v]
        if times != sorted(set(times)):
            raise ValueError("energy_prices must be in increasing order of time, each time once")
        return v

    @model_validator(mode="after")
    def _some_price(self) -> TariffConfig:
        priced = self.peak_price_per_kw > 0 or self.carbon_price_per_kg > 0
        if not self.energy_prices and self.energy_prices_csv is None and not priced:
            raise ValueError("a tariff needs energy_prices, energy_prices_csv or a peak price")
        return self


class CarbonConfig(_Strict):
    csv: Annotated[list[Path], Field(min_length=1)]
    """``time,moer,f1..fN`` files (one or several; ``.gz`` too)."""

    @field_validator("csv", mode="before")
    @classmethod
    def _one_or_many(cls, v: object) -> object:
        return [v] if isinstance(v, str | Path) else v


class CostTables(_Strict):
    """What a ``--tariff`` file (or the site file) says of costs."""

    tariff: TariffConfig | None = None
    carbon: CarbonConfig | None = None
