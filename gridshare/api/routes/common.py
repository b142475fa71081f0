"""What every route shares: the token dependencies and the documented errors.

``Reader`` / ``Writer`` annotate a route parameter with the `Principal` of a
read / write token (`gridshare.api.auth`); the app keeps its `TokenAuth` as
``app.state.auth``.
"""

from typing import Annotated, Any

from fastapi import Depends, Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from gridshare.api.auth import Principal, TokenAuth
from gridshare.api.schemas import ErrorOut

_bearer = HTTPBearer(auto_error=False, description="A token from [[api.tokens]]")


def _auth(request: Request) -> TokenAuth:
    auth: TokenAuth = request.app.state.auth
    return auth


def reader(
    request: Request,
    _: Annotated[HTTPAuthorizationCredentials | None, Security(_bearer)] = None,
) -> Principal:
    return _auth(request).reader(request)


def writer(
    request: Request,
    _: Annotated[HTTPAuthorizationCredentials | None, Security(_bearer)] = None,
) -> Principal:
    return _auth(request).writer(request)


Reader = Annotated[Principal, Depends(reader)]
Writer = Annotated[Principal, Depends(writer)]


def errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    return {code: {"model": ErrorOut} for code in codes}


READ_ERRORS = errors(401)
WRITE_ERRORS = errors(400, 401, 403, 404)
