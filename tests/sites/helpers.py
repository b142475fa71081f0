"""Site files for the deployment tests: a folder, one TOML file per site."""

from __future__ import annotations

from pathlib import Path

TOKEN = "sites-test-write-token"


def site_toml(
    name: str,
    limit_a: float,
    stations: tuple[str, ...],
    *,
    server: str = "",
    extra: str = "",
) -> str:
    chargers = "".join(
        f"""
[[chargers]]
id = "{sid}"
group = "grid"
connectors = [{{ id = 1, max_current_a = 32 }}]
"""
        for sid in stations
    )
    return f"""
[site]
name = "{name}"
slot_minutes = 15
horizon_hours = 2
{extra}

[[groups]]
id = "grid"
limit_a = {limit_a}
fallback_limit_a = {limit_a}
{chargers}
[server]
host = "127.0.0.1"
ocpp_port = 0
http_port = 0
{server}

[controller]
coalesce_s = 0.02
pin_s = 5

[[api.tokens]]
name = "ops"
token = "{TOKEN}"
role = "write"
"""


def write_sites(folder: Path, sites: dict[str, str]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for stem, text in sites.items():
        (folder / f"{stem}.toml").write_text(text)
    return folder
