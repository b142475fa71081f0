"""The book of limits in force: per connector, what may be in force whatever
the stations did with our messages (see the `gridshare.rollout` docstring)."""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

import numpy as np

from gridshare.rollout.schedule import LimitSchedule
from ocpp_adapter.events import CommandOutcome, CommandResult
from optimizer.problem import TimeGrid
from optimizer.site import Line, Site, station_of


class PinReason(StrEnum):
    REJECTED = "rejected"
    NO_ANSWER = "no_answer"
    RATE_LIMITED = "rate_limited"
    NOT_CONNECTED = "not_connected"


@dataclass
class ConnectorLimits:
    """What we know of one connector's limit in force."""

    active: bool = False
    """A transaction runs: the connector may draw up to its limit."""
    accepted: LimitSchedule | None = None
    """The transaction's profile the station last accepted."""
    uncertain: list[LimitSchedule] = field(default_factory=list)
    """Sent, never confirmed or refused: possibly in force."""
    accepted_lines: frozenset[Line] | None = None
    """The lines ``accepted`` was sent for (the car was counted on); None: its wiring."""
    uncertain_lines: frozenset[Line] | None = frozenset()
    """The lines the ``uncertain`` profiles were sent for, together (None: the wiring)."""
    default_a: float | None = None
    """The station's accepted fallback (TxDefault on connector 0) limit."""
    own_default_a: float | None = None
    """The connector's own accepted TxDefault limit (overrides the station's)."""
    defaults_sent: list[float] = field(default_factory=list)
    """TxDefault limits (either level) on their way: possibly in force."""
    pinned_until: float = -math.inf
    """Monotonic time before which the planner must treat it as fixed load."""
    pin_reason: PinReason | None = None
    force_send: bool = False
    """Send the next target even if hysteresis says unchanged (e.g. after a reboot)."""
    worst_cache: dict[bool, tuple[tuple[object, ...], np.ndarray]] = field(
        default_factory=dict, repr=False, compare=False
    )
    """``LimitBook.worst`` per ``fallback`` flag with the state it was computed from."""


