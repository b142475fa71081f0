"""Direct highspy backend: the prepared arrays handed to HiGHS in one call.

PuLP builds its model object by object in Python, which is most of its time on
large sites; here the same LP goes to HiGHS as column-wise arrays.

`HighsPlanner` keeps its HiGHS instance between re-plans (warm start). Every
column and row carries a stable label code (session, absolute slot; group
family, absolute slot), so the previous optimal basis is carried over to the
new LP by label even when sessions come and go or the grid moves on a slot.

Limits on phasor sums (`optimizer.phasor`) are refined by cutting planes on the
same instance (`refine`): rows added, re-solved warm from the optimal basis;
a kept instance drops them before the next re-plan changes it in place.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import highspy
import numpy as np
from highspy._core import _Highs

from optimizer.phasor import KEPT_CUTS, MAX_CUT_ROUNDS, planes, sums, violated
from optimizer.prepare import SEGMENTS, PreparedLP

_STATUSES = tuple(highspy.HighsBasisStatus.__members__.values())
_KIND_SHIFT = 58
_ID_SHIFT = 28


@dataclass(frozen=True)
class RawResult:
    """What a backend returns: column values and how the solve ended."""

    x: np.ndarray | None
    """Values of the x columns, or None if the solver gave no usable point."""
    optimal: bool
    objective: float | None
    solve_ms: float
    detail: str
    warm: bool = False
    extra: np.ndarray | None = None
    """Values of the extra terms' columns (`PreparedLP.extras`), in order."""


HighsInstance = _Highs
"""What `quiet_highs` returns (HiGHS's core class)."""


def quiet_highs() -> HighsInstance:
    """A HiGHS instance that prints nothing.

    The core class, not highspy.Highs: that wrapper enables its callbacks in
    its constructor, which prints HiGHS's banner before output_flag can be
    turned off (once per process, into the service's and analysts' output).
    Every method used here is the core's; the wrapper only adds callbacks and
    interrupt handling, which a solve in a worker thread does not use."""
    h = _Highs()
    h.setOptionValue("output_flag", False)
    return h


def new_highs(time_limit_s: float | None) -> _Highs:
    h = quiet_highs()
    # highspy ≥ 1.13 presolve is slow on this LP (measured 3-17×); the LP is
    # already lean (no empty rows, no fixed columns), so presolve buys nothing.
    h.setOptionValue("presolve", "off")
    h.setOptionValue("solver", "simplex")
    # No "threads" option: HiGHS keeps one thread scheduler per process, and an
    # instance asking for another size than the one already running (PuLP's
    # HiGHS uses the default) fails to solve ("Not Set"). Dual simplex runs on
    # one thread anyway.
    if time_limit_s is not None:
        h.setOptionValue("time_limit", float(time_limit_s))
    return h


def run_for(h: _Highs, time_limit_s: float | None) -> None:
    """Run HiGHS for at most ``time_limit_s`` more. HiGHS's time limit counts
    every run of an instance: a kept one would otherwise stop at once (time
    limit reached, no optimal point) once its re-plans had added up to it."""
    if time_limit_s is not None:
        h.setOptionValue("time_limit", h.getRunTime() + float(time_limit_s))
    h.run()


def pass_model(h: _Highs, lp: PreparedLP) -> None:
    """Hand the arrays to HiGHS in one call (the array overload: no per-field
    copies through a HighsLp object, ~10× faster at 1000 connectors)."""
    status = h.passModel(
        lp.n_col,
        lp.n_row,
        len(lp.a_value),
        int(highspy.MatrixFormat.kColwise),
        int(highspy.ObjSense.kMinimize),
        0.0,
        lp.col_cost,
        lp.col_lower,
        lp.col_upper,
        lp.row_lower,
        lp.row_upper,
        lp.a_start[:-1].astype(np.int32),
        lp.a_index,
        lp.a_value,
        np.zeros(lp.n_col, dtype=np.int32),  # every column continuous
    )
    if status == highspy.HighsStatus.kError:
        raise RuntimeError("HiGHS refused the model")


