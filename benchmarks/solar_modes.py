"""What the solar charging modes cost the planner, against the same site all fast.

    python benchmarks/solar_modes.py [--sizes 100 1000] [--repeat 3] [--share 0.33]

The "flat" site of `benchmarks/plan_speed.py` (N connectors × 96 slots of 15
min, N sessions) with a PV surplus on its connection by day (a third of the
grid limit per line for eight hours). Per size: the median time of a full
`optimizer.solve` with every session ``fast`` (the reference), with
``--share`` of them ``solar`` and as many ``min+solar``, their ratio, and for
the run with modes the same LP handed straight to highspy (passModel + run) and
the ratio of the full solve to it (the planning engine's target: within 2×).
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from functools import partial
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

from plan_speed import flat_site, median_ms, problem_for  # noqa: E402

from gridshare.commands.options import ListOption  # noqa: E402
from optimizer import PlanningProblem, solve  # noqa: E402
from optimizer.highs_backend import solve_arrays  # noqa: E402
from optimizer.modes import ChargeMode  # noqa: E402
from optimizer.prepare import prepare  # noqa: E402
from optimizer.site import LINES  # noqa: E402


def with_sun(prob: PlanningProblem) -> PlanningProblem:
    """A surplus of a third of the grid limit per line over slots 8-40."""
    n = prob.grid.slots
    limit = float(prob.capacity.limit_a["grid"][0])
    net = np.where((np.arange(n) >= 8) & (np.arange(n) < 40), -limit / 3, 0.0)
    return replace(prob, capacity=prob.capacity.with_non_ev({"grid": {ln: net for ln in LINES}}))


def with_modes(prob: PlanningProblem, share: float) -> PlanningProblem:
    step = max(1, round(1 / share)) if share > 0 else 0
    sessions = []
    for k, s in enumerate(prob.sessions):
        mode = ChargeMode.FAST
        if step and k % step == 0:
            mode = ChargeMode.SOLAR
        elif step and k % step == 1:
            mode = ChargeMode.MIN_SOLAR
        sessions.append(replace(s, charge_mode=mode))
    return replace(prob, sessions=tuple(sessions))


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--sizes", type=int, action=ListOption, default=[100, 1000])
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--share", type=float, default=0.33)
    p.add_argument("--congestion", type=float, default=0.5)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    print("| connectors | fast ms | with modes ms | ratio | raw HiGHS ms (modes) | solve / raw |")
    print("|---|---|---|---|---|---|")
    for n in args.sizes:
        fast = with_sun(problem_for(flat_site(n, args.congestion)))
        modes = with_modes(fast, args.share)
        lp = prepare(modes)
        t_fast = median_ms(partial(solve, fast), args.repeat)
        t_modes = median_ms(partial(solve, modes), args.repeat)
        t_raw = median_ms(partial(solve_arrays, lp), args.repeat)
        print(
            f"| {n} | {t_fast:.1f} | {t_modes:.1f} | {t_modes / t_fast:.2f} | {t_raw:.1f} "
            f"| {t_modes / t_raw:.2f} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