@dataclass
class LimitBook:
    """Per connector: the limits that may be in force (see the `gridshare.rollout` docstring)."""

    site: Site
    connectors: dict[str, ConnectorLimits] = field(default_factory=dict)
    count_idle: bool = False
    """Count a connector without a transaction at its fallback limit too: a car
    may plug in at any moment and draw it before the next plan reaches it."""
    on_sending: list[Callable[[str, LimitSchedule], None]] = field(
        default_factory=list, repr=False, compare=False
    )
    """Told of each transaction profile as it goes out (the meters time limit changes)."""

    def get(self, cid: str) -> ConnectorLimits:
        c = self.connectors.get(cid)
        if c is None:
            c = self.connectors[cid] = ConnectorLimits()
        return c

    def default_in_force(self, cid: str) -> float | None:
        """The accepted TxDefault that applies: the connector's own, else the station's."""
        c = self.get(cid)
        return c.own_default_a if c.own_default_a is not None else c.default_a

    def default_worst(self, cid: str) -> float:
        """The TxDefault limit the connector may have (its maximum if none is known)."""
        c = self.get(cid)
        mx = self.site.connectors[cid].max_current_a
        d = self.default_in_force(cid)
        return min(mx, max([mx if d is None else d, *c.defaults_sent]))

    def base(self, cid: str) -> LimitSchedule | float:
        """Last accepted profile, else the fallback limit, else the connector's maximum."""
        c = self.get(cid)
        if c.accepted is not None:
            return c.accepted
        return self.default_worst(cid)

    def worst(self, cid: str, grid: TimeGrid, *, fallback: bool = True) -> np.ndarray:
        """What the connector may draw in each slot, whatever happened to our messages.

        ``fallback=False``: for a running transaction, only what its profiles allow.
        """
        c = self.get(cid)
        # re-plans ask for every connector's worst case several times while few
        # of them change: keep it until what it is computed from changes
        # (schedules are immutable; tuples compare identical items without __eq__)
        key = (
            grid,
            self.count_idle,
            c.active,
            c.accepted,
            len(c.uncertain),
            *c.uncertain,
            c.default_a,
            c.own_default_a,
            *c.defaults_sent,
        )
        hit = c.worst_cache.get(fallback)
        if hit is not None and hit[0] == key:
            return hit[1]
        out = self._worst(c, cid, grid, fallback)
        out.setflags(write=False)
        c.worst_cache[fallback] = (key, out)
        return out

    def _worst(self, c: ConnectorLimits, cid: str, grid: TimeGrid, fallback: bool) -> np.ndarray:
        if not c.active:
            if not self.count_idle:
                return np.zeros(grid.slots)
            return np.full(grid.slots, self.default_worst(cid))
        b = self.base(cid)
        out = b.on(grid) if isinstance(b, LimitSchedule) else np.full(grid.slots, float(b))
        for s in c.uncertain:
            out = np.maximum(out, s.on(grid))
        if self.count_idle and fallback:
            # the transaction may end at any moment: then its fallback is in force
            out = np.maximum(out, self.default_worst(cid))
        return np.minimum(out, self.site.connectors[cid].max_current_a)

    def worst_all(self, grid: TimeGrid) -> dict[str, np.ndarray]:
        if self.count_idle:
            return {cid: self.worst(cid, grid) for cid in self.site.connectors}
        return {cid: self.worst(cid, grid) for cid, c in self.connectors.items() if c.active}

    def worst_max(self, cid: str, now: datetime, grid: TimeGrid) -> float:
        """The highest limit the connector may have from now on (a scalar to reserve)."""
        w = self.worst(cid, grid)
        first = max(0, min(grid.slots - 1, math.floor(grid.position(now))))
        return float(np.max(w[first:])) if len(w) else 0.0

    # --- transitions ---------------------------------------------------------------

    def profile_lines(self, cid: str) -> frozenset[Line]:
        """The lines the profiles that may be in force limit: those each was sent
        for (its fallback, without an accepted one: every wired line)."""
        c = self.get(cid)
        wired = frozenset(self.site.connectors[cid].lines)
        out = c.accepted_lines if c.accepted is not None else None
        out = wired if out is None else out
        return out | (wired if c.uncertain_lines is None else c.uncertain_lines)

    def wider_lines(self, counted: Mapping[str, tuple[Line, ...]]) -> dict[str, tuple[Line, ...]]:
        """Running transactions whose profiles in force limit more lines than
        ``counted`` (connector → lines) counts them on, e.g. a car just learned to
        load one line: connector → every line to count it on until a profile for
        the fewer lines is accepted."""
        out = {}
        for cid, c in self.connectors.items():
            if not c.active or cid not in counted:
                continue
            now = counted[cid]
            if len(now) >= len(self.site.connectors[cid].lines):
                continue  # counted on every wired line: nothing is wider
            more = self.profile_lines(cid).difference(now)
            if more:
                out[cid] = tuple(
                    x for x in self.site.connectors[cid].lines if x in more or x in now
                )
        return out

    def start_transaction(self, cid: str) -> None:
        c = self.get(cid)
        c.active = True
        c.accepted = None
        c.uncertain.clear()
        c.accepted_lines, c.uncertain_lines = None, frozenset()

    def end_transaction(self, cid: str) -> None:
        c = self.get(cid)
        c.active = False
        c.accepted = None
        c.uncertain.clear()
        c.accepted_lines, c.uncertain_lines = None, frozenset()

    def sending(
        self, cid: str, schedule: LimitSchedule, lines: tuple[Line, ...] | None = None
    ) -> None:
        """A profile is on its way: until answered it may or may not be in force.
        ``lines``: those it limits (None: every wired line)."""
        c = self.get(cid)
        c.uncertain.append(schedule)
        sent = None if lines is None else frozenset(lines)
        c.uncertain_lines = (
            None if sent is None or c.uncertain_lines is None else c.uncertain_lines | sent
        )
        for tell in self.on_sending:
            tell(cid, schedule)

    def answered(
        self,
        cid: str,
        schedule: LimitSchedule,
        result: CommandResult,
        mono_now: float,
        *,
        pin_s: float = 60.0,
        lines: tuple[Line, ...] | None = None,
    ) -> None:
        """Record a station's answer to ``schedule`` (sent for ``lines``: see `sending`)."""
        c = self.get(cid)
        if result.outcome is CommandOutcome.ACCEPTED:
            # the accepted profile replaces everything sent before it
            c.accepted = schedule
            c.accepted_lines = None if lines is None else frozenset(lines)
            c.uncertain.clear()
            c.uncertain_lines = frozenset()
            c.pinned_until, c.pin_reason, c.force_send = -math.inf, None, False
            return
        self.pin(cid, result, mono_now, pin_s=pin_s)
        # a profile in doubt stays uncertain: it may have taken effect (the
        # adapter also says NOT_CONNECTED when the connection dropped after
        # the profile went out)
        if result.outcome not in (CommandOutcome.TIMEOUT, CommandOutcome.NOT_CONNECTED):
            c.uncertain = [s for s in c.uncertain if s is not schedule]
            if not c.uncertain:
                c.uncertain_lines = frozenset()

    def pin(self, cid: str, result: CommandResult, mono_now: float, *, pin_s: float) -> None:
        """Leave the connector alone for a while after an answer other than accepted."""
        c = self.get(cid)
        if result.outcome is CommandOutcome.TIMEOUT:
            c.pinned_until, c.pin_reason = mono_now + pin_s, PinReason.NO_ANSWER
        elif result.outcome is CommandOutcome.NOT_CONNECTED:
            c.pinned_until, c.pin_reason = mono_now + pin_s, PinReason.NOT_CONNECTED
        elif result.outcome is CommandOutcome.RATE_LIMITED:
            wait = result.retry_after_s if result.retry_after_s is not None else pin_s
            c.pinned_until, c.pin_reason = mono_now + max(wait, 0.0), PinReason.RATE_LIMITED
        else:  # REJECTED, ERROR
            c.pinned_until, c.pin_reason = mono_now + pin_s, PinReason.REJECTED

    def default_sending(self, cid: str, limit_a: float) -> None:
        """A TxDefault limit is on its way: until answered it may or may not be in force."""
        self.get(cid).defaults_sent.append(limit_a)

    def default_answered(
        self, cid: str, limit_a: float, result: CommandResult, *, own: bool = False
    ) -> None:
        """A fallback limit (the connector's own, or the station's) counts once
        accepted; one in doubt counts as the higher of the old and the new."""
        c = self.get(cid)
        with contextlib.suppress(ValueError):
            c.defaults_sent.remove(limit_a)
        if result.outcome is CommandOutcome.ACCEPTED:
            if own:
                c.own_default_a = limit_a
            else:
                c.default_a = limit_a
        elif result.outcome in (CommandOutcome.TIMEOUT, CommandOutcome.NOT_CONNECTED):
            # it may have taken effect (the connection may have dropped after it went out)
            if own:
                in_force = self.default_in_force(cid)
                if in_force is not None and limit_a > in_force:
                    c.own_default_a = limit_a
            elif c.default_a is not None:
                c.default_a = max(c.default_a, limit_a)

    def pinned(self, mono_now: float) -> dict[str, PinReason]:
        return {
            cid: c.pin_reason
            for cid, c in self.connectors.items()
            if c.pin_reason is not None and c.pinned_until > mono_now
        }

    def unpin_station(self, station_id: str, reasons: frozenset[PinReason]) -> None:
        """The station proved alive (reconnected, booted): try it again, and send
        every running transaction its profile again, pinned or not.

        A station cut off for longer than a 2.1 profile's ``maxOfflineDuration``
        dropped that profile for its TxDefault, and we may not have seen the
        connection go (a dead link is only replaced by the station's next one):
        what it holds is unknown until it accepts a profile again."""
        for cid, c in self.connectors.items():
            if station_of(cid) != station_id:
                continue
            if c.pin_reason in reasons:
                c.pinned_until, c.pin_reason = -math.inf, None
                c.force_send = True
            elif c.active:
                c.force_send = True
