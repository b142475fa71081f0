"""Databases to keep tidy: plans, meter minutes and sessions made quickly."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np

from optimizer.plan import Plan, SolverStatus
from optimizer.problem import TimeGrid
from optimizer.site import Line
from tests.store.engines import Engine

T0 = datetime(2026, 1, 1, tzinfo=UTC)
"""Midnight: a boundary of every roll-up interval."""


def a_plan(connectors: int, slots: int, amps: float) -> Plan:
    ids = tuple(f"CP{i}/1" for i in range(connectors))
    current = np.full((connectors, slots), amps)
    current[:, 0] = amps + 0.25  # the dispatched slot differs from the rest
    return Plan(
        grid=TimeGrid.covering(T0, 15, slots / 4),
        connector_ids=ids,
        current_a=current,
        power_kw=current * 0.69,
        lines={cid: (Line.L1,) for cid in ids},
        session_connector={},
        energy_kwh={},
        requested_kwh={},
        unmet_kwh={},
        binding=(),
        status=SolverStatus.OPTIMAL,
        solve_ms=3.0,
        backend="test",
    )


def register_at(connector: int, minute: int) -> float:
    """A register that grows unevenly, in fractions of a Wh, with a reset now and then."""
    wh = 1000.0 * connector + minute * 183.37 + (minute % 7) * 0.61
    return wh - 50_000.0 if minute % 997 == 500 else wh  # a reading far below: adds nothing


def fill_minutes(engine: Engine, connectors: int, minutes: int, start: datetime = T0) -> None:
    """One-minute meter rows written straight into the table (as the store would)."""
    db = engine.raw()
    try:
        db.execute(db.dialect.begin)
        for c in range(connectors):
            cid = f"CP{c}/1"
            db.execute(
                "INSERT INTO meter_last (connector_id, at, current_json) "
                "VALUES (?, ?, '{}') ON CONFLICT DO NOTHING",
                (cid, start.isoformat()),
            )
            db.executemany(
                "INSERT INTO meter_minute VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    (
                        cid,
                        (start + timedelta(minutes=m)).isoformat(),
                        1 + m % 3,
                        (1 + m % 3) * (10.0 + m % 5),
                        (1 + m % 3) * (11.0 + m % 4),
                        (1 + m % 3) * 9.5,
                        (1 + m % 3) * 6900.0,
                        1 + m % 3,
                        None if m % 11 == 3 else register_at(c, m),
                        None,
                    )
                    for m in range(minutes)
                ],
            )
        db.execute("COMMIT")
    finally:
        db.close()


def totals(engine: Engine) -> dict[str, tuple[int, float, float]]:
    """Per connector: samples, L1 sum, and highest register, over raw rows and roll-ups."""
    db = engine.raw()
    try:
        out: dict[str, tuple[int, float, float]] = {}
        for table, register in (("meter_minute", "energy_wh"), ("meter_rollup", "register_wh")):
            for cid, n, l1, top in db.execute(
                f"SELECT connector_id, SUM(n), SUM(l1_sum), MAX({register}) FROM {table} "
                "GROUP BY connector_id"
            ):
                was = out.get(cid, (0, 0.0, 0.0))
                out[cid] = (was[0] + int(n), was[1] + l1, max(was[2], top or 0.0))
        return {k: (n, round(l1, 6), top) for k, (n, l1, top) in out.items()}
    finally:
        db.close()
