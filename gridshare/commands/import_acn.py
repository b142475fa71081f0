"""``gridshare import-acn SITES.json --out DIR``: ACN sites to site TOML files.

Writes ``acn-<site>.toml`` for every site in the file (Caltech, JPL) and prints
one line per site: its tree groups, weighted groups and transformer ratings.
The limits are the sites' phasor sums (``phasor = true``); ``--magnitudes-summed``
writes the safe linear form instead.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from pydantic import ValidationError

from gridshare.commands.options import ListOption, command_parser, positive
from gridshare.errors import UserError
from gridshare.simulation.acn import AcnSiteError, convert_site, load_sites_json, to_toml


def parser() -> argparse.ArgumentParser:
    p = command_parser("import-acn", __doc__)
    p.add_argument("sites", type=Path, help="ACN sites.json")
    p.add_argument("--out", type=Path, default=Path("."), help="directory for the TOML files")
    p.add_argument(
        "--site", action=ListOption, help="only these site keys, e.g. caltech jpl (default: all)"
    )
    p.add_argument(
        "--slot-minutes", type=slot_minutes, default=5, help="planning slot of the sites"
    )
    p.add_argument(
        "--horizon-hours", type=positive, default=12.0, help="planning horizon of the sites"
    )
    p.add_argument(
        "--magnitudes-summed",
        action="store_true",
        help="write every limit as Σ|coefficient|·I (safe, linear) instead of the phasor sums",
    )
    return p


def slot_minutes(text: str) -> int:
    """A slot length that divides the hour, as a site file requires."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value <= 0 or 60 % value:
        divisors = ", ".join(str(d) for d in range(1, 61) if 60 % d == 0)
        raise argparse.ArgumentTypeError(f"{value} does not divide 60 ({divisors})")
    return value


def main(argv: list[str]) -> int:
    args = parser().parse_args(argv)
    try:
        raw = load_sites_json(args.sites)
    except FileNotFoundError:
        raise UserError(f"{args.sites}: no such file") from None
    except json.JSONDecodeError as e:
        raise UserError(f"{args.sites}:{e.lineno}:{e.colno}: not JSON ({e.msg})") from None
    except (OSError, ValueError) as e:
        raise UserError(f"{args.sites}: {getattr(e, 'strerror', None) or e}") from None
    unknown = sorted(set(args.site or ()) - set(raw))
    if unknown:
        raise UserError(
            f"{args.sites}: no site {', '.join(map(repr, unknown))} "
            f"(it has {', '.join(raw) or 'none'})"
        )
    args.out.mkdir(parents=True, exist_ok=True)
    for key, site in raw.items():
        if args.site and key not in args.site:
            continue
        try:
            conv = convert_site(
                key,
                site,
                slot_minutes=args.slot_minutes,
                horizon_hours=args.horizon_hours,
                exact=not args.magnitudes_summed,
            )
        except ValidationError as e:  # one line: the first mistake, without pydantic's links
            first = e.errors()[0]
            where = ".".join(map(str, first["loc"]))
            why = str(first["msg"]).removeprefix("Value error, ")
            raise UserError(f"{args.sites}: site {key}: {where}: {why}") from None
        except (AcnSiteError, KeyError, ValueError) as e:
            print(f"gridshare import-acn: {args.sites}: site {key}: {e}", file=sys.stderr)
            return 2
        path = args.out / f"acn-{key}.toml"
        path.write_text(to_toml(conv, args.sites.name))
        rated = ", ".join(f"{g} {kw:g} kW" for g, kw in conv.transformers.items())
        print(
            f"{path}: {len(conv.data['chargers'])} stations, tree groups "
            f"{conv.tree_groups}, weighted {len(conv.weighted_groups)}, transformers: {rated}"
        )
    return 0
