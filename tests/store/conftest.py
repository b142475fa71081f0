"""Every store test that takes ``engine`` runs on SQLite and on PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.store.engines import Engine, fresh_schema, postgres_server


@pytest.fixture(scope="session")
def postgres_admin() -> Iterator[str]:
    with postgres_server() as url:
        yield url


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    if request.param == "sqlite":
        yield Engine("sqlite", f"sqlite:///{tmp_path / 'g.db'}")
        return
    admin = request.getfixturevalue("postgres_admin")
    with fresh_schema(admin) as url:
        yield Engine("postgresql", url)
