"""`gridshare serve --config FOLDER` through its command line, in its own process:
both sites served on one HTTP port, and a clean stop on SIGTERM."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.test_restart_live import free_port, serve, until
from tests.sites.helpers import TOKEN, site_toml, write_sites

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]


async def test_serve_runs_a_folder_of_sites(tmp_path: Path) -> None:
    ocpp, http = free_port(), free_port()
    ports = f"ocpp_port = {ocpp}\nhttp_port = {http}\n"

    def with_ports(text: str) -> str:
        return text.replace("ocpp_port = 0\nhttp_port = 0\n", ports)

    folder = write_sites(
        tmp_path / "sites",
        {
            "north": with_ports(site_toml("North", 24, ("N1",))),
            "south": with_ports(site_toml("South", 10, ("S1",))),
        },
    )
    log = tmp_path / "serve.log"
    proc = serve(folder, tmp_path / "data", log)
    try:
        headers = {"Authorization": f"Bearer {TOKEN}"}
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{http}", headers=headers) as c:

            async def sites() -> Any:
                try:
                    r = await c.get("/api/sites")
                except httpx.TransportError:
                    return None
                return r.json() if r.status_code == 200 else None

            listed = await until(sites, 30, "the deployment answers")
            assert [s["id"] for s in listed] == ["north", "south"]
            south = await c.get("/api/sites/south/status")
            assert south.json()["site"] == "South"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
        assert {f.name for f in (tmp_path / "data").glob("*.db")} == {"north.db", "south.db"}
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
    assert "gridshare serving North, South" in log.read_text()


def test_serve_refuses_a_folder_without_sites(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    done = subprocess.run(
        [sys.executable, "-m", "gridshare.cli", "serve", "--config", str(tmp_path / "empty")],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2 and "no site files" in done.stderr
