"""Sessions in the store: the files readable by their owner only."""

from __future__ import annotations

import stat
from pathlib import Path

from gridshare.store import SqliteStore
from ocpp_adapter.events import SessionStarted
from tests.service.sites import NOW


def test_database_and_its_wal_and_shm_are_owner_only(tmp_path: Path):
    path = tmp_path / "fresh.db"
    s = SqliteStore(path)
    try:
        s.record_event(SessionStarted("CP1/1", "1", "secret-tag", 0.0, NOW))
        for name in ("fresh.db", "fresh.db-wal", "fresh.db-shm"):
            mode = stat.S_IMODE((tmp_path / name).stat().st_mode)
            assert mode == 0o600, (name, oct(mode))
    finally:
        s.close()


def test_an_existing_world_readable_database_is_made_owner_only(tmp_path: Path):
    path = tmp_path / "old.db"
    SqliteStore(path).close()
    path.chmod(0o644)
    s = SqliteStore(path)
    try:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    finally:
        s.close()
