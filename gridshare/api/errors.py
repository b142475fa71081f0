"""Errors of the operator API.

    ApiError                 root; each knows its HTTP status
    ├── NotFound             404: an unknown group, station, connector or session id
    ├── NoPlanYet            404: nothing planned yet
    ├── Conflict             409: the request is well formed but cannot apply now
    └── AuthError            401: no or an unknown bearer token
        └── Forbidden        403: a known token without the role the route needs

A backend raises `NotFound` (or `Conflict`) from its methods; the API turns
every `ApiError` into a JSON answer ``{"detail": "..."}`` with its status.
Pydantic's validation errors stay FastAPI's 422 answers, which name the field.
"""

from __future__ import annotations

from gridshare.errors import GridshareError


class ApiError(GridshareError):
    """Root of the operator API's errors."""

    status_code = 500

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class NotFound(ApiError):
    """An id the site does not know."""

    status_code = 404

    def __init__(self, kind: str, ident: str) -> None:
        super().__init__(f"unknown {kind} {ident!r}")
        self.kind = kind
        self.ident = ident


class NoPlanYet(ApiError):
    status_code = 404


class Conflict(ApiError):
    """Well formed, but not applicable in the site's present state."""

    status_code = 409


class AuthError(ApiError):
    status_code = 401


class Forbidden(AuthError):
    status_code = 403
