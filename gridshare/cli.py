"""The ``gridshare`` command line: ``gridshare COMMAND [options]``.

Each command lives in its own module with a ``main(argv) -> int``; this file
only dispatches, so a command's imports cost nothing to the others.

A command lets the application's user-facing errors (a site file that does
not parse, a database that cannot be opened, an output path in a missing
folder, a port in use...) rise; they end here as one line on stderr and exit
code 2. Any other exception is a bug and keeps its traceback.
"""

from __future__ import annotations

import importlib
import sys
from importlib import metadata

COMMANDS: dict[str, tuple[str, str]] = {
    "plan": ("gridshare.commands.plan", "plan a site from a sessions CSV"),
    "serve": ("gridshare.commands.serve", "run the service (OCPP central system, OSCP, API)"),
    "demo": ("gridshare.commands.demo", "live demo: service + simulated stations and DSO"),
    "simulate": ("gridshare.commands.simulate", "compare strategies on historical sessions"),
    "stations": ("gridshare.commands.stations", "run simulated OCPP stations"),
    "dso": ("gridshare.commands.dso", "run a simulated DSO (OSCP capacity provider)"),
    "import-acn": ("gridshare.commands.import_acn", "convert ACN sites.json to site TOML files"),
}

USER_ERRORS: tuple[tuple[str, str], ...] = (
    ("gridshare.errors", "UserError"),
    ("optimizer.errors", "ProblemError"),
    ("oscp.loopback", "ListenError"),
    ("ocpp_adapter.central_system", "ListenError"),
)
"""(module, class) of the errors whose message is meant for the user. Only
modules already imported are looked at: an error class can only have been
raised if its module was loaded, and the others' imports stay unpaid."""


def usage() -> str:
    lines = ["usage: gridshare COMMAND [options]", "       gridshare --version", "", "commands:"]
    lines += [f"  {name:<11} {help_}" for name, (_, help_) in COMMANDS.items()]
    lines += ["", "gridshare COMMAND --help tells a command's options."]
    return "\n".join(lines)


def version() -> str:
    """The installed package's version (its metadata, from pyproject.toml)."""
    try:
        return metadata.version("gridshare")
    except metadata.PackageNotFoundError:
        return "unknown (not installed: pip install -e .)"


def user_message(e: BaseException) -> str | None:
    """The one line to print for a user-facing error, None for anything else."""
    if isinstance(e, OSError) and e.filename is not None:
        # a path that is not there or not writable: the machine, not the code
        where = f"{e.filename}" + (f" → {e.filename2}" if e.filename2 is not None else "")
        return f"{where}: {e.strerror or e}"
    for module, name in USER_ERRORS:
        loaded = sys.modules.get(module)
        cls = getattr(loaded, name, None) if loaded is not None else None
        if isinstance(cls, type) and isinstance(e, cls):
            if isinstance(e, OSError):
                return e.strerror or str(e) or type(e).__name__
            return str(e) or type(e).__name__
    return None  # a reset connection, a broken pipe...: a bug to see whole


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if not args:  # a mistake: the usage goes where errors go
        print(f"gridshare: a command is needed\n\n{usage()}", file=sys.stderr)
        return 2
    if args[0] in ("-h", "--help"):
        print(usage())
        return 0
    if args[0] == "--version":
        print(f"gridshare {version()}")
        return 0
    name, rest = args[0], args[1:]
    if name not in COMMANDS:
        print(f"gridshare: unknown command {name!r}\n\n{usage()}", file=sys.stderr)
        return 2
    module = importlib.import_module(COMMANDS[name][0])
    try:
        result: int = module.main(rest)
    except Exception as e:
        message = user_message(e)
        if message is None:
            raise
        print(f"gridshare {name}: {message}", file=sys.stderr)
        return 2
    return result


if __name__ == "__main__":
    raise SystemExit(main())
