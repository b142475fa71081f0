"""What the cluster's bus raises on purpose, under the application's root.

    GridshareError
    └── BusError                    anything about the bus (NATS JetStream)
        ├── BusUnavailable          NATS cannot be reached or did not answer in time
        ├── BusConfigError          settings that cannot work (also a UserError: one line)
        ├── LeaseLost               a site's lease was taken by another node, or expired
        ├── BadBusMessage           a message on the bus that does not parse
        └── CommandFailed           a command to a station did not run
            ├── StationUnreachable  no gateway holds the station (no responder)
            └── CommandRefused      a gateway refused it; `code` says why
                └── StaleFencingToken   the planner's token is older than the site's newest

nats-py's own errors are translated where they enter (`connection.py`).
"""

from __future__ import annotations

from gridshare.errors import GridshareError, UserError


class BusError(GridshareError):
    """Root of the bus's errors."""


class BusUnavailable(BusError):
    """NATS could not be reached, or did not answer within the time allowed."""


class BusConfigError(BusError, UserError):
    """Bus settings that cannot work; the message is one line for the operator."""


class LeaseLost(BusError):
    """This node no longer holds the site's lease: it must stop planning the site."""

    def __init__(self, site: str, why: str) -> None:
        super().__init__(f"lease of site {site!r} lost: {why}")
        self.site = site


class BadBusMessage(BusError):
    """A message on the bus that is not what its subject promises."""


class CommandFailed(BusError):
    """A command to a station did not run."""


class StationUnreachable(CommandFailed):
    """No gateway on the bus holds the station's connection."""


class CommandRefused(CommandFailed):
    """A gateway refused the command; `code` is the refusal's name on the wire."""

    code = "Refused"

    def __init__(self, detail: str, code: str | None = None) -> None:
        super().__init__(detail)
        if code is not None:
            self.code = code
        self.detail = detail


class StaleFencingToken(CommandRefused):
    """The command carries a fencing token older than the newest seen for its site."""

    code = "StaleFencingToken"
