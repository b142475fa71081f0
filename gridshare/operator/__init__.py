"""The operator API's backend over the running service (see `gridshare.operator.backend`).

views    what it reads and writes of the service, as narrow Protocols
reads    status, groups, timelines, stations, sessions, plan, forecasts, events
writes   group limits, capacity requests, session changes, station commands
live     change hints for the live stream, and the metrics that follow them
"""

from gridshare.dso_link import CAPACITY_HISTORY
from gridshare.operator.backend import ServiceBackend
from gridshare.operator.live import LiveFeed
from gridshare.operator.reads import RECENT_SESSIONS
from gridshare.operator.views import OperatorParts

__all__ = ["CAPACITY_HISTORY", "RECENT_SESSIONS", "LiveFeed", "OperatorParts", "ServiceBackend"]
