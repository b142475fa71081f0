"""Strategies on the JPL site over May-August 2019, transformer sweep.

    .venv/bin/python benchmarks/acn_strategies.py            # 30, 50, 80 kW, all three models
    .venv/bin/python benchmarks/acn_strategies.py --from 2019-05-01 --to 2019-05-31 --jobs 2
    .venv/bin/python benchmarks/acn_strategies.py --models ideal

Scales the 150 kW transformer group (floors 3-4) of examples/acn-jpl.toml to
each capacity, runs every strategy on the same sessions, writes a REPORT.json
(same schema as ``gridshare simulate``, one run per capacity and models) and
prints the % delivered per strategy, the gap between gridshare and the offline
optimum, and solve times, for each of three settings:

* ``realistic`` — what the service sees live: stated departure and energy
  (service defaults for sessions that state nothing), pilots in the stations'
  allowed steps (0 or 6-32 A), battery taper;
* ``informed`` — the same stations and batteries, but every driver states the
  real departure and energy at arrival: what is left to offline is what the
  hardware costs, and realistic minus informed is what the planner is not told;
* ``ideal`` — the ACN paper's comparison: real departure and energy stated at
  arrival, continuous pilots from 0 A, ideal batteries (see
  `gridshare.simulation.ideal`).

The offline optimum knows the real departures and needs in all three.
With ``--min-current-study`` it instead runs gridshare twice per capacity: as
the stations are (0 or 6-32 A in whole amperes) and with a "pure LP" site (no
pilot steps, no minimum current), and prints the energy the minimum-current
rule costs, with the planner's own ``dispatch_cost_kwh`` summed over the run.
With ``--information-study`` it runs gridshare on the realistic models as many
times as there are pieces of what drivers do not tell (`gridshare.simulation.information`):
as stated; the real departure of cars that stayed longer than they stated; of
cars that left earlier; every real departure; every real energy; both (the
informed setting), and prints what each piece is worth in points.

Data: ACN-Data (Lee, Li, Low, e-Energy 2019), CC BY 4.0.
"""

from __future__ import annotations

import argparse
import json
import time
from concurrent.futures import ProcessPoolExecutor
from datetime import date
from pathlib import Path
from typing import Any

from gridshare.commands.options import ListOption
from gridshare.config import load_site
from gridshare.simulation import (
    STRATEGIES,
    TOLD,
    build_simulation,
    ideal_site,
    run_strategies,
    run_told,
)
from gridshare.simulation.report import build_report, table, write_report
from gridshare.simulation.sessions import between, read_acn
from optimizer import Site

ROOT = Path(__file__).resolve().parent.parent
SITE = ROOT / "examples" / "acn-jpl.toml"
SESSIONS = ROOT / "data" / "acn" / "jpl" / "2019-05-01_2019-08-31.csv.gz"
GROUP = "third-fourth-floor-transformer"
MODELS = ("realistic", "informed", "ideal")

Work = tuple[float, str, str, list[str], str]


def one_capacity(args: Work) -> tuple[float, str, dict[str, Any], float]:
    cap, start, end, strategies, models = args
    t0 = time.perf_counter()
    site = load_site(SITE)
    sessions = between(
        read_acn(SESSIONS), date.fromisoformat(start), date.fromisoformat(end), site.site.timezone
    )
    results = run_strategies(
        site,
        sessions,
        strategies,
        capacity_kw=cap,
        capacity_group=GROUP,
        ideal_models=models == "ideal",
        informed=models == "informed",
    )
    rep = build_report([(cap, results)], site.site.timezone)
    run = rep["runs"][0]
    run["models"] = models
    return cap, models, run, time.perf_counter() - t0


def pure_lp(site: Site) -> Site:
    """The site with continuous pilots and no minimum current."""
    return ideal_site(site)


def min_current_study(args: Work) -> tuple[float, dict[str, Any], float]:
    cap, start, end, _, _ = args
    t0 = time.perf_counter()
    site = load_site(SITE)
    sessions = between(
        read_acn(SESSIONS), date.fromisoformat(start), date.fromisoformat(end), site.site.timezone
    )
    out: dict[str, Any] = {}
    for name, s in (("stations as they are", site), ("pure LP", pure_lp(site))):
        r = run_strategies(s, sessions, ["gridshare"], capacity_kw=cap, capacity_group=GROUP)
        g = r["gridshare"]
        out[name] = {
            "delivered_kwh": round(float(g.delivered_kwh.sum()), 2),
            "requested_kwh": round(float(g.need_kwh.sum()), 2),
            "dispatch_cost_kwh": g.extra.get("dispatch_cost_kwh"),
        }
    return cap, out, time.perf_counter() - t0


def information_study(args: tuple[float, str, str, str]) -> tuple[float, str, float]:
    cap, start, end, name = args
    site = load_site(SITE)
    sessions = between(
        read_acn(SESSIONS), date.fromisoformat(start), date.fromisoformat(end), site.site.timezone
    )
    sim, _ = build_simulation(site, sessions, capacity_kw=cap, capacity_group=GROUP)
    r = run_told(sim, name)
    return cap, name, 100.0 * float(r.delivered_kwh.sum()) / float(r.need_kwh.sum())


