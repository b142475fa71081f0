"""Commands to stations over the bus, fenced by the site's lease.

The planner sends a command (e.g. SetChargingProfile) as a NATS request to
`<prefix>.cmd.<station>`; whichever gateway holds the station's socket
subscribes to that subject, so no node needs to know where a station is.
The gateway runs one station's commands one at a time, in the order they
came (a lowering before the raising that follows it), and answers each:

    {"status": "accepted", "result": {...}}
    {"status": "refused", "code": "StaleFencingToken", "detail": "..."}

A command carries its site's fencing token; a gateway refuses one older than
the newest it has seen for the site (`fencing.FencingBook`).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import nats.errors
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

from gridshare.cluster.connection import bus_errors
from gridshare.cluster.errors import (
    BadBusMessage,
    BusUnavailable,
    CommandFailed,
    CommandRefused,
    StaleFencingToken,
    StationUnreachable,
)
from gridshare.cluster.fencing import FencingBook
from gridshare.cluster.names import Subjects
from gridshare.cluster.settings import BusSettings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Command:
    """What the planner of `site` (holding fencing `token`) asks a station to do."""

    site: str
    token: int
    action: str  # an OCPP action, e.g. "SetChargingProfile"
    payload: dict[str, Any] = field(default_factory=dict)

    def to_bytes(self) -> bytes:
        return json.dumps(asdict(self), separators=(",", ":")).encode()

    @classmethod
    def from_bytes(cls, data: bytes) -> Command:
        try:
            doc = json.loads(data)
        except ValueError as exc:
            raise BadBusMessage(f"command is not JSON: {exc}") from exc
        if not isinstance(doc, dict) or set(doc) != {"site", "token", "action", "payload"}:
            raise BadBusMessage("command: expected site, token, action and payload")
        ok = (
            isinstance(doc["site"], str)
            and doc["site"]
            and type(doc["token"]) is int
            and doc["token"] >= 0
            and isinstance(doc["action"], str)
            and doc["action"]
            and isinstance(doc["payload"], dict)
        )
        if not ok:
            raise BadBusMessage(
                "command: site and action are text, token a count, payload an object"
            )
        return cls(**doc)


# how a gateway answers, and how the planner reads the answer back
REFUSALS: dict[str, type[CommandRefused]] = {"StaleFencingToken": StaleFencingToken}


def accepted(result: dict[str, Any]) -> bytes:
    return json.dumps({"status": "accepted", "result": result}).encode()


def refused(exc: CommandRefused) -> bytes:
    return json.dumps({"status": "refused", "code": exc.code, "detail": exc.detail}).encode()


def read_reply(data: bytes) -> dict[str, Any]:
    """The result of an accepted command; a refusal is raised as its error."""
    try:
        doc = json.loads(data)
        status = doc["status"]
    except (ValueError, TypeError, KeyError) as exc:
        raise BadBusMessage("command reply does not parse") from exc
    if status == "accepted" and isinstance(doc.get("result"), dict):
        return dict(doc["result"])
    if status == "refused":
        code, detail = str(doc.get("code", "Refused")), str(doc.get("detail", ""))
        raise REFUSALS.get(code, CommandRefused)(detail, code)
    raise BadBusMessage(f"command reply with status {status!r}")


class CommandClient:
    """The planner's side."""

    def __init__(self, nc: Client, settings: BusSettings) -> None:
        self.nc = nc
        self.subjects = Subjects(settings.prefix)
        self.timeout = settings.command_timeout_s

    async def send(self, station: str, command: Command) -> dict[str, Any]:
        """The station's answer; `CommandRefused`, `StationUnreachable` or
        `BusUnavailable` (no answer in time: the outcome is unknown)."""
        with bus_errors(f"{command.action} to {station!r}"):
            try:
                msg = await self.nc.request(
                    self.subjects.command(station), command.to_bytes(), timeout=self.timeout
                )
            except nats.errors.NoRespondersError as exc:
                raise StationUnreachable(
                    f"station {station!r} is not connected to any node"
                ) from exc
        return read_reply(msg.data)


# (station, action, payload) → the station's answer; raises CommandRefused to refuse
Executor = Callable[[str, str, dict[str, Any]], Awaitable[dict[str, Any]]]


class CommandGateway:
    """The side of a node holding stations' sockets: runs their commands."""

    def __init__(
        self, nc: Client, settings: BusSettings, execute: Executor, book: FencingBook | None = None
    ) -> None:
        self.nc = nc
        self.subjects = Subjects(settings.prefix)
        self.execute = execute
        self.book = book if book is not None else FencingBook()
        self.held: dict[str, tuple[str, Subscription]] = {}

    async def hold(self, station: str, site: str) -> None:
        """Take the station's commands (its socket is now on this node)."""
        await self.release(station)

        async def on_command(msg: Msg) -> None:
            await msg.respond(await self.answer(station, site, msg.data))

        with bus_errors(f"holding station {station!r}"):
            sub = await self.nc.subscribe(self.subjects.command(station), cb=on_command)
            await self.nc.flush(timeout=5)  # the subscription is in force on the server
        self.held[station] = (site, sub)

    async def release(self, station: str) -> None:
        """Stop taking the station's commands (its socket closed)."""
        held = self.held.pop(station, None)
        if held is not None:
            with bus_errors(f"releasing station {station!r}"):
                await held[1].unsubscribe()
                # until the server has it, a command could still come here and go unanswered
                await self.nc.flush(timeout=5)

    async def close(self) -> None:
        for station in list(self.held):
            try:
                await self.release(station)
            except BusUnavailable as exc:
                log.warning("%s", exc)

    async def answer(self, station: str, site: str, data: bytes) -> bytes:
        """The reply to one command: checked, fenced, run. Always an answer."""
        try:
            command = Command.from_bytes(data)
            if command.site != site:
                raise CommandRefused(
                    f"station {station!r} belongs to site {site!r}, not {command.site!r}",
                    "WrongSite",
                )
            self.book.admit(site, command.token)
            return accepted(await self.execute(station, command.action, command.payload))
        except BadBusMessage as exc:
            return refused(CommandRefused(str(exc), "BadCommand"))
        except CommandRefused as exc:
            return refused(exc)
        except CommandFailed as exc:
            return refused(CommandRefused(str(exc), "Failed"))
        except Exception:  # the planner must get an answer, not a timeout
            log.exception("command to %r failed", station)
            return refused(CommandRefused("the gateway failed to run the command", "InternalError"))
