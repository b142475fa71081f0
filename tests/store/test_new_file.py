"""A new database file is made ready to give back free pages without a rewrite."""

from __future__ import annotations

import logging
import sqlite3
from pathlib import Path

import pytest

from gridshare.store import SqliteStore


def test_a_new_file_takes_incremental_vacuum_without_a_vacuum(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "new.db"
    with caplog.at_level(logging.INFO, logger="gridshare.store"):
        SqliteStore(str(path)).close()
    assert not [r for r in caplog.records if "VACUUM" in r.getMessage()]
    db = sqlite3.connect(path)
    try:
        assert db.execute("PRAGMA auto_vacuum").fetchone()[0] == 2  # INCREMENTAL
    finally:
        db.close()
