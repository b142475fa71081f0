"""SQLite and PostgreSQL give the same answers: one stream of station events,
profiles and plans written to both, every read compared."""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from gridshare.store.tables import StoreTables
from ocpp_adapter.events import (
    ConnectorStatusChanged,
    EvChargingNeeds,
    MeterReading,
    PriorityChargingNotified,
    SessionEnded,
    SessionStarted,
    StationBooted,
    StationConnected,
)
from tests.store.engines import Engine, fresh_schema
from tests.store.helpers import T0, a_plan

STATIONS = 6


def write_stream(store: StoreTables, seed: int) -> None:
    """A few hundred writes of every kind, the same for the same seed."""
    rnd = random.Random(seed)
    running: dict[int, str] = {}
    at = T0
    for c in range(STATIONS):
        store.record_event(StationConnected(f"CP{c}", "ocpp2.0.1", at))
        store.record_event(StationBooted(f"CP{c}", "acme", f"m{c % 2}", at, firmware="1"))
    for k in range(240):
        at += timedelta(seconds=rnd.choice((0, 7, 20, 61)), microseconds=rnd.choice((0, 250)))
        c = rnd.randrange(STATIONS)
        cid = f"CP{c}/1"
        roll = rnd.random()
        if c not in running and roll < 0.3:
            running[c] = f"tx{k}"
            store.record_event(SessionStarted(cid, f"tx{k}", f"tag{c % 3}", 1000.0 * k, at))
            store.record_event(ConnectorStatusChanged(cid, "Charging", at))
        elif c in running and roll < 0.4:
            store.record_event(
                SessionEnded(running.pop(c), 1000.0 * k + 99.5, at, "Local", cid, f"CP{c}")
            )
        elif c in running and roll < 0.5:
            departure = at + timedelta(hours=rnd.randint(1, 5))
            store.record_event(EvChargingNeeds(cid, at, departure, energy_wh=rnd.uniform(1, 9e4)))
            store.record_event(PriorityChargingNotified(f"CP{c}", running[c], roll < 0.45, at))
        elif roll < 0.85:
            amps = rnd.uniform(0, 32)
            store.record_event(
                MeterReading(
                    cid,
                    at - timedelta(seconds=rnd.choice((0, 0, 90))),  # now and then late
                    running.get(c),
                    current_a={"L1": amps, "L2": amps / 2},
                    total_power_w=amps * 230 if roll < 0.8 else None,
                    energy_wh=None if roll > 0.82 else 1000.0 * k + rnd.uniform(0, 500),
                    soc_pct=rnd.choice((None, 40.0, 41.5)),
                )
            )
        elif roll < 0.95:
            ids = store.profiles_sent(
                [
                    (f"CP{x}", f"CP{x}/1", "tx", running.get(x), at, [(0, rnd.uniform(6, 32))])
                    for x in rnd.sample(range(STATIONS), 3)
                ]
                + [(f"CP{c}", None, "tx_default", None, at, [(0, rnd.uniform(6, 32))])],
                at,
            )
            answers = [(i, rnd.choice(("accepted", "rejected", "timeout")), "") for i in ids]
            store.profiles_answered(answers[: rnd.randint(0, 4)], at)
        else:
            store.save_plan(a_plan(3, 8, rnd.uniform(0, 16)), at, f"r{k}")
            store.audit(at, "override_set", "grid", {"k": k, "a": rnd.uniform(0, 1)})


READS: dict[str, Callable[[StoreTables], Any]] = {
    "active sessions": lambda s: s.active_sessions(),
    "recent sessions": lambda s: s.recent_sessions(500),
    "past sessions": lambda s: [s.past_sessions(f"tag{t}", 100) for t in range(3)],
    "stations": lambda s: s.stations(),
    "meter last": lambda s: s.meter_last_all(),
    "meter minutes": lambda s: s.meter_minutes_since(T0),
    "minutes of one": lambda s: s.meter_minutes("CP1/1"),
    "energy": lambda s: s.meter_energy(T0, T0 + timedelta(days=2)),
    "limits in force": lambda s: sorted(s.limits_in_force(), key=lambda x: x.connector_id),
    "unanswered": lambda s: sorted(s.unanswered_profiles(), key=lambda x: x.connector_id),
    "last profiles": lambda s: s.last_profiles(),
    "audit": lambda s: s.audit_page(10_000),
    "plans": lambda s: [
        {**p, "current_a": None if p["current_a"] is None else p["current_a"].tolist()}
        for p in s.plans_since(T0, arrays=True)
    ],
    "transaction id": lambda s: s.next_transaction_id(),
}


@pytest.mark.parametrize("seed", [1, 2])
def test_both_engines_answer_every_read_alike(seed: int, tmp_path: Path, postgres_admin: str):
    answers: dict[str, dict[str, Any]] = {}
    with fresh_schema(postgres_admin) as url:
        for engine in (Engine("sqlite", f"sqlite:///{tmp_path / 'g.db'}"), Engine("pg", url)):
            store = engine.open()
            try:
                write_stream(store, seed)
                answers[engine.name] = {name: read(store) for name, read in READS.items()}
            finally:
                store.close()
    lite, pg = answers["sqlite"], answers["pg"]
    assert lite["active sessions"] and lite["limits in force"] and lite["plans"]  # not empty
    for name in READS:
        assert pg[name] == lite[name], name
    assert np.isfinite(list(lite["energy"].values())).all()
