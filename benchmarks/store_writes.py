"""Store writes per second: meter values and session events, SQLite and PostgreSQL.

    .venv/bin/python benchmarks/store_writes.py [--seconds 5]
        [--postgres postgresql://postgres@127.0.0.1:5432/postgres] [--connectors 200]

Each write is one `Store.record_event` call, committed when it returns (as the
service acknowledges a station's message): a `MeterReading` of one of
``--connectors`` connectors in turn, or a session's start or end. Three stores
in one run, each for ``--seconds`` per kind of write, one after the other:
SQLite (a file in a temporary folder, WAL, ``synchronous=NORMAL``, the
default), SQLite with ``synchronous=FULL`` (an fsync each commit, as
PostgreSQL's), and PostgreSQL (a schema of its own in the given database,
dropped after). Figures: writes per second, the p50 and p99 of one write, and
each engine's rate against SQLite's default measured in the same run. The
machine's load is printed with them.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import quote

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from gridshare.store import Store, open_store  # noqa: E402
from ocpp_adapter.events import DomainEvent, MeterReading, SessionEnded, SessionStarted  # noqa: E402

T0 = datetime(2026, 1, 1, tzinfo=UTC)
MAX_WRITES = 1_000_000
"""A bound on each run besides its time."""


def meter_values(connectors: int) -> Iterator[DomainEvent]:
    for k in range(MAX_WRITES):
        c, rnd = k % connectors, k // connectors
        yield MeterReading(
            f"CP{c}/1",
            T0 + timedelta(seconds=10 * rnd),
            current_a={"L1": 16.0, "L2": 16.0, "L3": 16.0},
            total_power_w=11_000.0,
            energy_wh=1000.0 + 30.0 * rnd,
        )


def session_events(connectors: int) -> Iterator[DomainEvent]:
    for k in range(MAX_WRITES // 2):
        c, at = k % connectors, T0 + timedelta(minutes=k)
        yield SessionStarted(f"CP{c}/1", f"tx-{k}", "tag", 0.0, at)
        yield SessionEnded(f"tx-{k}", 5000.0, at + timedelta(seconds=30), station_id=f"CP{c}")


def run(store: Store, events: Iterator[DomainEvent], seconds: float) -> tuple[float, list[float]]:
    """Writes per second and each write's seconds."""
    took: list[float] = []
    start = time.perf_counter()
    end = start + seconds
    for event in events:
        t = time.perf_counter()
        store.record_event(event)
        done = time.perf_counter()
        took.append(done - t)
        if done >= end:
            break
    return len(took) / (time.perf_counter() - start), took


@contextmanager
def postgres_schema(admin_url: str) -> Iterator[str]:
    import psycopg

    name = f"gs_bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(admin_url, autocommit=True, connect_timeout=10) as admin:
        admin.execute(f"CREATE SCHEMA {name}")
    joiner = "&" if "?" in admin_url else "?"
    try:
        yield f"{admin_url}{joiner}options={quote(f'-csearch_path={name}')}"
    finally:
        with psycopg.connect(admin_url, autocommit=True, connect_timeout=10) as admin:
            admin.execute(f"DROP SCHEMA {name} CASCADE")


def measure(url: str, args: argparse.Namespace) -> dict[str, tuple[float, float, float]]:
    """Per kind of write: (writes/s, p50 ms, p99 ms), each kind on a fresh store."""
    kinds: dict[str, Callable[[int], Iterator[DomainEvent]]] = {
        "meter values": meter_values,
        "session events": session_events,
    }
    out = {}
    for kind, make in kinds.items():
        store = open_store(url)
        try:
            rate, took = run(store, make(args.connectors), args.seconds)
        finally:
            store.close()
        q = statistics.quantiles(took, n=100)
        out[kind] = (rate, q[49] * 1000, q[98] * 1000)
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--seconds", type=float, default=5.0, help="per engine and kind of write")
    p.add_argument("--postgres", default="postgresql://postgres@127.0.0.1:5432/postgres")
    p.add_argument("--connectors", type=int, default=200)
    args = p.parse_args(argv)
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"store writes, {args.seconds:g} s each, {args.connectors} connectors; load {load}")
    results: dict[str, dict[str, tuple[float, float, float]]] = {}
    with tempfile.TemporaryDirectory() as folder:
        results["sqlite"] = measure(f"sqlite:///{folder}/a.db", args)
        results["sqlite FULL"] = measure(f"sqlite:///{folder}/b.db?synchronous=FULL", args)
    with postgres_schema(args.postgres) as url:
        results["postgresql"] = measure(url, args)
    print(
        f"{'engine':<12} {'writes':<15} {'per s':>8} {'p50 ms':>8} {'p99 ms':>8} {'vs sqlite':>9}"
    )
    for engine, kinds in results.items():
        for kind, (rate, p50, p99) in kinds.items():
            ratio = rate / results["sqlite"][kind][0]
            print(f"{engine:<12} {kind:<15} {rate:8.0f} {p50:8.3f} {p99:8.3f} {ratio:8.2f}x")
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"load after: {load}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
