"""Retention: the database stays small for a year unattended.

Each kind of row has its horizon (`RetentionConfig`): one-minute meter rows
are rolled up into per-connector intervals (energy exact to the Wh, line
currents' mean and max) and the roll-ups kept; plans keep their figures and
dispatched slot, the whole current array only at a bounded rate and for the
latest; ended sessions, audit events, forecasts received and profiles sent are
deleted past theirs. Nothing a running session or an unfinished DSO energy
report still reads is deleted.

`Retention.prune_step` does one bounded batch in one transaction (a kill
between or inside batches loses nothing); `run_retention` runs those steps in
a worker thread, with a pause between them, on its own connection to the file,
so the event loop's writes wait at most one batch.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import ctypes.util
import json
import logging
import re
import sqlite3
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from pydantic_core import PydanticCustomError

from gridshare.dso_reports import ENERGY_STATE
from gridshare.errors import UserError
from gridshare.store import DatabaseError, Store, connect, meter_readings, pruning
from gridshare.store.connection import SQLITE, Db
from gridshare.store.rollups import interval_start, roll_up_connector
from optimizer.site import station_of

log = logging.getLogger(__name__)

_DURATION = re.compile(r"(\d+)([dhms])")
_UNITS = {"d": "days", "h": "hours", "m": "minutes", "s": "seconds"}
FOREVER = "forever"

VACUUM_PAGES = 256
"""Free pages given back to the file system by one step."""


def parse_duration(text: str) -> timedelta | None:
    """``"7d"``, ``"12h"``, ``"15m"``, ``"30s"`` as a timedelta; ``"forever"``: None."""
    s = text.strip().lower()
    if s == FOREVER:
        return None
    m = _DURATION.fullmatch(s)
    if m is None or int(m[1]) == 0:
        raise ValueError(f"{text!r} is not a duration like 7d, 12h or 15m")
    return timedelta(**{_UNITS[m[2]]: int(m[1])})


class RetentionError(UserError, ValueError):
    """A retention setting is invalid; the message names the field."""


class RetentionConfig(BaseModel):
    """How long each kind of row is kept (``"forever"``: never deleted)."""

    model_config = ConfigDict(extra="forbid")

    raw_meter_values: str = "7d"
    """One-minute meter rows; older ones are rolled up."""
    rollup_interval: str = "15m"
    """The length of a roll-up row (whole minutes; a DSO reporting interval)."""
    rollups: str = FOREVER
    plans: str = "30d"
    full_plan_every: str = "15m"
    """At most one plan this often keeps its whole current array (and the latest)."""
    events: str = "365d"
    """Audit events (but the limits stations accepted: see ``profiles``)."""
    oscp_messages: str = "90d"
    """Forecasts received from the DSO."""
    ended_sessions: str = "365d"
    profiles: str = "30d"
    """Charging profiles sent and their answers, and the audit events of the limits
    accepted (one per profile: tens of thousands a day on a large site)."""
    check_every: str = "5m"
    """How often a pass looks for rows past their horizon."""
    batch_rows: Annotated[int, Field(ge=1, le=5000)] = 500
    """Rows one step deletes or rolls up at most (one transaction)."""
    pause_s: Annotated[float, Field(ge=0)] = 0.2
    """Pause between two steps of a pass (the event loop writes in between)."""

    @field_validator(
        "raw_meter_values", "rollups", "plans", "events", "oscp_messages", "ended_sessions",
        "profiles", mode="before",
    )  # fmt: skip
    @classmethod
    def _horizon(cls, v: Any) -> str:
        _checked(v)
        return str(v).strip().lower()

    @field_validator("rollup_interval", "full_plan_every", "check_every", mode="before")
    @classmethod
    def _period(cls, v: Any) -> str:
        if _checked(v) is None:
            raise _not_a_duration(v)
        return str(v).strip().lower()

    @field_validator("rollup_interval")
    @classmethod
    def _whole_minutes(cls, v: str) -> str:
        d = parse_duration(v)
        if d is None or d % timedelta(minutes=1):
            raise PydanticCustomError(
                "minutes", "{text} is not a whole number of minutes", {"text": repr(v)}
            )
        return v

    @classmethod
    def parse(cls, data: Mapping[str, Any]) -> RetentionConfig:
        """From the ``[retention]`` table; `RetentionError` names the field."""
        try:
            return cls.model_validate(data)
        except ValidationError as e:
            first = e.errors()[0]
            where = ".".join(str(p) for p in ("retention", *first["loc"]))
            raise RetentionError(f"{where}: {first['msg']}") from None

    def horizon(self, name: str) -> timedelta | None:
        """The field's duration (None: forever)."""
        return parse_duration(getattr(self, name))

    def period(self, name: str) -> timedelta:
        d = parse_duration(getattr(self, name))
        assert d is not None
        return d


def _checked(v: Any) -> timedelta | None:
    if not isinstance(v, str):
        raise _not_a_duration(v)
    try:
        return parse_duration(v)
    except ValueError:
        raise _not_a_duration(v) from None


