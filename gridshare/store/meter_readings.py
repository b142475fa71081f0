"""The site meters' readings and the non-EV load of their groups, kept.

Three tables:

    site_meter_reading    each accepted reading of a site meter (per line, with
                          its time and our clock's when it came in)
    group_non_ev          each non-EV sample of a metered group, per line
    group_non_ev_rollup   per group and interval (15 minutes by default): the
                          sample count, sums and highest value per line, and
                          the highest *gross* value per line (the sample with
                          the generation meters under the group added back)

The raw rows are kept for the raw horizon (``[retention] raw_meter_values``);
the roll-up rows for ``[retention] rollups``: the building forecaster learns
from them. A roll-up row is brought up to date with every sample, in the
sample's own transaction (unlike the chargers' one-minute rows, which
retention rolls up later): a crash leaves both or neither, and the forecaster
reads one table for the whole history.

The gross load is what the building itself draws: a forecast that takes a PV
forecast off it must learn that, not the net load the generation already
lowered (else the sun counts twice). A roll-up row made before schema 5 has
no gross (NULL): it reads as its net highest, which is all that was kept.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from gridshare.store.connection import Db, Tables, iso
from gridshare.store.rollups import interval_start

TABLES = """
CREATE TABLE IF NOT EXISTS site_meter_reading (
    meter_id TEXT NOT NULL, at TEXT NOT NULL, received_at TEXT NOT NULL,
    l1_a REAL NOT NULL, l2_a REAL NOT NULL, l3_a REAL NOT NULL,
    PRIMARY KEY (meter_id, at)
);
CREATE TABLE IF NOT EXISTS group_non_ev (
    group_id TEXT NOT NULL, at TEXT NOT NULL,
    l1_a REAL NOT NULL, l2_a REAL NOT NULL, l3_a REAL NOT NULL,
    PRIMARY KEY (group_id, at)
);
CREATE TABLE IF NOT EXISTS group_non_ev_rollup (
    group_id TEXT NOT NULL, start TEXT NOT NULL, minutes INTEGER NOT NULL, n INTEGER NOT NULL,
    l1_sum REAL NOT NULL, l2_sum REAL NOT NULL, l3_sum REAL NOT NULL,
    l1_max REAL NOT NULL, l2_max REAL NOT NULL, l3_max REAL NOT NULL,
    l1_gross_max REAL, l2_gross_max REAL, l3_gross_max REAL,
    PRIMARY KEY (group_id, start)
);
CREATE INDEX IF NOT EXISTS site_meter_reading_at ON site_meter_reading (at);
CREATE INDEX IF NOT EXISTS group_non_ev_at ON group_non_ev (at);
CREATE INDEX IF NOT EXISTS group_non_ev_rollup_start ON group_non_ev_rollup (start);
"""
"""The tables (created by `gridshare.store.schema`, on a new or older file alike)."""

GROSS_COLUMNS = ("l1_gross_max REAL", "l2_gross_max REAL", "l3_gross_max REAL")
"""Schema 5's columns of ``group_non_ev_rollup`` (added to an older database)."""

DEFAULT_INTERVAL = timedelta(minutes=15)

Amps = tuple[float, float, float]


@dataclass(frozen=True)
class StoredReading:
    meter_id: str
    at: datetime
    received_at: datetime
    amps: Amps


@dataclass(frozen=True)
class StoredSample:
    """A group's non-EV load per line at ``at`` (raw, or an interval's), and what
    the generation meters under it showed then (netted out of ``amps``)."""

    group_id: str
    at: datetime
    amps: Amps
    generation_a: Amps = (0.0, 0.0, 0.0)


@dataclass(frozen=True)
class StoredRollup:
    group_id: str
    start: datetime
    minutes: int
    samples: int
    mean_a: Amps
    max_a: Amps
    gross_max_a: Amps
    """The highest of its samples with their generation added back."""