def _read(h: _Highs, lp: PreparedLP, t0: float, warm: bool) -> RawResult:
    status = h.getModelStatus()
    ms = (time.perf_counter() - t0) * 1000.0
    if status == highspy.HighsModelStatus.kModelEmpty:
        return RawResult(np.zeros(lp.n_x), True, 0.0, ms, "empty", warm)
    optimal = status == highspy.HighsModelStatus.kOptimal
    info = h.getInfo()
    feasible = info.primal_solution_status == 2  # kSolutionStatusFeasible
    if not (optimal or feasible):
        return RawResult(None, False, None, ms, h.modelStatusToString(status), warm)
    sol = np.asarray(h.getSolution().col_value, dtype=float)
    return RawResult(
        sol[: lp.n_x],
        optimal,
        float(info.objective_function_value),
        ms,
        h.modelStatusToString(status),
        warm,
        sol[lp.n_col - sum(e.n_col for e in lp.extras) : lp.n_col],
    )


def add_planes(h: _Highs, lp: PreparedLP, rows: np.ndarray, directions: np.ndarray) -> int:
    """Add the planes of `optimizer.phasor.planes` as rows; returns how many."""
    assert lp.phasor is not None
    upper, starts, cols, values = planes(lp.phasor, rows, directions)
    n = len(upper)
    if n:
        h.addRows(
            n,
            np.full(n, -np.inf),
            upper,
            len(values),
            starts.astype(np.int32),
            cols.astype(np.int32),
            values,
        )
    return n


def refine(
    h: _Highs, lp: PreparedLP, time_limit_s: float | None
) -> tuple[int, np.ndarray, np.ndarray]:
    """Add cutting planes to the phasor rows still out of their disc and re-solve,
    until none is out by more than the tolerance. Returns the rows added, and
    the phasor row and direction of each."""
    ph = lp.phasor
    added = 0
    rows: list[np.ndarray] = []
    directions: list[np.ndarray] = []
    for _ in range(MAX_CUT_ROUNDS if ph is not None else 0):
        assert ph is not None
        if h.getModelStatus() != highspy.HighsModelStatus.kOptimal:
            break
        x = np.asarray(h.getSolution().col_value, dtype=float)[: lp.n_x]
        which = violated(ph, x)
        if not len(which):
            break
        z = sums(ph, x)[which]
        added += add_planes(h, lp, which, z / np.abs(z))
        rows.append(which)
        directions.append(z / np.abs(z))
        run_for(h, time_limit_s)
    if not rows:
        return added, np.zeros(0, np.int64), np.zeros(0, complex)
    return added, np.concatenate(rows), np.concatenate(directions)


def solve_arrays(lp: PreparedLP, time_limit_s: float | None = None) -> RawResult:
    """Cold solve: a fresh HiGHS instance, the arrays passed in one call."""
    t0 = time.perf_counter()
    h = new_highs(time_limit_s)
    pass_model(h, lp)
    h.run()
    refine(h, lp, time_limit_s)
    return _read(h, lp, t0, warm=False)


