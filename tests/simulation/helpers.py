"""Small sites and sessions for the simulation tests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from gridshare.config import load_site
from gridshare.simulation.sessions import SimSession, between, read_acn
from optimizer import Site

ROOT = Path(__file__).resolve().parents[2]
JPL_SITE = ROOT / "examples" / "acn-jpl.toml"
CALTECH_SITE = ROOT / "examples" / "acn-caltech.toml"
JPL_SESSIONS = ROOT / "data" / "acn" / "jpl" / "2019-05-01_2019-08-31.csv.gz"
CALTECH_SESSIONS = ROOT / "data" / "acn" / "caltech" / "2019-05-01_2019-08-31.csv.gz"
SITES_JSON = ROOT / "data" / "acn" / "sites.json"
T0 = datetime(2024, 3, 4, 8, 0, tzinfo=UTC)


def tiny_site(limit_a: float = 32.0, slot_minutes: int = 5) -> Site:
    """Three single-line 230 V connectors (16, 32, 32 A) under one fuse."""
    return Site.model_validate(
        {
            "site": {"name": "tiny", "slot_minutes": slot_minutes, "horizon_hours": 4},
            "groups": [{"id": "main", "limit_a": limit_a, "limit_kw": 100.0}],
            "chargers": [
                {
                    "id": "A",
                    "group": "main",
                    "connectors": [{"id": 1, "max_current_a": 16, "phases": ["L1"]}],
                },
                {
                    "id": "B",
                    "group": "main",
                    "connectors": [{"id": 1, "max_current_a": 32, "phases": ["L1"]}],
                },
                {
                    "id": "C",
                    "group": "main",
                    "connectors": [{"id": 1, "max_current_a": 32, "phases": ["L1"]}],
                },
            ],
        }
    )


def session(
    sid: str, connector: str, start_min: int, end_min: int, kwh: float, stated: bool = True
) -> SimSession:
    a = T0 + timedelta(minutes=start_min)
    d = T0 + timedelta(minutes=end_min)
    return SimSession(sid, connector, a, d, kwh, d if stated else None, kwh if stated else None)


def jpl_site() -> Site:
    return load_site(JPL_SITE)


def jpl_day(day: str = "2019-05-07") -> list[SimSession]:
    from datetime import date

    d = date.fromisoformat(day)
    return between(read_acn(JPL_SESSIONS), d, d, "America/Los_Angeles")
