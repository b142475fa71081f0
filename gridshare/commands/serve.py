"""``gridshare serve``: run the service (OCPP central system, HTTP API, planner)."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

from gridshare.commands.options import command_parser, port
from gridshare.config import ConfigError, ServerConfig, load_config
from gridshare.logs import configure_logging


def parser() -> argparse.ArgumentParser:
    p = command_parser("serve", __doc__)
    p.add_argument(
        "--config",
        required=True,
        help="site TOML file, or a folder of them (one site per file, "
        "served under /api/sites/{site}/…)",
    )
    p.add_argument(
        "--db",
        help="database URL (sqlite:///PATH, postgresql://USER:PASSWORD@HOST/DB) or SQLite "
        "path (default: next to the config, SITE.db); with a folder of sites, a folder "
        "(one SQLite file per site) or a PostgreSQL URL (one schema per site)",
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
    ports = {"host": args.host, "ocpp_port": args.ocpp_port, "http_port": args.http_port}
    from gridshare.deployment import Deployment
    from gridshare.deployment_config import load_deployment
    from gridshare.service import Service

    node: Deployment
    try:
        if Path(args.config).is_dir():
            sites, edges = load_deployment(args.config, args.db)
            node = Deployment(sites, edges, **ports)
        else:
            node = Service(load_config(args.config), db=args.db, **ports)
    except ConfigError as e:
        print(f"gridshare serve: {e}", file=sys.stderr)
        return 2
    asyncio.run(node.run_until_signalled())  # a port in use, a bad database: see gridshare.cli
    return 0
