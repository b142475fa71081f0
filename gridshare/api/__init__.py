"""The operator API: routes, auth, live updates, metrics, and the backend protocol.

    from gridshare.api import create_api, MetricsRecorder
    app = create_api(backend, config.api, metrics=MetricsRecorder())

`OperatorBackend` (in `gridshare.api.backend`) is what the service implements
(`gridshare.operator.ServiceBackend`); the bodies it returns are the models of
`gridshare.api.schemas`, built from the site's state by the pure functions of
`gridshare.api.projections` (which the test fake uses too).
"""

from gridshare.api.app import LiveSettings, create_api
from gridshare.api.backend import OperatorBackend
from gridshare.api.errors import ApiError, Conflict, NotFound
from gridshare.api.metrics import MetricsRecorder

__all__ = [
    "ApiError",
    "Conflict",
    "LiveSettings",
    "MetricsRecorder",
    "NotFound",
    "OperatorBackend",
    "create_api",
]
