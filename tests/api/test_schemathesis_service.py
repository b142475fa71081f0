"""The API's own schema against a running service: no generated request gets a 5xx.

The same checks as ``test_schemathesis`` (which runs against the planning
fake), here over loopback HTTP against the real `Service` with simulated
stations, so every write really stores, audits, re-plans and rolls out.
Most generated ids are replaced by ones the site knows, so writes get past
the 404 and really apply. Fewer examples per operation: each write costs a plan.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, settings

from gridshare.api import create_api
from tests.api.conftest import WRITE, api_config
from tests.api.fake_backend import FakeSite
from tests.api.live_service import LiveService, depot_cars, depot_config
from tests.api.test_schemathesis import CHECKS

# the schema is the app's, whatever backend serves it
schema = schemathesis.openapi.from_dict(create_api(FakeSite(), api_config()).openapi()).exclude(
    path="/api/live"
)


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveService]:
    tmp: Path = tmp_path_factory.mktemp("schemathesis-service")
    with LiveService(
        depot_config(tmp), depot_cars, db=str(tmp / "live.db"), warmup_s=120
    ) as service:
        yield service


@schema.parametrize()
@settings(
    max_examples=8,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
    database=None,
)
def test_the_service_answers_every_generated_request(
    case: schemathesis.Case, live: LiveService
) -> None:
    params = case.path_parameters or {}
    for name, ids in KNOWN.items():
        given = params.get(name)
        if isinstance(given, str) and zlib.crc32(given.encode()) % 4:
            params[name] = ids[zlib.crc32(given.encode()) % len(ids)]
    case.call_and_validate(base_url=live.url, headers=WRITE, checks=CHECKS, timeout=30)


KNOWN = {
    "group_id": ["grid", "panel-a", "panel-b"],
    "station_id": ["CP01", "CP02", "CP03", "CP04", "CP05"],
    "session_id": ["1", "2", "3", "4", "5"],
}
"""Ids of the live site (sessions are numbered as the cars arrive)."""
