"""The ``gridshare`` command line: ``gridshare COMMAND [options]``.

Each command lives in its own module with a ``main(argv) -> int``; this file
only dispatches, so a command's imports cost nothing to the others.
"""

from __future__ import annotations

import importlib
import sys

COMMANDS: dict[str, tuple[str, str]] = {
    "plan": ("gridshare.commands.plan", "plan a site from a sessions CSV"),
    "serve": ("gridshare.commands.serve", "run the service (OCPP central system, OSCP, API)"),
    "demo": ("gridshare.commands.demo", "live demo: service + simulated stations and DSO"),
    "simulate": ("gridshare.commands.simulate", "compare strategies on historical sessions"),
    "stations": ("gridshare.commands.stations", "run simulated OCPP stations"),
    "dso": ("gridshare.commands.dso", "run a simulated DSO (OSCP capacity provider)"),
    "import-acn": ("gridshare.commands.import_acn", "convert ACN sites.json to site TOML files"),
}


def usage() -> str:
    lines = ["usage: gridshare COMMAND [options]", "", "commands:"]
    lines += [f"  {name:<11} {help_}" for name, (_, help_) in COMMANDS.items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if not args or args[0] in ("-h", "--help"):
        print(usage())
        return 0 if args else 2
    name, rest = args[0], args[1:]
    if name not in COMMANDS:
        print(f"gridshare: unknown command {name!r}\n\n{usage()}", file=sys.stderr)
        return 2
    module = importlib.import_module(COMMANDS[name][0])
    result: int = module.main(rest)
    return result


if __name__ == "__main__":
    raise SystemExit(main())
