"""``gridshare dso``: run a simulated DSO (an OSCP 2.0 Capacity Provider).

    gridshare dso --fp-url http://127.0.0.1:8080/oscp/fp/2.0 --token TOKEN \\
        --group trafo-1 --profile evening-peak --base-kw 100 --cut-kw 40

Registers with the Flexibility Provider using TOKEN (the FP's ``token_to_us``),
handshakes, sends heartbeats and a forecast (built-in profile or ``--csv``)
every ``--refresh-s``, and prints every message it receives. In ``--csv``, a
time without an offset is a local time of the site whose file ``--config``
names (its ``[site] timezone``), as in every CSV gridshare reads.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import httpx

from forecasts.model import Block, ForecastType, Unit
from gridshare.commands.options import (
    ListOption,
    at_least_zero,
    check_url,
    command_parser,
    port,
    positive,
)
from gridshare.config import load_config
from gridshare.errors import UserError
from gridshare.logs import configure_logging
from gridshare.peers.dso import FpAnswered, SimulatedDso, blocks_from_csv, evening_peak_cut, step_at
from optimizer.site import Site


def parser() -> argparse.ArgumentParser:
    p = command_parser("dso", __doc__)
    p.add_argument("--fp-url", required=True, help="the FP's base URL (…/oscp/fp/2.0)")
    p.add_argument(
        "--token",
        help="token the FP accepts from us (its token_to_us); without it, wait for the FP "
        "to register with us",
    )
    p.add_argument("--registration-token", help="accept the FP's Register with this token")
    p.add_argument("--port", type=port, default=0, help="our port (0: any free port)")
    p.add_argument(
        "--group",
        action=ListOption,
        default=[],
        help="OSCP group ids (default: those of the --config site file, else 'site')",
    )
    p.add_argument(
        "--profile",
        choices=["evening-peak", "flat", "step"],
        default="evening-peak",
        help="forecast shape; step: --base-kw until --step-in-s from the first forecast, "
        "then --cut-kw",
    )
    p.add_argument(
        "--step-in-s", type=at_least_zero, default=120.0, help="step profile: seconds to the step"
    )
    p.add_argument(
        "--base-kw", type=at_least_zero, default=100.0, help="capacity outside the cut (kW)"
    )
    p.add_argument(
        "--cut-kw", type=at_least_zero, default=40.0, help="capacity during the cut (kW)"
    )
    p.add_argument(
        "--csv",
        metavar="BLOCKS.csv",
        help="forecast blocks: group_id,type,start_time,end_time,capacity,unit,phase "
        "(times without an offset are the site's: give --config)",
    )
    p.add_argument(
        "--config",
        metavar="SITE.toml",
        help="the site file of the FP: its OSCP groups, and the zone of --csv times "
        "without an offset",
    )
    p.add_argument("--heartbeat-s", type=positive, default=30.0, help="seconds between heartbeats")
    p.add_argument(
        "--refresh-s", type=positive, default=900.0, help="seconds between forecasts sent"
    )
    p.add_argument(
        "--duration-s", type=at_least_zero, default=None, help="stop after (default: never)"
    )
    return p


class DsoGaveUp(UserError):
    """The FP could not be registered with within the time given."""


CsvBlocks = dict[tuple[str, ForecastType], list[Block]]
"""The ``--csv`` forecast, read once at the start."""


async def run(args: argparse.Namespace, from_csv: CsvBlocks | None = None) -> int:
    dso = SimulatedDso(
        fp_url=args.fp_url,
        token_to_fp=args.token,
        registration_token=args.registration_token,
        out=lambda line: print(line, flush=True),
    )
    await dso.start(port=args.port)
    print(f"[dso] capacity provider at {dso.base_url}", flush=True)
    try:
        if args.token:
            await _until_reachable(dso, args)
        else:
            print("[dso] waiting for the FP to register", flush=True)
            try:
                await asyncio.wait_for(dso.registered.wait(), args.duration_s or None)
            except TimeoutError:
                raise DsoGaveUp(
                    f"no Register from the FP at {args.fp_url} within {args.duration_s:g} s "
                    f"(its [oscp] providers must point at {dso.base_url}, or give --token)"
                ) from None
        await dso.handshake(heartbeat_interval=args.heartbeat_s)
        dso.start_heartbeats(args.heartbeat_s)
        loop = asyncio.get_running_loop()
        end = None if args.duration_s is None else loop.time() + args.duration_s
        while end is None or loop.time() < end:
            await send_forecasts(dso, args, from_csv)
            wait = args.refresh_s if end is None else min(args.refresh_s, end - loop.time())
            await asyncio.sleep(max(wait, 0.0))
    finally:
        await dso.stop()
    return 0


async def _until_reachable(dso: SimulatedDso, args: argparse.Namespace) -> None:
    """Register, retrying every second while the FP is not up (bounded by --duration-s)."""
    loop = asyncio.get_running_loop()
    end = None if args.duration_s is None else loop.time() + args.duration_s
    while True:
        try:
            await dso.register(timeout_s=10.0)
            return
        except (httpx.HTTPError, RuntimeError, TimeoutError) as e:
            if isinstance(e, FpAnswered) and e.status in (401, 403):  # will not change by itself
                raise DsoGaveUp(f"{args.fp_url}: not registered: {_why(e, dso)}") from None
            if end is not None and loop.time() >= end:
                raise DsoGaveUp(
                    f"{args.fp_url}: not registered within {args.duration_s:g} s: {_why(e, dso)}"
                ) from None
            print(f"[dso] FP not ready ({_why(e, dso)}); retrying", flush=True)
            await asyncio.sleep(1.0)


def _why(e: Exception, dso: SimulatedDso) -> str:
    """What a failed Register says about the FP, in a few words."""
    if isinstance(e, TimeoutError):
        return (
            f"it took our Register but sent none back to {dso.base_url} (the FP sends it to "
            "the base_url of its [[oscp.capacity_providers]]; --port sets ours)"
        )
    if isinstance(e, httpx.ConnectError):
        return "nothing answers there"
    if isinstance(e, httpx.HTTPError):
        return f"{type(e).__name__}: {e}" if str(e) else type(e).__name__
    if isinstance(e, FpAnswered) and e.status == 403:
        return (
            f"{e} (a registration rotates the token: the FP keeps the one of an earlier run "
            "in the .oscp-tokens.json next to its site file)"
        )
    return str(e) or type(e).__name__


async def send_forecasts(
    dso: SimulatedDso, args: argparse.Namespace, from_csv: CsvBlocks | None = None
) -> None:
    if from_csv is not None:
        for (group, type_), blocks in from_csv.items():
            await dso.send_forecast(group, type_, blocks)
        return
    now = datetime.now(UTC)
    for group in args.group or ["site"]:
        if args.profile == "step":
            if not hasattr(args, "step_at"):
                args.step_at = now + timedelta(seconds=args.step_in_s)
            blocks = step_at(
                args.step_at,
                before=args.base_kw,
                after=args.cut_kw,
                unit=Unit.KW,
                start=now - timedelta(minutes=1),
            )
        else:
            cut = args.cut_kw if args.profile == "evening-peak" else args.base_kw
            blocks = evening_peak_cut(now, base_kw=args.base_kw, cut_kw=cut)
        await dso.send_forecast(group, ForecastType.CONSUMPTION, blocks)


def oscp_groups(site: Site) -> list[str]:
    """The DSO's names for the site's groups (``oscp_group_id``), else its root's id."""
    return [g.oscp_group_id for g in site.groups if g.oscp_group_id] or [site.root.id]


def read_inputs(args: argparse.Namespace) -> CsvBlocks | None:
    """The site file (its groups become the default ``--group``) and the ``--csv``
    forecast, read before registering: a file that cannot be read fails first."""
    site = load_config(args.config).site if args.config else None
    if site is not None and not args.group:
        args.group = oscp_groups(site)
    if not args.csv:
        return None
    return blocks_from_csv(args.csv, ZoneInfo(site.site.timezone) if site is not None else None)


def main(argv: list[str]) -> int:
    args = parser().parse_args(argv)
    check_url("--fp-url", args.fp_url, "http", "https")
    configure_logging(logging.WARNING, "%(levelname)s %(name)s: %(message)s")
    try:
        from_csv = read_inputs(args)
        return asyncio.run(run(args, from_csv))
    except KeyboardInterrupt:
        return 130
    except (DsoGaveUp, RuntimeError, TimeoutError, ValueError, httpx.HTTPError) as e:
        # the FP unreachable, refusing or gone, a bad forecast row (a port in use: see
        # gridshare.cli)
        what = str(e) or f"{type(e).__name__} talking to {args.fp_url}"
        print(f"gridshare dso: {what}", file=sys.stderr)
        return 2
