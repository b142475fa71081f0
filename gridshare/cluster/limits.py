"""Charging limits over the bus: the planner's `LimitCommands`, fenced.

This is where the cluster plugs into the site's rollout, which sends limits
through `ocpp_adapter.ports.LimitCommands`: on the planner node,
`FencedLimits` is that port, sending each limit as a command carrying the
site's current fencing token; on the gateway node, `limit_executor` runs the
commands on the local central system. The rollout's reading of each outcome
stays as it is:

    the gateway's answer           → the outcome the rollout reads
    the station's CommandResult    → as the station gave it
    no gateway holds the station   → NOT_CONNECTED (not sent)
    no answer within the timeout   → TIMEOUT (in doubt: may be in force)
    a stale fencing token          → REJECTED ("fencing: …"), nothing sent
    this node does not hold the lease → REJECTED, nothing sent
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict
from datetime import datetime
from typing import Any

from gridshare.cluster.commands import Command, CommandClient, Executor
from gridshare.cluster.errors import (
    BadBusMessage,
    BusUnavailable,
    CommandRefused,
    StaleFencingToken,
    StationUnreachable,
)
from ocpp_adapter.events import (
    ChargingLimitSpec,
    CommandOutcome,
    CommandResult,
    LimitPeriod,
    LimitPurpose,
)
from ocpp_adapter.ports import LimitCommands

SET_LIMIT, CLEAR_LIMIT = "set_limit", "clear_limit"


def spec_to_json(spec: ChargingLimitSpec) -> dict[str, Any]:
    doc = asdict(spec)
    doc["purpose"] = spec.purpose.value
    doc["start"] = spec.start.isoformat()
    return doc


def spec_from_json(doc: dict[str, Any]) -> ChargingLimitSpec:
    try:
        start = datetime.fromisoformat(doc["start"])
        if start.tzinfo is None:
            raise ValueError("start without an offset")
        phases = doc.get("station_phases")
        return ChargingLimitSpec(
            purpose=LimitPurpose(doc["purpose"]),
            connector=int(doc["connector"]),
            start=start,
            periods=tuple(
                LimitPeriod(int(p["start_offset_s"]), float(p["limit_a"]), int(p["number_phases"]))
                for p in doc["periods"]
            ),
            transaction_id=doc.get("transaction_id"),
            stack_level=int(doc.get("stack_level", 0)),
            voltage_v=float(doc.get("voltage_v", 230.0)),
            station_phases=None if phases is None else tuple(int(p) for p in phases),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise BadBusMessage(f"charging limit does not parse: {exc}") from exc


def result_to_json(result: CommandResult) -> dict[str, Any]:
    return {
        "outcome": result.outcome.value,
        "detail": result.detail,
        "retry_after_s": result.retry_after_s,
    }


def result_from_json(doc: dict[str, Any]) -> CommandResult:
    try:
        retry = doc.get("retry_after_s")
        return CommandResult(
            CommandOutcome(doc["outcome"]),
            str(doc.get("detail", "")),
            None if retry is None else float(retry),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise BadBusMessage(f"command result does not parse: {exc}") from exc


class FencedLimits:
    """`LimitCommands` for the planner of `site`, over the bus.

    `token()` is the site's fencing token while this node holds its lease
    (`LeaseKeeper.token`), None once it does not.
    """

    def __init__(self, client: CommandClient, site: str, token: Callable[[], int | None]) -> None:
        self.client = client
        self.site = site
        self.token = token

    async def _send(self, station_id: str, action: str, payload: dict[str, Any]) -> CommandResult:
        token = self.token()
        if token is None:
            return CommandResult(CommandOutcome.REJECTED, f"not planning site {self.site!r}")
        try:
            reply = await self.client.send(station_id, Command(self.site, token, action, payload))
        except StationUnreachable as exc:
            return CommandResult(CommandOutcome.NOT_CONNECTED, str(exc))
        except BusUnavailable as exc:
            return CommandResult(CommandOutcome.TIMEOUT, str(exc))
        except StaleFencingToken as exc:
            return CommandResult(CommandOutcome.REJECTED, f"fencing: {exc.detail}")
        except (CommandRefused, BadBusMessage) as exc:
            return CommandResult(CommandOutcome.ERROR, str(exc))
        try:
            return result_from_json(reply)
        except BadBusMessage as exc:
            return CommandResult(CommandOutcome.ERROR, str(exc))

    async def set_limit(self, station_id: str, spec: ChargingLimitSpec) -> CommandResult:
        return await self._send(station_id, SET_LIMIT, spec_to_json(spec))

    async def clear_limit(self, station_id: str, connector: int) -> CommandResult:
        return await self._send(station_id, CLEAR_LIMIT, {"connector": connector})


def limit_executor(local: LimitCommands) -> Executor:
    """The gateway's side: the limit commands run on this node's central system."""

    async def execute(station: str, action: str, payload: dict[str, Any]) -> dict[str, Any]:
        if action == SET_LIMIT:
            result = await local.set_limit(station, spec_from_json(payload))
        elif action == CLEAR_LIMIT:
            connector = payload.get("connector")
            if type(connector) is not int or connector < 0:
                raise BadBusMessage("clear_limit: connector is a number")
            result = await local.clear_limit(station, connector)
        else:
            raise CommandRefused(f"unknown action {action!r}", "UnknownAction")
        return result_to_json(result)

    return execute
