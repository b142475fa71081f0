"""The routes of the operator app, one module per resource.

Each module's ``router(...)`` returns an `APIRouter` of paths relative to
``/api`` (``metrics`` and ``dashboard``: to the root); `gridshare.api.app`
includes them. `common` holds the auth dependencies and error responses.
"""
