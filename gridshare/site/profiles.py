"""The charging profiles the site sends: a running session's planned schedule
(TxProfile) and a connector's own fallback limit (TxDefault)."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta

from gridshare.rollout import LimitSchedule
from gridshare.site.state import SiteState
from ocpp_adapter.events import ChargingLimitSpec, LimitPurpose


class ProfileBuilder:
    def __init__(self, state: SiteState, max_periods: int | None = None) -> None:
        self.state = state
        self.max_periods = max_periods

    def transaction(
        self, cid: str, schedule: LimitSchedule
    ) -> tuple[str, ChargingLimitSpec] | None:
        """The station and profile of the session running at ``cid`` (None: none runs)."""
        s = self.state.sessions.get(cid)
        if s is None:
            return None
        info = self.state.site.connectors[cid]
        spec = schedule.to_spec(
            LimitPurpose.TX,
            info.connector.id,
            transaction_id=s.transaction_id,
            number_phases=len(info.lines),
            voltage_v=info.voltage_v,
            max_periods=self.max_periods,
        )
        if s.lines is not None and set(info.lines) - set(s.lines):
            # the station's phases (its wiring order) the car loads: 2.1 limits only those
            used = tuple(k for k, line in enumerate(info.lines, start=1) if line in s.lines)
            spec = replace(spec, station_phases=used)
        return info.station_id, spec

    def default(self, cid: str, limit: float, now: datetime) -> tuple[str, ChargingLimitSpec]:
        """The station and profile of the connector's own TxDefault limit, in force
        from just before ``now``."""
        info = self.state.site.connectors[cid]
        spec = LimitSchedule.constant(now - timedelta(minutes=1), limit).to_spec(
            LimitPurpose.TX_DEFAULT,
            info.connector.id,
            transaction_id=None,
            number_phases=len(info.lines),
            voltage_v=info.voltage_v,
        )
        return info.station_id, spec