class HighsPlanner:
    """A HiGHS instance kept warm across re-plans of one site.

    Not thread-safe: one planner per site, called from one worker at a time.
    """

    def __init__(self, time_limit_s: float | None = None) -> None:
        self._time_limit_s = time_limit_s
        self._highs: _Highs | None = None
        self._ids: dict[str, int] = {}
        self._col_codes: np.ndarray | None = None
        self._row_codes: np.ndarray | None = None
        self._signature: tuple[bytes, bytes] | None = None
        self._lp: PreparedLP | None = None
        self._cuts = 0
        """Cutting-plane rows at the end of the kept instance's model."""
        self._planes: dict[int, list[complex]] = {}
        """Row code of a phasor row → the directions of its latest cuts, carried
        to the next re-plan (where the optimum is most often near the last)."""
        self.models_passed = 0
        """Times a whole model went to HiGHS (the LP changed shape), rather
        than only what changed."""

    def _id(self, name: str) -> int:
        n = self._ids.get(name)
        if n is None:
            n = self._ids[name] = len(self._ids) + 1
        return n

    def _codes(self, lp: PreparedLP) -> tuple[np.ndarray, np.ndarray]:
        base = lp.problem.grid.epoch_slot()
        sid = np.array([self._id("s:" + s.demand.session_id) for s in lp.sessions], np.int64)
        fid = np.array([self._id(f"f:{f.group_id}:{f.quantity}") for f in lp.families], np.int64)
        seg = np.tile(np.arange(SEGMENTS), len(sid))
        w_of = _w_owner(lp)
        x_first = lp.period_first[lp.x_period]  # absolute identity of a period: its first slot
        cols = np.concatenate(
            [
                (1 << _KIND_SHIFT) | (sid[lp.x_session] << _ID_SHIFT) | (base + x_first),
                (2 << _KIND_SHIFT) | (np.repeat(sid, SEGMENTS) << _ID_SHIFT) | seg,
                (3 << _KIND_SHIFT) | (sid[lp.d_session] << _ID_SHIFT),
                (4 << _KIND_SHIFT)
                | (sid[lp.x_session[lp.w_x]][w_of] << _ID_SHIFT)
                | ((base + x_first[lp.w_x])[w_of] * 32 + lp.w_piece),
                *self._extra_codes(lp, "col"),
            ]
        )
        n_s = len(sid)
        rows = np.concatenate(
            [
                (1 << _KIND_SHIFT)
                | (fid[lp.limit_row_family] << _ID_SHIFT)
                | (base + lp.period_first[lp.limit_row_period]),
                (2 << _KIND_SHIFT) | (sid << _ID_SHIFT),
                (3 << _KIND_SHIFT) | (sid[lp.d_session] << _ID_SHIFT),
                (3 << _KIND_SHIFT) | (sid[lp.d_session] << _ID_SHIFT) | 1,
                (4 << _KIND_SHIFT)
                | (sid[lp.x_session[lp.w_x]] << _ID_SHIFT)
                | (base + x_first[lp.w_x]),
                (5 << _KIND_SHIFT)
                | (sid[lp.x_session[lp.tail_x]] << _ID_SHIFT)
                | (base + x_first[lp.tail_x]),
                *self._extra_codes(lp, "row"),
            ]
        )
        assert len(rows) == lp.n_row and len(cols) == lp.n_col and n_s == len(lp.sessions)
        return cols, rows

    def _extra_codes(self, lp: PreparedLP, what: str) -> list[np.ndarray]:
        """An extra term's columns and rows are known by the term's name and their
        place in its block."""
        return [
            (6 << _KIND_SHIFT)
            | (self._id(f"e:{what}:{e.name}") << _ID_SHIFT)
            | np.arange(e.n_col if what == "col" else e.n_row, dtype=np.int64)
            for e in lp.extras
        ]

    def solve(self, lp: PreparedLP) -> RawResult:
        t0 = time.perf_counter()
        cols, rows = self._codes(lp)
        h = self._highs
        signature = (lp.a_start.tobytes(), lp.a_index.tobytes())
        warm = False
        prev = self._lp
        if h is not None and prev is not None and self._cuts:
            # the kept model as the last LP left it, its cuts dropped
            cut = np.arange(prev.n_row, prev.n_row + self._cuts, dtype=np.int32)
            h.deleteRows(len(cut), cut)
            self._cuts = 0
        if (
            h is not None
            and prev is not None
            and self._signature == signature
            and np.array_equal(cols, self._col_codes)  # type: ignore[arg-type]
            and np.array_equal(rows, self._row_codes)  # type: ignore[arg-type]
        ):
            # Same structure: change what changed in place; HiGHS keeps its basis.
            _update_changed(h, prev, lp)
            warm = True
        else:
            basis = self._carried_basis(cols, rows) if h is not None else None
            h = new_highs(self._time_limit_s)
            pass_model(h, lp)
            self.models_passed += 1
            if basis is not None:
                warm = h.setBasis(basis) == highspy.HighsStatus.kOk
        carried = self._carry_planes(h, lp, rows)
        run_for(h, self._time_limit_s)
        added, cut_rows, directions = refine(h, lp, self._time_limit_s)
        self._cuts = carried + added
        self._remember_planes(lp, rows, cut_rows, directions)
        self._highs = h
        self._col_codes, self._row_codes, self._signature = cols, rows, signature
        self._lp = lp
        result = _read(h, lp, t0, warm)
        if result.x is None and warm:
            # a carried basis that leads nowhere must not cost us the plan
            self._highs = None
            return self.solve(lp)
        return result

    def _carry_planes(self, h: _Highs, lp: PreparedLP, row_codes: np.ndarray) -> int:
        """Add the last re-plan's cuts of the rows this LP still has."""
        ph = lp.phasor
        if ph is None or not self._planes:
            return 0
        rows: list[int] = []
        directions: list[complex] = []
        for r, code in enumerate(row_codes[ph.rows].tolist()):
            for u in self._planes.get(code, ()):
                rows.append(r)
                directions.append(u)
        return add_planes(h, lp, np.array(rows, np.int64), np.array(directions, complex))

    def _remember_planes(
        self, lp: PreparedLP, row_codes: np.ndarray, rows: np.ndarray, directions: np.ndarray
    ) -> None:
        ph = lp.phasor
        if ph is None:
            self._planes = {}
            return
        codes = row_codes[ph.rows]
        kept = {int(c): self._planes.get(int(c), []) for c in codes}
        for r, u in zip(rows.tolist(), directions.tolist(), strict=True):
            kept[int(codes[r])] = [*kept[int(codes[r])], u][-KEPT_CUTS:]
        self._planes = {c: us for c, us in kept.items() if us}

    def _carried_basis(self, cols: np.ndarray, rows: np.ndarray) -> highspy.HighsBasis | None:
        assert self._highs is not None
        assert self._col_codes is not None and self._row_codes is not None
        old = self._highs.getBasis()
        if not old.valid:
            return None
        st = highspy.HighsBasisStatus
        # .value: the enum's number without a call to int() per variable
        old_col = np.array([s.value for s in old.col_status], dtype=np.int8)
        old_row = np.array([s.value for s in old.row_status], dtype=np.int8)
        basic, lower = int(st.kBasic), int(st.kLower)
        new_col = _carry(self._col_codes, old_col, cols, default=lower)
        new_row = _carry(self._row_codes, old_row, rows, default=basic)
        # a consistent basis has exactly one basic variable per row
        excess = int((new_col == basic).sum() + (new_row == basic).sum()) - len(rows)
        if excess > 0:
            idx = np.flatnonzero(new_row == basic)[:excess]
            new_row[idx] = lower
            excess -= len(idx)
            if excess > 0:
                new_col[np.flatnonzero(new_col == basic)[:excess]] = lower
        elif excess < 0:
            idx = np.flatnonzero(new_row != basic)[:-excess]
            new_row[idx] = basic
        b = highspy.HighsBasis()
        by_int = np.empty(max(s.value for s in _STATUSES) + 1, dtype=object)
        for s in _STATUSES:
            by_int[s.value] = s
        b.col_status = by_int[new_col].tolist()
        b.row_status = by_int[new_row].tolist()
        b.valid = True
        return b


