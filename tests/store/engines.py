"""The two engines the store's tests run on: a SQLite file, and a PostgreSQL schema.

PostgreSQL is the machine's if one answers on 127.0.0.1:5432 (or the server
``GRIDSHARE_TEST_POSTGRES`` names, a URL to an existing database); otherwise
(or with ``GRIDSHARE_TEST_POSTGRES=own``)
`OwnServer` makes a throwaway cluster with Debian's ``initdb`` and ``pg_ctl``
in a temporary folder, as a user other than root (PostgreSQL refuses root),
and stops it after the run (``make postgres`` installs the binaries). Each
test gets a schema of its own, dropped after it.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

from gridshare.store import connect
from gridshare.store.connection import Db
from gridshare.store.tables import StoreTables
from gridshare.store.urls import open_store

LOCAL = "postgresql://{user}@127.0.0.1:5432/{db}"
START_TIMEOUT_S = 60
"""``initdb`` and the first start of a cluster on a loaded machine."""


@dataclass(frozen=True)
class Engine:
    """One database of either engine, opened again and again as a test needs."""

    name: str
    url: str

    def open(self) -> StoreTables:
        store = open_store(self.url)
        assert isinstance(store, StoreTables)
        return store

    def raw(self) -> Db:
        """A plain connection (tables made by `open` first)."""
        return connect(self.url)

    def rows(self, sql: str, params: tuple[Any, ...] = ()) -> list[Any]:
        db = self.raw()
        try:
            return list(db.execute(sql, params).fetchall())
        finally:
            db.close()

    def value(self, sql: str, params: tuple[Any, ...] = ()) -> Any:
        return self.rows(sql, params)[0][0]


def answers(url: str) -> bool:
    import psycopg

    try:
        psycopg.connect(url, connect_timeout=3).close()
    except psycopg.Error:
        return False
    return True


def existing_server() -> str | None:
    """An admin URL of a server that answers, or None."""
    given = os.environ.get("GRIDSHARE_TEST_POSTGRES")
    if given:
        return None if given == "own" else given
    with socket.socket() as s:
        s.settimeout(1)
        if s.connect_ex(("127.0.0.1", 5432)) != 0:
            return None
    for user, db in (("postgres", "postgres"), (pwd.getpwuid(os.getuid()).pw_name, "postgres")):
        url = LOCAL.format(user=user, db=db)
        if answers(url):
            return url
    return None


def _bindir() -> Path:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    if initdb is None:
        raise RuntimeError("no PostgreSQL server binaries: run `make postgres`")
    return Path(initdb).parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class OwnServer:
    """A throwaway cluster on a free loopback port, run as a user other than root."""

    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="gridshare-pg-"))
        self.port = _free_port()
        self.bin = _bindir()
        self.user = "postgres" if os.getuid() == 0 else pwd.getpwuid(os.getuid()).pw_name
        if os.getuid() == 0:
            os.chmod(self.dir, 0o755)
            shutil.chown(self.dir, self.user)

    def _run(self, *argv: str) -> None:
        prefix = ["runuser", "-u", self.user, "--"] if os.getuid() == 0 else []
        subprocess.run(
            [*prefix, *argv],
            check=True,
            capture_output=True,
            timeout=START_TIMEOUT_S,
            cwd=self.dir,
        )

    def start(self) -> str:
        data = self.dir / "data"
        self._run(str(self.bin / "initdb"), "-D", str(data), "-U", "postgres", "-A", "trust")
        options = f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=on"
        self._run(
            str(self.bin / "pg_ctl"), "-D", str(data), "-o", options, "-l",
            str(self.dir / "log"), "-w", "-t", str(START_TIMEOUT_S), "start",
        )  # fmt: skip
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def stop(self) -> None:
        with contextlib.suppress(subprocess.SubprocessError, OSError):
            self._run(str(self.bin / "pg_ctl"), "-D", str(self.dir / "data"), "-m", "fast", "-w",
                      "-t", "30", "stop")  # fmt: skip
        shutil.rmtree(self.dir, ignore_errors=True)


@contextlib.contextmanager
def postgres_server() -> Iterator[str]:
    """An admin URL of a PostgreSQL for the run: the machine's, else one of our own."""
    url = existing_server()
    if url is not None:
        yield url
        return
    own = OwnServer()
    try:
        yield own.start()
    finally:
        own.stop()


@contextlib.contextmanager
def fresh_schema(admin_url: str) -> Iterator[str]:
    """A URL whose tables live in a new schema of their own, dropped after."""
    import psycopg

    name = f"gs_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(admin_url, autocommit=True) as admin:
        admin.execute(f"CREATE SCHEMA {name}")
    joiner = "&" if "?" in admin_url else "?"
    try:
        yield f"{admin_url}{joiner}options={quote(f'-csearch_path={name}')}"
    finally:
        with psycopg.connect(admin_url, autocommit=True) as admin:
            admin.execute(f"DROP SCHEMA {name} CASCADE")
