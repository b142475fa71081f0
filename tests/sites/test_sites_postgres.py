"""Two sites on one PostgreSQL database: each in a schema of its own, made at start."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from gridshare.deployment import Deployment
from gridshare.deployment_config import load_deployment, schema_of
from tests.sites.helpers import site_toml, write_sites
from tests.sites.test_two_sites_live import charge, open_station, tx_limits, until
from tests.store.engines import postgres_server

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def postgres_admin() -> Iterator[str]:
    with postgres_server() as url:
        yield url


async def test_each_site_writes_its_own_schema(tmp_path: Path, postgres_admin: str) -> None:
    import psycopg

    tag = uuid.uuid4().hex[:8]
    north, south = f"n-{tag}", f"s-{tag}"
    folder = write_sites(
        tmp_path / "sites",
        {north: site_toml("North", 24, ("N1",)), south: site_toml("South", 10, ("S1",))},
    )
    sites, edges = load_deployment(folder, postgres_admin)
    node = Deployment(sites, edges)
    try:
        await node.start()
        stations = [await open_station(node, "N1"), await open_station(node, "S1")]
        try:
            for st in stations:
                await charge(st)
            await until(lambda: all(tx_limits(st) for st in stations), "profiles of both sites")
        finally:
            for st in stations:
                await st.close()
        await node.stop()
        with psycopg.connect(postgres_admin, autocommit=True) as db:
            for site, station in ((north, "N1"), (south, "S1")):
                rows = db.execute(f"SELECT station_id FROM {schema_of(site)}.sessions").fetchall()
                assert [r[0] for r in rows] == [station]
    finally:
        await node.stop()
        with psycopg.connect(postgres_admin, autocommit=True) as db:
            for site in (north, south):
                db.execute(f"DROP SCHEMA IF EXISTS {schema_of(site)} CASCADE")