def print_information_study(args: argparse.Namespace) -> None:
    work = [(c, args.start, args.end, name) for c in args.capacity_kw for name in TOLD]
    with ProcessPoolExecutor(max_workers=args.jobs) as pool:
        pct = {(cap, name): v for cap, name, v in pool.map(information_study, work)}
    caps = args.capacity_kw
    print("| gridshare is told | " + " | ".join(f"{c:g} kW" for c in caps) + " |")
    print("|---|" + "---|" * len(caps))
    for name in TOLD:
        cells = []
        for c in caps:
            gain = pct[c, name] - pct[c, "as stated"]
            cells.append(f"{pct[c, name]:.2f}" + ("" if name == "as stated" else f" ({gain:+.2f})"))
        print(f"| {name} | " + " | ".join(cells) + " |")
    if args.out:
        rows = [
            {"capacity_kw": c, "told": n, "delivered_pct": round(v, 4)} for (c, n), v in pct.items()
        ]
        args.out.write_text(json.dumps(rows, indent=2) + "\n")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--from", dest="start", default="2019-05-01")
    p.add_argument("--to", dest="end", default="2019-08-31")
    p.add_argument("--capacity-kw", type=float, action=ListOption, default=[30.0, 50.0, 80.0])
    p.add_argument("--strategy", action=ListOption, default=list(STRATEGIES))
    p.add_argument("--models", choices=[*MODELS, "all"], default="all")
    p.add_argument("--jobs", type=int, default=2)
    p.add_argument(
        "--out", type=Path, help="write the REPORT.json here (and one file per capacity)"
    )
    p.add_argument(
        "--site",
        type=Path,
        default=SITE,
        help="the JPL site file (e.g. one with magnitudes summed)",
    )
    p.add_argument("--min-current-study", action="store_true")
    p.add_argument("--information-study", action="store_true")
    return p


def main() -> None:
    global SITE  # the workers are forked after it is set
    args = parser().parse_args()
    SITE = args.site.resolve()
    if args.information_study:
        print_information_study(args)
        return
    models = list(MODELS) if args.models == "all" else [args.models]
    if args.min_current_study:
        models = ["realistic"]
    work = [(c, args.start, args.end, args.strategy, m) for m in models for c in args.capacity_kw]
    if args.min_current_study:
        with ProcessPoolExecutor(max_workers=args.jobs) as pool:
            study = {cap: out for cap, out, _ in pool.map(min_current_study, work)}
        print(
            "| capacity kW | delivered, stations as they are | delivered, pure LP | "
            "cost of the rule | Σ dispatch_cost_kwh |"
        )
        print("|---|---|---|---|---|")
        for cap, out in study.items():
            a, b = out["stations as they are"], out["pure LP"]
            print(
                f"| {cap:g} | {a['delivered_kwh']} kWh | {b['delivered_kwh']} kWh | "
                f"{b['delivered_kwh'] - a['delivered_kwh']:.1f} kWh "
                f"({100 * (b['delivered_kwh'] - a['delivered_kwh']) / b['delivered_kwh']:.2f} %)"
                f" | {a['dispatch_cost_kwh']} |"
            )
        if args.out:
            args.out.write_text(json.dumps(study, indent=2) + "\n")
        return
    runs = []
    with ProcessPoolExecutor(max_workers=args.jobs) as pool:
        for cap, mode, run, secs in pool.map(one_capacity, work):
            print(f"{cap:g} kW, {mode} models: done in {secs:.0f} s", flush=True)
            runs.append(run)
            if args.out:  # each capacity is kept as soon as it is done
                part = args.out.with_suffix(f".{mode}.{cap:g}kW.json")
                part.write_text(json.dumps(run, indent=2, default=str) + "\n")
    report = {
        "runs": runs,
        "meta": {
            "site": str(SITE.relative_to(ROOT) if SITE.is_relative_to(ROOT) else SITE),
            "group": GROUP,
            "from": args.start,
            "to": args.end,
            "models": models,
        },
    }
    if args.out:
        write_report(report, args.out)
    for mode in models:
        print()
        print(f"## {mode} models: % of need delivered")
        print()
        print(table({"runs": [r for r in runs if r["models"] == mode]}))
        print()
        print(
            "| capacity kW | gridshare − offline (pp) | gridshare − best of edf/llf/equal-share"
            " (pp) | gridshare solve p50 / p99 / max ms |"
        )
        print("|---|---|---|---|")
        for r in runs:
            if r["models"] != mode:
                continue
            s = r["strategies"]
            g = s.get("gridshare")
            if g is None:
                continue
            gap = (
                f"{g['delivered_pct'] - s['offline-optimal']['delivered_pct']:+.2f}"
                if "offline-optimal" in s
                else "–"
            )
            rivals = [s[n]["delivered_pct"] for n in ("edf", "llf", "equal-share") if n in s]
            ahead = f"{g['delivered_pct'] - max(rivals):+.2f}" if rivals else "–"
            print(
                f"| {r['capacity_kw']:g} | {gap} | {ahead} | {g['solve_ms_p50']} / "
                f"{g['solve_ms_p99']} / {g['solve_ms_max']} |"
            )


if __name__ == "__main__":
    main()