class MeterReadingTables(Tables):
    """The site meters' part of the store (see the module)."""

    def record_site_meter(
        self,
        reading: StoredReading,
        samples: Sequence[StoredSample],
        interval: timedelta = DEFAULT_INTERVAL,
    ) -> None:
        """A reading and the group samples it gave, with their roll-ups; committed
        when this returns. A repeated (meter, time) or (group, time) replaces."""
        with self._tx() as db:
            db.execute(
                "INSERT INTO site_meter_reading VALUES (?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (meter_id, at) DO UPDATE SET received_at = excluded.received_at, "
                "l1_a = excluded.l1_a, l2_a = excluded.l2_a, l3_a = excluded.l3_a",
                (reading.meter_id, iso(reading.at), iso(reading.received_at), *reading.amps),
            )
            for s in samples:
                _group_sample(db, s, interval)

    def site_meter_readings(self, meter_id: str, limit: int) -> list[StoredReading]:
        """The meter's latest ``limit`` readings, oldest first."""
        rows = self._db.execute(
            "SELECT * FROM site_meter_reading WHERE meter_id = ? ORDER BY at DESC LIMIT ?",
            (meter_id, limit),
        ).fetchall()
        return [
            StoredReading(
                r["meter_id"],
                datetime.fromisoformat(r["at"]),
                datetime.fromisoformat(r["received_at"]),
                (r["l1_a"], r["l2_a"], r["l3_a"]),
            )
            for r in reversed(rows)
        ]

    def group_non_ev_samples(self, group_id: str, limit: int) -> list[StoredSample]:
        """The group's latest ``limit`` raw samples, oldest first."""
        rows = self._db.execute(
            "SELECT * FROM group_non_ev WHERE group_id = ? ORDER BY at DESC LIMIT ?",
            (group_id, limit),
        ).fetchall()
        return [
            StoredSample(
                group_id, datetime.fromisoformat(r["at"]), (r["l1_a"], r["l2_a"], r["l3_a"])
            )
            for r in reversed(rows)
        ]

    def group_non_ev_rollups(self, group_id: str, since: datetime) -> list[StoredRollup]:
        """The group's roll-up rows from ``since`` on, oldest first."""
        rows = self._db.execute(
            "SELECT * FROM group_non_ev_rollup WHERE group_id = ? AND start >= ? ORDER BY start",
            (group_id, iso(since)),
        ).fetchall()
        return [_rollup(r) for r in rows]


def _group_sample(db: Db, s: StoredSample, interval: timedelta) -> None:
    top = db.dialect.greatest
    db.execute(
        "INSERT INTO group_non_ev VALUES (?, ?, ?, ?, ?) ON CONFLICT (group_id, at) "
        "DO UPDATE SET l1_a = excluded.l1_a, l2_a = excluded.l2_a, l3_a = excluded.l3_a",
        (s.group_id, iso(s.at), *s.amps),
    )
    # a row from before schema 5 has no gross: its net highest stands in
    gross = ", ".join(
        f"l{i}_gross_max = {top}(COALESCE(t.l{i}_gross_max, t.l{i}_max), excluded.l{i}_gross_max)"
        for i in (1, 2, 3)
    )
    db.execute(
        "INSERT INTO group_non_ev_rollup AS t (group_id, start, minutes, n, l1_sum, l2_sum, "
        "l3_sum, l1_max, l2_max, l3_max, l1_gross_max, l2_gross_max, l3_gross_max) "
        "VALUES (?, ?, ?, 1, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
        "ON CONFLICT (group_id, start) DO UPDATE SET n = t.n + 1, "
        "l1_sum = t.l1_sum + excluded.l1_sum, l2_sum = t.l2_sum + excluded.l2_sum, "
        f"l3_sum = t.l3_sum + excluded.l3_sum, l1_max = {top}(t.l1_max, excluded.l1_max), "
        f"l2_max = {top}(t.l2_max, excluded.l2_max), l3_max = {top}(t.l3_max, excluded.l3_max), "
        + gross,
        (
            s.group_id,
            iso(interval_start(s.at, interval)),
            int(interval.total_seconds() // 60),
            *s.amps,
            *s.amps,
            *(a + g for a, g in zip(s.amps, s.generation_a, strict=True)),
        ),
    )


def _rollup(r: Any) -> StoredRollup:
    n = r["n"]
    net = (r["l1_max"], r["l2_max"], r["l3_max"])
    gross = (r["l1_gross_max"], r["l2_gross_max"], r["l3_gross_max"])
    return StoredRollup(
        r["group_id"],
        datetime.fromisoformat(r["start"]),
        r["minutes"],
        n,
        (r["l1_sum"] / n, r["l2_sum"] / n, r["l3_sum"] / n),
        net,
        tuple(a if g is None else g for a, g in zip(net, gross, strict=True)),
    )


def prune_site_meter_readings(db: Db, before: datetime, budget: int) -> int:
    """Raw site-meter readings and group samples before ``before`` (their roll-ups
    stay); one batch inside the caller's transaction."""
    n, row = 0, db.dialect.row_id
    for table in ("site_meter_reading", "group_non_ev"):
        n += db.execute(
            f"DELETE FROM {table} WHERE {row} IN (SELECT {row} FROM {table} "
            "WHERE at < ? ORDER BY at LIMIT ?)",
            (iso(before), budget),
        ).rowcount
    return n


def prune_group_rollups(db: Db, before: datetime, budget: int) -> int:
    row = db.dialect.row_id
    return db.execute(
        f"DELETE FROM group_non_ev_rollup WHERE {row} IN (SELECT {row} FROM group_non_ev_rollup "
        "WHERE start < ? ORDER BY start LIMIT ?)",
        (iso(before), budget),
    ).rowcount


def per_line(values: Mapping[Any, float]) -> Amps:
    """A reading's currents (keyed by `Line` or its name) as (L1, L2, L3)."""
    by_name = {str(getattr(k, "value", k)).upper(): float(v) for k, v in values.items()}
    return (by_name.get("L1", 0.0), by_name.get("L2", 0.0), by_name.get("L3", 0.0))