def _not_a_duration(v: Any) -> PydanticCustomError:
    return PydanticCustomError(
        "duration", "{text} is not a duration like 7d, 12h or 15m", {"text": repr(v)}
    )


@dataclass(frozen=True)
class PruneReport:
    """What one step did."""

    job: str
    """The kind of work: "roll-up", "thin plans", "plans", "audit", "forecasts",
    "profiles", "accepted limits", "sessions", "rollups", "vacuum"; "" when there
    was none."""
    rows: int
    seconds: float
    """How long the step took (its transaction held the write lock about as long)."""
    longest_s: float
    """The longest step so far."""

    @property
    def done(self) -> bool:
        """Nothing was left to do."""
        return self.rows == 0


class Retention:
    """Steps of bounded work over the database file, on a connection of their own
    (usable from one thread at a time, any thread)."""

    def __init__(self, path: str, config: RetentionConfig) -> None:
        if path == ":memory:":
            raise ValueError("retention needs a database file, not :memory:")
        self.config = config
        self.longest_step_s = 0.0
        self._db = connect(path)  # a SQLite file or a PostgreSQL URL
        self._connectors: list[str] = []
        """Connectors whose minutes the current pass has yet to roll up."""
        self._idle: set[str] = set()
        """Kinds of work that found none in the current pass."""
        self._jobs: list[tuple[str, Callable[[Db, datetime], int]]] = [
            ("roll-up", self._roll_up),
            ("thin plans", self._thin_plans),
            ("plans", self._horizon_job("plans", pruning.prune_plans)),
            ("audit", self._horizon_job("events", pruning.prune_audit)),
            ("forecasts", self._horizon_job("oscp_messages", pruning.prune_forecasts)),
            ("profiles", self._horizon_job("profiles", pruning.prune_profiles)),
            ("accepted limits", self._horizon_job("profiles", pruning.prune_accepted_limits)),
            ("sessions", self._prune_sessions),
            ("rollups", self._horizon_job("rollups", pruning.prune_rollups)),
            # the site meters: raw rows past the raw horizon (their roll-ups are kept)
            (
                "site meter readings",
                self._horizon_job("raw_meter_values", meter_readings.prune_site_meter_readings),
            ),
            ("group roll-ups", self._horizon_job("rollups", meter_readings.prune_group_rollups)),
        ]

    def close(self) -> None:
        self._db.close()

    def prune_step(self, now: datetime) -> PruneReport:
        """One batch of the first kind of work that has some (one transaction),
        else one step of giving free pages back; ``rows == 0``: nothing left."""
        for job, run in self._jobs:
            if job in self._idle:
                continue
            started = time.perf_counter()
            self._db.execute(self._db.dialect.begin)
            try:
                rows = run(self._db, now) if pruning.claim(self._db) else 0  # one node prunes
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")
            if rows:
                return self._report(job, rows, started)
            self._idle.add(job)
        started = time.perf_counter()
        free = 0
        if self._db.dialect is SQLITE:  # PostgreSQL's autovacuum frees its pages
            free = int(self._db.execute("PRAGMA freelist_count").fetchone()[0])
        if free:
            # run to its end (one step of the statement frees one page)
            self._db.execute(f"PRAGMA incremental_vacuum({VACUUM_PAGES})").fetchall()
            return self._report("vacuum", min(free, VACUUM_PAGES), started)
        self._connectors, self._idle = [], set()
        return self._report("", 0, started)

    def _report(self, job: str, rows: int, started: float) -> PruneReport:
        took = time.perf_counter() - started
        self.longest_step_s = max(self.longest_step_s, took)
        return PruneReport(job, rows, took, self.longest_step_s)

    def _horizon_job(
        self, field: str, prune: Callable[[Db, datetime, int], int]
    ) -> Callable[[Db, datetime], int]:
        def run(db: Db, now: datetime) -> int:
            keep = self.config.horizon(field)
            return 0 if keep is None else prune(db, now - keep, self.config.batch_rows)

        return run

    def _thin_plans(self, db: Db, now: datetime) -> int:
        # a plan's array is large: a 25th of a batch of them
        budget = max(1, self.config.batch_rows // 25)
        return pruning.thin_plans(db, self.config.period("full_plan_every"), budget)

    def _prune_sessions(self, db: Db, now: datetime) -> int:
        keep = self.config.horizon("ended_sessions")
        if keep is None:
            return 0
        return pruning.prune_sessions(db, now - keep, self.config.batch_rows, _uncounted(db))

    def _roll_up(self, db: Db, now: datetime) -> int:
        """Whole intervals past the raw horizon, connector after connector; a
        running session's minutes stay raw from the interval of its start."""
        keep = self.config.horizon("raw_meter_values")
        if keep is None:
            return 0
        interval = self.config.period("rollup_interval")
        if not self._connectors:
            self._connectors = [
                r[0] for r in db.execute("SELECT connector_id FROM meter_last ORDER BY 1 DESC")
            ]
        running = {
            r[0]: datetime.fromisoformat(r[1])
            for r in db.execute(
                "SELECT connector_id, MIN(started_at) FROM sessions WHERE ended_at IS NULL "
                "GROUP BY connector_id"
            )
        }
        budget, done = self.config.batch_rows, 0
        while self._connectors and done < budget:
            cid = self._connectors[-1]
            before = interval_start(min(now - keep, running.get(cid, now)), interval)
            rolled, more = roll_up_connector(db, cid, before, interval, budget - done)
            done += rolled
            if not more:
                self._connectors.pop()
        return done


def _uncounted(db: Db) -> set[tuple[str, str]]:
    """Sessions the DSO energy counter has not yet counted to their end (it reads
    them again on a restart)."""
    row = db.execute("SELECT value FROM meta WHERE key = ?", (f"state:{ENERGY_STATE}",)).fetchone()
    if row is None:
        return set()
    opened = json.loads(row[0]).get("open", [])
    if isinstance(opened, Mapping):  # saved before sessions were keyed by station
        return {(station_of(str(c)), str(tx)) for tx, (c, _) in opened.items()}
    return {(str(station), str(tx)) for station, tx, *_ in opened}


async def run_retention(
    store: Store | str,
    config: RetentionConfig,
    clock: Callable[[], datetime],
    stop_event: asyncio.Event,
) -> None:
    """Passes of `Retention.prune_step` in a worker thread until ``stop_event`` is
    set: steps ``pause_s`` apart, passes ``check_every`` apart on ``clock`` (the
    service's, which a demo runs faster than the wall). ``store``: a
    `SqliteStore` (its file) or a database path."""
    path = str(getattr(store, "path", store))
    if path == ":memory:":
        log.info("retention: an in-memory database keeps everything")
        return
    retention = await asyncio.to_thread(Retention, path, config)
    pace = _Pace(clock)
    try:
        while not stop_event.is_set():
            due = clock() + config.period("check_every")
            try:
                await _one_pass(retention, clock, stop_event)
            except (sqlite3.Error, DatabaseError) as e:  # a locked or full disk: the rows wait
                log.warning("retention: %s; trying again in %s", e, config.check_every)
            while not stop_event.is_set() and (left := pace.wall_s(due)) > 0:
                await _wait(stop_event, left)
    finally:
        await asyncio.to_thread(retention.close)


def _libc() -> Any:
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    except OSError:
        return None
    return libc if hasattr(libc, "malloc_trim") and hasattr(libc, "mallopt") else None


_LIBC = _libc()
"""glibc, for its heap's knobs (None elsewhere: nothing to do)."""
M_ARENA_MAX = -8
HEAP_ARENAS = 2
"""The event loop's and the worker threads' allocations share this many arenas."""


def limit_heap_arenas() -> None:
    """Fewer malloc arenas: glibc gives each thread that allocates one of up to
    8 per core, each keeping its own free memory (call before threads start)."""
    if _LIBC is not None:
        _LIBC.mallopt(M_ARENA_MAX, HEAP_ARENAS)


def trim_heap() -> None:
    """Give the C heap's free pages back to the system: what Python, numpy and
    SQLite free is kept by glibc, scattered between live blocks, and resident."""
    if _LIBC is not None:
        _LIBC.malloc_trim(0)


class _Pace:
    """How many wall seconds until a time of ``clock``, from its pace so far."""

    LONGEST_WAIT_S = 60.0
    """Looked at again at least this often (a clock may jump or change pace)."""
    LEARN_S = 0.5

    def __init__(self, clock: Callable[[], datetime]) -> None:
        self._clock = clock
        self._t0, self._wall0 = clock(), time.monotonic()

    def wall_s(self, t: datetime) -> float:
        now, wall = self._clock(), time.monotonic()
        left = (t - now).total_seconds()
        if left <= 0:
            return 0.0
        elapsed = wall - self._wall0
        if elapsed < self.LEARN_S:  # its pace not known yet: look again soon
            return min(left, self.LEARN_S)
        speed = (now - self._t0).total_seconds() / elapsed
        return min(max(left / max(speed, 1e-3), 0.01), self.LONGEST_WAIT_S)


async def _one_pass(
    retention: Retention, clock: Callable[[], datetime], stop_event: asyncio.Event
) -> None:
    """Steps until nothing is left (or stopped), ``pause_s`` apart; logs what it did.
    Then the C heap gives its free pages back."""
    steps, rows = 0, 0
    while not stop_event.is_set():
        report = await asyncio.to_thread(retention.prune_step, clock())
        if report.done:
            break
        steps, rows = steps + 1, rows + report.rows
        await _wait(stop_event, retention.config.pause_s)
    await asyncio.to_thread(trim_heap)
    if steps:
        log.info(
            "retention: %d rows in %d %s, longest step %.0f ms",
            rows,
            steps,
            "step" if steps == 1 else "steps",
            retention.longest_step_s * 1000,
        )


async def _wait(stop_event: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop_event.wait(), seconds)
