"""``gridshare serve``: run the service (OCPP central system, HTTP API, planner)."""

from __future__ import annotations

import argparse
import asyncio
import sys

from gridshare.commands.options import command_parser, port
from gridshare.config import ConfigError, ServerConfig, load_config
from gridshare.logs import configure_logging


def parser() -> argparse.ArgumentParser:
    p = command_parser("serve", __doc__)
    p.add_argument("--config", required=True, help="site TOML file")
    p.add_argument(
        "--db",
        help="database URL (sqlite:///PATH, postgresql://USER:PASSWORD@HOST/DB) or SQLite "
        "path (default: next to the config, SITE.db)",
    )
    fields = ServerConfig.model_fields

    def default(key: str) -> str:
        return f"(default: [server] {key} of the config, else {fields[key].default})"

    p.add_argument("--host", help=f"address to listen on {default('host')}")
    p.add_argument("--ocpp-port", type=port, help=f"OCPP WebSocket port {default('ocpp_port')}")
    p.add_argument("--http-port", type=port, help=f"HTTP API port {default('http_port')}")
    p.add_argument(
        "--log-level",
        type=str.upper,
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        default="INFO",
        help="what the log shows",
    )
    return p


def main(argv: list[str]) -> int:
    args = parser().parse_args(argv)
    configure_logging(args.log_level, "%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        config = load_config(args.config)
    except ConfigError as e:
        print(f"gridshare serve: {e}", file=sys.stderr)
        return 2
    from gridshare.service import Service

    service = Service(
        config, db=args.db, host=args.host, ocpp_port=args.ocpp_port, http_port=args.http_port
    )
    asyncio.run(service.run_until_signalled())  # a port in use, a bad database: see gridshare.cli
    return 0
