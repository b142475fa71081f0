"""The application's errors, under one root.

`GridshareError` is what any part of the application raises on purpose;
`UserError` is the kind whose message is meant for the person running
gridshare (a site file that does not parse, a database that cannot be opened):
the command line prints it as one line and exits with code 2. Anything else
that escapes is a bug and keeps its traceback.

The adapters (`optimizer`, `ocpp_adapter`, `oscp`, `forecasts`) keep roots of
their own: they do not import the application.
"""

from __future__ import annotations


class GridshareError(Exception):
    """Root of every error the application raises on purpose."""


class UserError(GridshareError):
    """An error meant for the person running gridshare; its message is one line."""
