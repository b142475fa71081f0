"""Running a rollout: the lowerings, every answer awaited, then the raisings
that still fit. The one part of the rollout that talks to stations, through a
`StationGateway` (the OCPP adapter in production, a fake in tests)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import numpy as np

from gridshare.logs import fields
from gridshare.rollout.book import LimitBook
from gridshare.rollout.load import LoadModel
from gridshare.rollout.schedule import EPS, LimitSchedule, schedule_from_spec
from gridshare.rollout.steps import Hysteresis, RolloutSteps, plan_rollout, raise_fits
from ocpp_adapter.events import ChargingLimitSpec, CommandOutcome, CommandResult
from ocpp_adapter.ports import LimitCommands
from optimizer.problem import TimeGrid
from optimizer.site import Line

log = logging.getLogger(__name__)

StationGateway = LimitCommands
"""What the rollout needs of the OCPP adapter: its limit commands port."""


SpecBuilder = Callable[[str, LimitSchedule], tuple[str, ChargingLimitSpec] | None]
"""Connector, schedule → (station id, profile), or None if it cannot be sent now
(e.g. no transaction id known)."""
DefaultBuilder = Callable[[str, float], tuple[str, ChargingLimitSpec]]
"""Connector, limit → (station id, the connector's own TxDefault profile)."""


@dataclass
class RolloutReport:
    sent: int = 0
    accepted: int = 0
    failed: dict[str, CommandOutcome] = field(default_factory=dict)
    withheld: list[str] = field(default_factory=list)
    """Raisings not sent because they did not fit next to the worst case."""
    unchanged: int = 0
    lowered: int = 0
    raised: int = 0
    started: float = 0.0
    finished: float = 0.0
    last_sent_at: float | None = None
    """Monotonic time the last profile of the rollout went out."""

    @property
    def needs_replan(self) -> bool:
        return bool(self.failed or self.withheld)


Sending = Callable[[list[tuple[str, str, ChargingLimitSpec]]], None]
"""Called with (connector, station, profile) of a batch just before it is sent."""
Answers = Callable[[list[tuple[str, LimitSchedule, ChargingLimitSpec, CommandResult]]], None]
"""Called with (connector, schedule, profile, answer) of a batch once all are answered."""


async def run_rollout(
    gateway: StationGateway,
    book: LimitBook,
    grid: TimeGrid,
    targets: Mapping[str, np.ndarray],
    model: LoadModel,
    cap: np.ndarray,
    build: SpecBuilder,
    *,
    hysteresis: Hysteresis = Hysteresis(),  # noqa: B008 (frozen: one shared default is safe)
    pin_s: float = 60.0,
    clock: Callable[[], float] = time.monotonic,
    on_sending: Sending | None = None,
    on_answers: Answers | None = None,
    concurrency: int = 256,
    answer_timeout_s: float = 15.0,
    defaults: Mapping[str, float] | None = None,
    build_default: DefaultBuilder | None = None,
    live_cap: Callable[[], np.ndarray] | None = None,
) -> RolloutReport:
    """Send the lowerings, await every answer, then the raisings that still fit.

    ``defaults``: connector → the TxDefault limit it should have of its own
    (``build_default`` makes the profile). Lowered with the lowerings, raised
    with the raisings when the raise fits; raised only by a meaningful step.
    ``live_cap``: the capacity as it is once the lowerings are answered (a
    meter may have seen the building rise meanwhile); raisings fit under both.
    """
    report = RolloutReport(started=clock())
    steps = _plan_steps(book, grid, targets, model, cap, hysteresis)
    report.unchanged = len(steps.unchanged)
    sender = _Sender(
        gateway,
        book,
        grid,
        report,
        build,
        build_default,
        model.lines,
        pin_s=pin_s,
        clock=clock,
        on_sending=on_sending,
        on_answers=on_answers,
        answer_timeout_s=answer_timeout_s,
        in_flight=asyncio.Semaphore(concurrency),
    )
    default_low, default_high = _default_changes(book, defaults or {}, hysteresis)

    lowered = await asyncio.gather(
        sender.send_batch([(cid, v) for cid, v in steps.lowerings.items() if book.get(cid).active]),
        sender.send_defaults(default_low),
    )
    report.lowered = sum(lowered)

    # raisings: each checked against the worst case *now* (answers and new
    # arrivals included) plus the raisings already admitted before it, a
    # profile not yet replaced on the lines it was sent for
    raise_cap = cap if live_cap is None else np.minimum(cap, live_cap())
    wide_model, wide_cap = model.widened(book.site, book.wider_lines(model.lines), raise_cap)
    headroom = _Headroom.now(book, grid, wide_model, wide_cap)
    # restoring a fallback first: the plan reserved it
    default_batch = headroom.admit_defaults(book, report, default_high)
    batch = headroom.admit_raisings(book, report, steps.raisings)
    raised = await asyncio.gather(sender.send_batch(batch), sender.send_defaults(default_batch))
    report.raised = sum(raised)
    report.finished = clock()
    return report


def _plan_steps(
    book: LimitBook,
    grid: TimeGrid,
    targets: Mapping[str, np.ndarray],
    model: LoadModel,
    cap: np.ndarray,
    hysteresis: Hysteresis,
) -> RolloutSteps:
    """The rollout's plan for the targets of connectors with a running transaction."""
    active_targets = {cid: v for cid, v in targets.items() if book.get(cid).active}
    # a running transaction without a profile of its own always gets one: its
    # schedule (future periods included) must be at the station
    force = frozenset(
        cid for cid in active_targets if book.get(cid).force_send or book.get(cid).accepted is None
    )
    # a car now counted on fewer lines than its profile in force limits: that
    # profile goes again for the fewer lines first (at most as high), a lowering
    # on the lines it leaves
    wide = frozenset(book.wider_lines(model.lines)).intersection(active_targets)
    profiles = {cid: book.worst(cid, grid, fallback=False) for cid in active_targets}
    steps = plan_rollout(
        grid, book.worst_all(grid), active_targets, model, cap, hysteresis, force, profiles
    )
    again = {
        cid: np.minimum(profiles[cid], np.round(np.asarray(active_targets[cid], dtype=float), 1))
        for cid in wide
        if cid not in steps.lowerings
    }
    if not again:
        return steps
    unchanged = tuple(cid for cid in steps.unchanged if cid not in again)
    raisings = {
        cid: v
        for cid, v in steps.raisings.items()
        if cid not in again or np.any(v > again[cid] + EPS)
    }
    return RolloutSteps({**steps.lowerings, **again}, raisings, unchanged)


def _default_changes(
    book: LimitBook, defaults: Mapping[str, float], hysteresis: Hysteresis
) -> tuple[list[tuple[str, float]], list[tuple[str, float]]]:
    """(lowerings, raisings) of the connectors' own fallback limits; a raising
    only by a meaningful step."""
    low: list[tuple[str, float]] = []
    high: list[tuple[str, float]] = []
    for cid, limit in defaults.items():
        cur = book.default_worst(cid)
        if limit < cur - EPS:
            low.append((cid, limit))
        elif limit > cur + max(hysteresis.min_change_a, EPS) - EPS:
            high.append((cid, limit))
    return low, high


@dataclass
class _Sender:
    """Sends batches of profiles, records every answer in the book and the report."""

    gateway: StationGateway
    book: LimitBook
    grid: TimeGrid
    report: RolloutReport
    build: SpecBuilder
    build_default: DefaultBuilder | None
    lines: Mapping[str, tuple[Line, ...]]
    """Connector → the lines the rollout counts it on (its profiles limit)."""
    pin_s: float
    clock: Callable[[], float]
    on_sending: Sending | None
    on_answers: Answers | None
    answer_timeout_s: float
    in_flight: asyncio.Semaphore
    """Calls in flight at most (``concurrency``)."""
    station_locks: dict[str, asyncio.Lock] = field(default_factory=dict)
    """One call at a time per station."""

    async def call(self, station_id: str, spec: ChargingLimitSpec) -> CommandResult:
        lock = self.station_locks.setdefault(station_id, asyncio.Lock())
        async with self.in_flight, lock:
            self.report.sent += 1
            self.report.last_sent_at = self.clock()
            timeout = self.answer_timeout_s
            try:
                return await asyncio.wait_for(self.gateway.set_limit(station_id, spec), timeout)
            except TimeoutError:
                return CommandResult(CommandOutcome.TIMEOUT, f"no answer in {timeout} s")
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a broken gateway call: treat like no answer
                return CommandResult(CommandOutcome.TIMEOUT, f"{type(exc).__name__}: {exc}")

    async def send_batch(self, items: list[tuple[str, np.ndarray]]) -> int:
        """Transaction profiles (connector, per-slot A); the number accepted."""
        book, report = self.book, self.report
        built: list[tuple[str, str, ChargingLimitSpec, LimitSchedule]] = []
        for cid, values in items:
            b = self.build(cid, LimitSchedule.from_slots(self.grid, values))
            if b is not None:
                built.append((cid, b[0], b[1], schedule_from_spec(b[1])))
        if not built:
            return 0
        if self.on_sending is not None:
            self.on_sending([(cid, sid, spec) for cid, sid, spec, _ in built])
        for cid, _, _, sched in built:
            book.sending(cid, sched, self.lines.get(cid))
        results = await asyncio.gather(*(self.call(sid, spec) for _, sid, spec, _ in built))
        now = self.clock()
        ok = 0
        for (cid, sid, spec, sched), result in zip(built, results, strict=True):
            book.answered(cid, sched, result, now, pin_s=self.pin_s, lines=self.lines.get(cid))
            _log_refusal(cid, sid, spec, result)
            if result.outcome is CommandOutcome.ACCEPTED:
                ok += 1
            else:
                report.failed[cid] = result.outcome
        report.accepted += ok
        if self.on_answers is not None:
            self.on_answers(
                [
                    (cid, sched, spec, r)
                    for (cid, _, spec, sched), r in zip(built, results, strict=True)
                ]
            )
        return ok

    async def send_defaults(self, items: list[tuple[str, float]]) -> int:
        """The connectors' own fallback limits (connector, A); the number accepted."""
        if not items or self.build_default is None:
            return 0
        book, report = self.book, self.report
        built = [(cid, limit, *self.build_default(cid, limit)) for cid, limit in items]
        if self.on_sending is not None:
            self.on_sending([(cid, sid, spec) for cid, _, sid, spec in built])
        for cid, limit, _, _ in built:
            book.default_sending(cid, limit)
        results = await asyncio.gather(*(self.call(sid, spec) for _, _, sid, spec in built))
        ok = 0
        now = self.clock()
        for (cid, limit, sid, spec), result in zip(built, results, strict=True):
            book.default_answered(cid, limit, result, own=True)
            _log_refusal(cid, sid, spec, result)
            if result.outcome is CommandOutcome.ACCEPTED:
                ok += 1
            else:
                # left alone like a refused profile: the next plan reserves its worst case
                book.pin(cid, result, now, pin_s=self.pin_s)
                report.failed[cid] = result.outcome
        report.accepted += ok
        if self.on_answers is not None:
            self.on_answers(
                [
                    (cid, LimitSchedule.constant(spec.start, limit), spec, r)
                    for (cid, limit, _, spec), r in zip(built, results, strict=True)
                ]
            )
        return ok


_UNANSWERED = frozenset({CommandOutcome.TIMEOUT})
_NOT_SENT = frozenset({CommandOutcome.NOT_CONNECTED, CommandOutcome.RATE_LIMITED})


def _log_refusal(cid: str, station_id: str, spec: ChargingLimitSpec, result: CommandResult) -> None:
    """A profile the station did not accept: rejected (or a CALLERROR), unanswered
    (warnings), or not sent as it is offline or asked us to wait (info)."""
    if result.outcome is CommandOutcome.ACCEPTED:
        return
    if result.outcome in _NOT_SENT:
        level, what = logging.INFO, "not sent"
    else:
        level = logging.WARNING
        what = "unanswered" if result.outcome in _UNANSWERED else "rejected"
    log.log(
        level,
        "profile %s %s",
        what,
        fields(
            station=station_id,
            connector=cid,
            purpose=spec.purpose,
            limit_a=spec.periods[0].limit_a if spec.periods else None,
            outcome=result.outcome,
            detail=result.detail or None,
        ),
    )


@dataclass
class _Headroom:
    """The worst case of every connector, raisings admitted so far included,
    and the load it puts on every family."""

    grid: TimeGrid
    model: LoadModel
    cap: np.ndarray
    worst: dict[str, np.ndarray]
    load: np.ndarray

    @classmethod
    def now(cls, book: LimitBook, grid: TimeGrid, model: LoadModel, cap: np.ndarray) -> _Headroom:
        worst = book.worst_all(grid)
        return cls(grid, model, cap, worst, model.load(worst, grid.slots))

    def admit(self, cid: str, new: np.ndarray) -> bool:
        """Count raising ``cid`` to ``new`` in, if it fits."""
        if not raise_fits(cid, new, self.worst, self.model, self.cap, self.load):
            return False
        old = self.worst.get(cid, np.zeros(self.grid.slots))
        delta = np.maximum(new - old, 0.0)
        for f, coef in self.model.members.get(cid, ()):
            self.load[f] += coef * delta
        self.worst[cid] = np.maximum(old, new)
        return True

    def admit_defaults(
        self, book: LimitBook, report: RolloutReport, raisings: list[tuple[str, float]]
    ) -> list[tuple[str, float]]:
        """The fallback raisings that fit (the others are withheld)."""
        batch: list[tuple[str, float]] = []
        for cid, limit in raisings:
            if cid in report.failed:
                continue
            c = book.get(cid)
            if not c.active and not book.count_idle:
                continue
            new = np.maximum(self.worst.get(cid, np.zeros(self.grid.slots)), limit)
            if not self.admit(cid, new):
                report.withheld.append(cid)
                continue
            batch.append((cid, limit))
        return batch

    def admit_raisings(
        self, book: LimitBook, report: RolloutReport, raisings: Mapping[str, np.ndarray]
    ) -> list[tuple[str, np.ndarray]]:
        """The transaction profiles' raisings that fit (the others are withheld)."""
        batch: list[tuple[str, np.ndarray]] = []
        for cid, new in raisings.items():
            c = book.get(cid)
            if not c.active or cid in report.failed:
                continue
            if not self.admit(cid, new):
                report.withheld.append(cid)
                continue
            batch.append((cid, new))
        return batch
