"""Roll-ups: one-minute meter rows past their horizon become one row an interval.

A roll-up row holds, per connector and interval: the sample count and sums of
the line currents and power (so its mean is the sample-weighted mean of its
minutes), the highest one-minute mean of each line, the energy imported in the
interval and the highest register by its end. Energy is the growth of the
highest register seen (a late or reset register adds nothing): the energies of
a connector's roll-ups add up to its last register less its first, to the Wh.

Each call rolls up whole intervals and deletes the minutes it rolled in the
caller's transaction: a crash leaves either both or neither.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from itertools import groupby
from typing import Any

from gridshare.store.connection import Db, iso


def interval_start(at: datetime, interval: timedelta) -> datetime:
    """The start of the roll-up interval ``at`` falls in (intervals counted from the epoch)."""
    if at.tzinfo is None:
        at = at.replace(tzinfo=UTC)
    step = int(interval.total_seconds())
    return datetime.fromtimestamp(int(at.timestamp()) // step * step, UTC)


def roll_up_connector(
    db: Db, connector_id: str, before: datetime, interval: timedelta, budget: int
) -> tuple[int, bool]:
    """Roll up the connector's oldest whole intervals that end by ``before`` (an
    interval boundary): about ``budget`` minutes, at least one interval. Inside the
    caller's transaction; returns how many minutes were rolled up and whether
    some are left."""
    rows = db.execute(
        "SELECT * FROM meter_minute WHERE connector_id = ? AND minute < ? ORDER BY minute LIMIT ?",
        (connector_id, iso(before), budget + 1),
    ).fetchall()
    if not rows:
        return 0, False
    more = len(rows) > budget
    groups = [
        (start, list(members))
        for start, members in groupby(
            rows, key=lambda r: interval_start(datetime.fromisoformat(r["minute"]), interval)
        )
    ]
    if more:  # the last interval may go on past the rows read
        start, _ = groups.pop()
        if not groups:
            groups = [(start, _interval_rows(db, connector_id, start, interval))]
    for start, members in groups:
        _roll_up_interval(db, connector_id, start, interval, members)
    cur = db.execute(
        "DELETE FROM meter_minute WHERE connector_id = ? AND minute >= ? AND minute <= ?",
        (connector_id, rows[0]["minute"], groups[-1][1][-1]["minute"]),
    )
    return cur.rowcount, more


def _interval_rows(db: Db, connector_id: str, start: datetime, interval: timedelta) -> list[Any]:
    return db.execute(
        "SELECT * FROM meter_minute WHERE connector_id = ? AND minute >= ? AND minute < ? "
        "ORDER BY minute",
        (connector_id, iso(start), iso(start + interval)),
    ).fetchall()


def _roll_up_interval(
    db: Db,
    connector_id: str,
    start: datetime,
    interval: timedelta,
    minutes: list[Any],
) -> None:
    at, top = start.isoformat(), db.dialect.greatest
    old = db.execute(
        "SELECT * FROM meter_rollup WHERE connector_id = ? AND start = ?", (connector_id, at)
    ).fetchone()
    if old is not None:  # minutes that came late, after their interval was rolled up
        energy, highest = old["energy_wh"], old["register_wh"]
    else:
        energy, highest = 0.0, _highest_before(db, connector_id, at)
    for r in minutes:
        register = r["energy_wh"]
        if register is None:
            continue
        if highest is not None:
            energy += max(0.0, register - highest)
        highest = register if highest is None else max(highest, register)
    means = [{k: r[f"{k}_sum"] / r["n"] for k in ("l1", "l2", "l3")} for r in minutes]
    socs = [r["soc_pct"] for r in minutes if r["soc_pct"] is not None]
    db.execute(
        "INSERT INTO meter_rollup AS t VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
        "ON CONFLICT (connector_id, start) DO UPDATE SET n = t.n + excluded.n, "
        "l1_sum = t.l1_sum + excluded.l1_sum, l2_sum = t.l2_sum + excluded.l2_sum, "
        f"l3_sum = t.l3_sum + excluded.l3_sum, l1_max = {top}(t.l1_max, excluded.l1_max), "
        f"l2_max = {top}(t.l2_max, excluded.l2_max), l3_max = {top}(t.l3_max, excluded.l3_max), "
        "power_sum = t.power_sum + excluded.power_sum, power_n = t.power_n + excluded.power_n, "
        "energy_wh = excluded.energy_wh, register_wh = excluded.register_wh, "
        "soc_pct = COALESCE(excluded.soc_pct, t.soc_pct)",
        (
            connector_id,
            at,
            int(interval.total_seconds() // 60),
            sum(r["n"] for r in minutes),
            *(sum(r[f"{k}_sum"] for r in minutes) for k in ("l1", "l2", "l3")),
            *(max(m[k] for m in means) for k in ("l1", "l2", "l3")),
            sum(r["power_sum"] for r in minutes),
            sum(r["power_n"] for r in minutes),
            energy,
            highest,
            socs[-1] if socs else None,
        ),
    )


def _highest_before(db: Db, connector_id: str, at: str) -> float | None:
    """The highest register of the connector's roll-ups before ``at`` (each keeps
    the highest by its end)."""
    row = db.execute(
        "SELECT register_wh FROM meter_rollup WHERE connector_id = ? AND start < ? "
        "AND register_wh IS NOT NULL ORDER BY start DESC LIMIT 1",
        (connector_id, at),
    ).fetchone()
    return None if row is None else float(row[0])
