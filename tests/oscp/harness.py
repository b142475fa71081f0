"""A Flexibility Provider served on a loopback port, facing a simulated DSO."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime

from pydantic import SecretStr

from forecasts import CapacityBook, Forecast
from gridshare.peers.dso import SimulatedDso
from oscp import (
    FP_PREFIX,
    FlexibilityProvider,
    MemoryTokenStore,
    OscpConfig,
    OscpProviderConfig,
    RetryPolicy,
    TokenStore,
    create_app,
)
from oscp.client import MeasurementSource
from oscp.loopback import LoopbackServer
from oscp.messages import AdjustGroupCapacityForecast, GroupCapacityComplianceError

FAST = RetryPolicy(attempts=3, first_delay_s=0.05, max_delay_s=0.2, timeout_s=2.0)
FAST_FOREVER = RetryPolicy(attempts=None, first_delay_s=0.05, max_delay_s=0.2, timeout_s=2.0)


@dataclass
class Harness:
    fp: FlexibilityProvider
    dso: SimulatedDso
    server: LoopbackServer
    book: CapacityBook
    tokens: TokenStore
    stored: list[Forecast] = field(default_factory=list)
    heartbeats: list[tuple[str, datetime]] = field(default_factory=list)
    offline: list[str] = field(default_factory=list)
    adjusts: list[AdjustGroupCapacityForecast] = field(default_factory=list)
    compliance: list[GroupCapacityComplianceError] = field(default_factory=list)
    fail_storage: bool = False

    @property
    def fp_url(self) -> str:
        return f"{self.server.url}{FP_PREFIX}"


@asynccontextmanager
async def running(
    *,
    token_to_us: str | None = "dso-to-fp-0",
    token_to_them: str | None = None,
    registration_token: str | None = None,
    groups: tuple[str, ...] = ("trafo-1",),
    heartbeat_interval_s: float = 60.0,
    measurements: MeasurementSource | None = None,
    measurement_interval_s: float = 60.0,
    tokens: TokenStore | None = None,
    dso_base_url: str | None = None,
) -> AsyncIterator[Harness]:
    dso = SimulatedDso(registration_token=registration_token)
    await dso.start()
    if token_to_them is not None:
        dso.accepted_tokens.add(token_to_them)
    provider = OscpProviderConfig(
        id="dso",
        base_url=dso_base_url or dso.base_url,
        token_to_us=SecretStr(token_to_us) if token_to_us else None,
        token_to_them=SecretStr(token_to_them) if token_to_them else None,
        registration_token=SecretStr(registration_token) if registration_token else None,
        heartbeat_interval_s=heartbeat_interval_s,
    )
    book = CapacityBook()
    store = tokens or MemoryTokenStore()
    h: Harness

    async def on_forecast(group_id: str, forecast: Forecast) -> None:
        if h.fail_storage:
            raise OSError("disk full")
        h.stored.append(forecast)
        book.add(forecast)

    async def on_heartbeat(provider_id: str, at: datetime) -> None:
        h.heartbeats.append((provider_id, at))
        book.heartbeat(provider_id, at)

    async def on_offline(provider_id: str) -> None:
        h.offline.append(provider_id)

    async def on_adjust(provider_id: str, msg: AdjustGroupCapacityForecast) -> None:
        h.adjusts.append(msg)

    async def on_compliance(provider_id: str, msg: GroupCapacityComplianceError) -> None:
        h.compliance.append(msg)

    fp = FlexibilityProvider(
        OscpConfig(capacity_providers=[provider]),
        our_base_url="http://unset",
        groups=groups,
        token_store=store,
        on_forecast=on_forecast,
        on_heartbeat=on_heartbeat,
        on_offline=on_offline,
        on_adjust=on_adjust,
        on_compliance_error=on_compliance,
        measurements=measurements,
        measurement_interval_s=measurement_interval_s,
        retry=FAST,
        registration_retry=FAST_FOREVER,
    )
    server = LoopbackServer(create_app(fp))
    await server.start()
    h = Harness(fp, dso, server, book, store)
    fp.our_base_url = h.fp_url
    dso.fp_url = h.fp_url
    dso.token_to_fp = token_to_us
    try:
        await fp.start()
        yield h
    finally:
        await fp.stop()
        await server.stop()
        await dso.stop()


async def wait_state(h: Harness, state: object, timeout_s: float = 3.0) -> None:
    """Until the DSO's link reaches ``state`` (bounded)."""
    import asyncio

    link = h.fp.links["dso"]
    for _ in range(int(timeout_s / 0.01)):
        if link.state is state:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"link stayed {link.state}, wanted {state}")