def _update_changed(h: _Highs, old: PreparedLP, new: PreparedLP) -> None:
    """Pass HiGHS the bounds, costs and coefficients that differ between two LPs
    of the same structure."""
    c = np.flatnonzero((old.col_lower != new.col_lower) | (old.col_upper != new.col_upper))
    if len(c):
        h.changeColsBounds(len(c), c.astype(np.int32), new.col_lower[c], new.col_upper[c])
    c = np.flatnonzero(old.col_cost != new.col_cost)
    if len(c):
        h.changeColsCost(len(c), c.astype(np.int32), new.col_cost[c])
    r = np.flatnonzero((old.row_lower != new.row_lower) | (old.row_upper != new.row_upper))
    if len(r):
        h.changeRowsBounds(  # type: ignore[attr-defined]  # present, not in the stubs
            len(r), r.astype(np.int32), new.row_lower[r], new.row_upper[r]
        )
    changed = np.flatnonzero(old.a_value != new.a_value)
    if len(changed):
        col_of = np.repeat(np.arange(new.n_col), np.diff(new.a_start))
        for k in changed:  # few: the energy per ampere of the slot under way
            h.changeCoeff(int(new.a_index[k]), int(col_of[k]), float(new.a_value[k]))


def _carry(
    old_codes: np.ndarray, old_status: np.ndarray, new_codes: np.ndarray, default: int
) -> np.ndarray:
    order = np.argsort(old_codes)
    sorted_codes = old_codes[order]
    pos = np.searchsorted(sorted_codes, new_codes)
    pos = np.minimum(pos, len(sorted_codes) - 1) if len(sorted_codes) else pos
    out = np.full(len(new_codes), default, dtype=np.int8)
    if len(sorted_codes):
        hit = sorted_codes[pos] == new_codes
        out[hit] = old_status[order[pos[hit]]]
    return out


def _w_owner(lp: PreparedLP) -> np.ndarray:
    """Index into ``lp.w_x`` of every w column."""
    starts = np.flatnonzero(lp.w_piece == 0)
    return np.repeat(np.arange(len(starts)), np.diff(np.append(starts, len(lp.w_piece))))
