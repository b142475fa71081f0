"""``gridshare simulate``: compare strategies on historical sessions.

    gridshare simulate --site SITE.toml --sessions SESSIONS.csv[.gz]
        [--capacity CAP.csv] [--capacity-kw X [X ...]] [--capacity-group ID]
        [--site-load LOAD.csv [--site-load-view forecast|peak|blind] [--holidays CC]]
        [--pv PV.csv [--pv-mode fast|solar|min+solar]]
        [--strategy NAME ...] [--from DATE --to DATE] [--taper-kwh K]
        [--informed | --ideal-models] [--add-chargers N [N ...] [--add-under GROUP] [--seed S]]
        --out REPORT.json [--plot FILE.png]

Sessions: an ACN-Data CSV or ``connector_id,arrival,departure,energy_kwh
[,stated_departure][,stated_energy_kwh]``. ``--capacity-kw`` sets a rated group
(default: the root if it has a kW rating, else the largest transformer) to each
capacity in turn, scaling its per-line and primary limits with it: one run per
capacity. ``--from``/``--to`` are local days of the site, both included.
Prints the % delivered per strategy and capacity; exit 2 on bad input.

Realistic models by default: the planner sees the stated departure and energy
(the site file's ``[defaults]`` when a session states nothing; the battery tail
it assumes is ``[defaults] taper_kwh``), stations take only their
allowed pilot steps and cars taper off. ``--ideal-models`` is the setting of the
ACN paper's comparison with the offline optimum: every session states its real
departure and energy at arrival, continuous pilots from 0 A, ideal batteries
(``--taper-kwh`` is then ignored). ``--informed`` keeps the stations and
batteries as modelled but has every session state its real departure and
energy: the difference to the default is what the planner is not told.

Shared connection: ``--site-load`` (``start,group_id,l1_a,l2_a,l3_a``, the
non-EV load per line of a group from ``start`` until its next row) is drawn on
the group and every group above it; online strategies are told what
``--site-load-view`` says (see `gridshare.simulation.site_load`; ``forecast``:
the readings so far and the building-load forecaster, with ``--holidays``'
public holidays), the offline optimum knows it. Adds, per strategy,
``connection_overload_minutes`` and ``peak_connection_a``.

PV: ``--pv`` (``start,kw``: the array's mean generation in kW from ``start``
until the next row, ISO times, local without an offset) feeds the connection
(the root group, split over its lines); every session charges in
``--pv-mode`` (default the site file's ``[charge_modes] default``, else fast).
See `gridshare.simulation.pv`. Adds, per strategy, ``pv_generated_kwh`` and
``pv_self_consumption_pct``.

Hosting capacity: ``--add-chargers`` runs the site again with that many more
chargers below ``--add-under`` (default: the transformer ``--capacity-kw``
scales), copies of the chargers already there, whose drivers come on real days
of the site's own sessions (see `gridshare.simulation.hosting`); one run per
capacity and count, each with ``added_chargers`` and, per strategy,
``existing_delivered_pct`` and ``served_pct``.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from collections.abc import Callable
from datetime import date
from functools import partial
from pathlib import Path
from typing import Any

from forecasts.building_load import DayTypes
from forecasts.pv import read_pv_csv
from gridshare.commands.options import (
    ListOption,
    OptionError,
    at_least_zero,
    command_parser,
    output_folder,
    positive,
)
from gridshare.config import ConfigError, GridshareConfig, load_config
from gridshare.csvio import InputError, read_site_load
from gridshare.logs import configure_logging
from gridshare.simulation import STRATEGIES, CarModel, run_strategies
from gridshare.simulation.acn import default_capacity_group
from gridshare.simulation.capacity import CapacityFileError, read_capacity_csv
from gridshare.simulation.engine import RunResult
from gridshare.simulation.hosting import (
    HostingError,
    hosting_runs,
    hosting_table,
    most_that_fit,
)
from gridshare.simulation.progress import DayDone
from gridshare.simulation.pv import SimPv
from gridshare.simulation.report import ACN_CREDIT, build_report, plot_report, table, write_report
from gridshare.simulation.sessions import (
    SessionsError,
    SimSession,
    between,
    is_acn,
    read_sessions,
)
from gridshare.simulation.site_load import VIEWS, SiteLoad, SiteLoadSetting
from optimizer.modes import CHARGE_MODES, ChargeMode
from optimizer.site import Site, station_of

log = logging.getLogger("gridshare.simulate")


def _date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date (YYYY-MM-DD): {text!r}") from None


def parser() -> argparse.ArgumentParser:
    p = command_parser("simulate", __doc__)
    p.add_argument("--site", type=Path, required=True, help="site TOML file")
    p.add_argument(
        "--sessions", type=Path, required=True, help="sessions CSV (ACN-Data or generic, .gz too)"
    )
    p.add_argument("--capacity", type=Path, help="capacity CSV (group_id,start,end,limit_a|kw)")
    p.add_argument("--site-load", type=Path, help="non-EV load CSV (start,group_id,l1_a,l2_a,l3_a)")
    p.add_argument(
        "--site-load-view",
        choices=VIEWS,
        default="forecast",
        help="what online strategies are told of the site load",
    )
    p.add_argument("--holidays", metavar="CC", help="country of the site's public holidays")
    p.add_argument("--pv", type=Path, help="PV generation CSV (start,kw) on the connection")
    p.add_argument("--pv-mode", choices=CHARGE_MODES, help="every session's charging mode")
    p.add_argument("--capacity-kw", type=positive, action=ListOption, help="transformer sweep (kW)")
    p.add_argument(
        "--capacity-group",
        help="the rated group --capacity-kw sets (default: the root if it has "
        "limit_kw, else the largest transformer)",
    )
    p.add_argument(
        "--strategy",
        action=ListOption,
        choices=STRATEGIES,
        default=list(STRATEGIES),
        metavar="NAME",
        help=f"strategies to compare, of {', '.join(STRATEGIES)}",
    )
    p.add_argument(
        "--from",
        dest="start",
        type=_date,
        metavar="DAY",
        help="first local day (YYYY-MM-DD; default: all)",
    )
    p.add_argument(
        "--to",
        dest="end",
        type=_date,
        metavar="DAY",
        help="last local day, included (default: all)",
    )
    p.add_argument(
        "--taper-kwh",
        type=at_least_zero,
        default=CarModel().taper_kwh,
        help="car taper over the last K kWh of its need (0: ideal battery)",
    )
    models = p.add_mutually_exclusive_group()
    models.add_argument(
        "--informed",
        action="store_true",
        help="every session states its real departure and energy (hardware as modelled)",
    )
    models.add_argument(
        "--ideal-models",
        action="store_true",
        help="real departures and energies stated at arrival, continuous pilots, no taper",
    )
    p.add_argument(
        "--add-chargers",
        type=int,
        action=ListOption,
        metavar="N",
        help="hosting study: chargers to add below --add-under (e.g. 0 10 20)",
    )
    p.add_argument(
        "--add-under",
        metavar="GROUP",
        help="where the added chargers go (default: the group --capacity-kw scales)",
    )
    p.add_argument("--seed", type=int, default=0, help="draw of the added chargers' days")
    p.add_argument(
        "--min-served-pct",
        type=float,
        default=90.0,
        help="hosting study: a count fits if this %% of drivers get 95 %% of their need",
    )
    p.add_argument("--out", type=Path, required=True, help="report JSON to write")
    p.add_argument("--plot", type=Path, help="plot PNG to write")
    p.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="progress bar (default: when stderr is a terminal)",
    )
    return p


def main(argv: list[str]) -> int:
    args = parser().parse_args(argv)
    if args.start and args.end and args.end < args.start:
        raise OptionError(f"--to is before --from ({args.end} < {args.start})")
    for given in (args.sessions, args.capacity):
        if given is not None and not given.is_file():
            raise OptionError(
                f"{given}: no such file" if not given.exists() else f"{given}: not a file"
            )
    try:
        config = load_config(args.site, environ={})
        site, defaults = config.site, config.defaults.demand_defaults()
        overrides = read_capacity_csv(args.capacity, site) if args.capacity else None
        site_load = _site_load(args, site)
        pv = _pv(args, config)
        zone = site.site.timezone
        sessions = between(read_sessions(args.sessions, zone), args.start, args.end, zone)
        group = None
        if args.capacity_kw:
            group = args.capacity_group or default_capacity_group(site)
            if group not in site.group_by_id or site.group_by_id[group].limit_kw is None:
                raise ConfigError(f"{args.site}: group {group!r} has no limit_kw to scale")
        under = None
        if args.add_chargers:
            under = args.add_under or group or default_capacity_group(site)
        elif args.add_under:
            raise HostingError("--add-under needs --add-chargers")
    except (
        ConfigError,
        SessionsError,
        CapacityFileError,
        InputError,
        ValueError,
        OptionError,
    ) as e:
        print(f"gridshare simulate: {str(e).strip()}", file=sys.stderr)
        return 2
    if not sessions:
        print(f"gridshare simulate: {args.sessions}: no sessions in the period", file=sys.stderr)
        return 2
    unmatched = _stations_not_in(site, sessions, str(args.site))
    if unmatched is not None:
        print(f"gridshare simulate: {args.sessions}: {unmatched}", file=sys.stderr)
        return 2
    if args.taper_kwh < 0:
        print("gridshare simulate: --taper-kwh must be ≥ 0", file=sys.stderr)
        return 2
    for path in (args.out, args.plot):
        if path is not None:
            output_folder(path)  # before the runs, not after them
    progress = sys.stderr.isatty() if args.progress is None else args.progress
    setting = {
        "capacity_group": group,
        "overrides": overrides,
        "car": CarModel(taper_kwh=args.taper_kwh),
        "defaults": defaults,
        "progress": progress,
        "ideal_models": args.ideal_models,
        "informed": args.informed,
        "site_load": site_load,
        **({"pv": pv} if pv is not None else {}),
    }
    configure_logging(logging.INFO, "%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        runs, run_keys, studies = _all_runs(site, sessions, args, under, setting)
    except ValueError as e:
        print(f"gridshare simulate: {e}", file=sys.stderr)
        return 2
    meta = {
        "site": str(args.site),
        "sessions_file": str(args.sessions),
        "from": args.start.isoformat() if args.start else None,
        "to": args.end.isoformat() if args.end else None,
        "capacity_group": group,
        "taper_kwh": 0.0 if args.ideal_models else args.taper_kwh,
        "models": "ideal" if args.ideal_models else "informed" if args.informed else "realistic",
        "requested_kwh": "energy the cars took in the real sessions",
    }
    if under is not None:
        meta.update({"added_under": under, "seed": args.seed})
    if site_load is not None:
        meta.update({"site_load": str(args.site_load), "site_load_view": args.site_load_view})
    if pv is not None:
        meta.update({"pv": str(args.pv), "pv_mode": pv.mode.value})
    report = build_report(runs, site.site.timezone, meta, run_keys=run_keys)
    write_report(report, args.out)
    if args.plot:
        plot_report(report, args.plot, ACN_CREDIT if is_acn(args.sessions) else None)
    log.info("report written to %s%s", args.out, f", plot to {args.plot}" if args.plot else "")
    print(table(report))
    if under is not None:
        _print_fits(studies, args.strategy, args.min_served_pct, under)
    return 0


def _site_load(args: argparse.Namespace, site: Site) -> SiteLoadSetting | None:
    if args.site_load is None:
        return None
    rows = read_site_load(args.site_load, site, cite=lambda p, line: f"{p}: line {line}")
    if args.holidays:
        DayTypes(args.holidays)  # an unknown country is a bad option, not a failed run
    return SiteLoadSetting(SiteLoad(site, rows), args.site_load_view, args.holidays)


def _pv(args: argparse.Namespace, config: GridshareConfig) -> SimPv | None:
    if args.pv is None:
        if args.pv_mode is not None:
            raise OptionError("--pv-mode needs --pv")
        return None
    if args.add_chargers:
        raise OptionError("--pv does not combine with --add-chargers")
    mode = ChargeMode(args.pv_mode) if args.pv_mode else config.charge_modes.default
    return SimPv(read_pv_csv(args.pv, config.site.site.timezone), mode, str(args.pv))


def _stations_not_in(site: Site, sessions: list[SimSession], site_name: str) -> str | None:
    """Why no session can be simulated on ``site`` (None: some can): their
    stations are not the site's, as with another site's file."""
    if any(s.connector_id in site.connectors for s in sessions):
        return None
    theirs = sorted({station_of(s.connector_id) for s in sessions})
    ours = sorted({c.id for c in site.chargers})

    def some(names: list[str]) -> str:
        return ", ".join(names[:3]) + (", …" if len(names) > 3 else "")

    return (
        f"none of the {len(sessions)} sessions is at a station of {site_name} "
        f"(the sessions': {some(theirs)}; the site's: {some(ours) or 'none'})"
    )


Studies = dict[float | None, list[tuple[int, dict[str, RunResult]]]]


def _logged(
    what: str,
    name: str,
    run: Callable[..., Any],
    hosting: tuple[int, list[int]] | None = None,
) -> Any:
    """Run one strategy, logging each simulated day and the strategy once done (a
    long run off a terminal says how far it got). ``hosting``: the chargers of
    the site before any were added, and the counts added."""

    def day_done(d: DayDone) -> None:
        run_of = what if hosting is None else f"{what}, {d.chargers - hosting[0]} chargers added"
        log.info(
            "%s: %s: day %d/%d (%s) in %.1f s: %.1f kWh delivered, %d violations",
            run_of,
            d.strategy,
            d.number,
            d.days,
            d.day.isoformat(),
            d.seconds,
            d.delivered_kwh,
            d.violations,
        )

    t0 = time.perf_counter()
    out = run(on_day=day_done)
    counts = "" if hosting is None else f", {', '.join(map(str, hosting[1]))} chargers added"
    log.info("%s%s: %s done in %.1f s", what, counts, name, time.perf_counter() - t0)
    return out


def _all_runs(
    site: Site,
    sessions: list[SimSession],
    args: argparse.Namespace,
    under: str | None,
    setting: dict[str, Any],
) -> tuple[list[tuple[float | None, dict[str, RunResult]]], list[dict[str, object]], Studies]:
    """Every run of the command, one strategy at a time (each logged once done):
    per capacity, the strategies, or a hosting study of them."""
    runs: list[tuple[float | None, dict[str, RunResult]]] = []
    run_keys: list[dict[str, object]] = []
    studies: Studies = {}
    for cap in args.capacity_kw or [None]:
        what = "site" if cap is None else f"{cap:g} kW"
        if under is None:
            results: dict[str, RunResult] = {}
            for name in args.strategy:
                results |= _logged(
                    what,
                    name,
                    partial(run_strategies, site, sessions, [name], capacity_kw=cap, **setting),
                )
            runs.append((cap, results))
            run_keys.append({})
            continue
        # the added chargers' days are drawn from the counts alone: one strategy
        # at a time gives each the same sites
        merged: dict[int, dict[str, RunResult]] = {n: {} for n in args.add_chargers}
        for name in args.strategy:
            study = _logged(
                what,
                name,
                partial(
                    hosting_runs,
                    site,
                    sessions,
                    under=under,
                    counts=args.add_chargers,
                    strategies=[name],
                    capacity_kw=cap,
                    seed=args.seed,
                    **setting,
                ),
                hosting=(len(site.chargers), args.add_chargers),
            )
            for n, results in study:
                merged[n] |= results
        studies[cap] = list(merged.items())
        for n, results in studies[cap]:
            runs.append((cap, results))
            run_keys.append({"added_chargers": n})
    return runs, run_keys, studies


def _print_fits(
    studies: Studies,
    strategies: list[str],
    min_served_pct: float,
    under: str,
) -> None:
    """Per capacity and strategy: the most chargers that fit below ``under``."""
    for cap, study in studies.items():
        t = hosting_table(study)
        most = max(n for n, _ in study)
        where = "" if cap is None else f" at {cap:g} kW"
        for name in strategies:
            fit = most_that_fit(t, min_served_pct=min_served_pct, strategy=name)
            fits = (
                "none of the counts studied"
                if fit is None
                else f"{fit} or more chargers (the most studied)"
                if fit == most and fit > 0
                else f"{fit} more chargers"
            )
            print(
                f"{name}{where}: {fits} below {under} "
                f"(≥ {min_served_pct:g} % of drivers served, no limit broken)"
            )
