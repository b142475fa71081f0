"""The billing period's peak so far, from what the connection imported.

`PeakTracker` takes samples of the connection's import (kW; the connection
meter's, or the chargers' own meter values plus the non-EV estimate where
there is none) and integrates them per clock-aligned peak interval, each
sample's power held until the next one (a gap longer than `MAX_GAP` counts
nothing: no figure is invented). An interval's average counts once the
interval is over; the period's peak is the highest of them, reset at the
start of each billing period (the site's time zone). Its state is a small
dict the store keeps (`to_state`, `of_state`), so a restart keeps the peak.
Plain code: every call takes its time.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from gridshare.tariff.tariff import Tariff

MAX_GAP = timedelta(minutes=5)
STATE_KEY = "tariff.peak"


@dataclass
class PeakTracker:
    tariff: Tariff
    period_start: datetime | None = None
    peak_kw: float = 0.0
    peak_at: datetime | None = None
    """Start of the interval that set the peak."""
    interval_start: datetime | None = None
    interval_kwh: float = 0.0
    last: tuple[datetime, float] | None = field(default=None, repr=False)

    @property
    def interval(self) -> timedelta:
        return timedelta(minutes=self.tariff.config.peak_interval_minutes)

    def observe(self, at: datetime, import_kw: float) -> None:
        """A sample of the connection's import at ``at`` (older samples are ignored)."""
        if self.last is not None and at <= self.last[0]:
            return
        if self.last is not None and at - self.last[0] <= MAX_GAP:
            self._add(self.last[0], at, self.last[1])
        else:
            self._roll(at)
        self.last = (at, float(import_kw))

    def hold(self, t0: datetime, t1: datetime, kw: float) -> None:
        """``kw`` imported over [t0, t1) (a simulator's step; samples: `observe`)."""
        self._add(t0, t1, kw)
        self.last = None

    def _add(self, t0: datetime, t1: datetime, kw: float) -> None:
        """``kw`` held over [t0, t1), split at interval boundaries."""
        while t0 < t1:
            self._roll(t0)
            assert self.interval_start is not None
            end = min(t1, self.interval_start + self.interval)
            self.interval_kwh += max(kw, 0.0) * (end - t0).total_seconds() / 3600.0
            t0 = end
        self._roll(t1)

    def _roll(self, at: datetime) -> None:
        """Close the interval (and the period) ``at`` is past."""
        start = self.tariff.interval_start(at)
        if self.interval_start is not None and start != self.interval_start:
            self._close()
        if self.interval_start != start:
            self.interval_start, self.interval_kwh = start, 0.0
        period = self.tariff.period_start(at)
        if self.period_start != period:
            self.period_start, self.peak_kw, self.peak_at = period, 0.0, None

    def _close(self) -> None:
        assert self.interval_start is not None
        avg = self.interval_kwh / (self.interval.total_seconds() / 3600.0)
        if (
            self.tariff.period_start(self.interval_start) == self.period_start
            and avg > self.peak_kw
        ):
            self.peak_kw, self.peak_at = avg, self.interval_start

    def so_far(self, now: datetime) -> float:
        """The period's peak at ``now`` (0 once a new period has begun)."""
        if self.period_start != self.tariff.period_start(now):
            return 0.0
        return self.peak_kw

    def elapsed_kwh(self, now: datetime) -> float:
        """Energy imported in the interval in force before ``now``."""
        if self.interval_start != self.tariff.interval_start(now):
            return 0.0
        return self.interval_kwh

    def to_state(self) -> dict[str, Any]:
        return {
            "period_start": self.period_start.isoformat() if self.period_start else None,
            "peak_kw": self.peak_kw,
            "peak_at": self.peak_at.isoformat() if self.peak_at else None,
        }

    @classmethod
    def of_state(cls, tariff: Tariff, state: Any) -> PeakTracker:
        """A tracker that goes on from a stored state (a bad one starts afresh)."""
        out = cls(tariff)
        if not isinstance(state, dict):
            return out
        try:
            start = state.get("period_start")
            out.period_start = datetime.fromisoformat(start) if start else None
            out.peak_kw = max(float(state.get("peak_kw") or 0.0), 0.0)
            at = state.get("peak_at")
            out.peak_at = datetime.fromisoformat(at) if at else None
        except (TypeError, ValueError):
            return cls(tariff)
        return out

    def view(self, now: datetime) -> dict[str, Any]:
        """What the API shows."""
        cfg = self.tariff.config
        peak = self.so_far(now)
        return {
            "currency": cfg.currency,
            "billing_period_start": self.tariff.period_start(now).isoformat(),
            "peak_interval_minutes": cfg.peak_interval_minutes,
            "peak_so_far_kw": round(peak, 3),
            "peak_at": self.peak_at.isoformat() if self.peak_at and peak > 0 else None,
            "peak_price_per_kw": cfg.peak_price_per_kw,
            "peak_charge_so_far": round(peak * cfg.peak_price_per_kw, 2),
        }
