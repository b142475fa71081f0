"""Charging sessions: active and recent ones, and what the operator changes of one."""

from typing import Annotated, Literal

from fastapi import APIRouter, Query

from gridshare.api.backend import OperatorBackend
from gridshare.api.errors import NotFound
from gridshare.api.routes.common import READ_ERRORS, Reader, Writer, errors
from gridshare.api.schemas import SessionOut, SessionPatch, SessionResult


def router(backend: OperatorBackend) -> APIRouter:
    api = APIRouter()

    @api.get("/sessions", response_model=list[SessionOut], responses=READ_ERRORS, tags=["read"])
    async def get_sessions(
        _: Reader,
        state: Annotated[
            Literal["active", "recent", "all"],
            Query(description="Running, ended recently, or both."),
        ] = "all",
    ) -> list[SessionOut]:
        active = {"active": True, "recent": False, "all": None}[state]
        return await backend.sessions(active=active)

    @api.get(
        "/sessions/{session_id}",
        response_model=SessionOut,
        responses=errors(401, 404),
        tags=["read"],
    )
    async def get_session(session_id: str, _: Reader) -> SessionOut:
        for s in await backend.sessions(active=None):
            if s.session_id == session_id:
                return s
        raise NotFound("session", session_id)

    @api.patch(
        "/sessions/{session_id}",
        response_model=SessionResult,
        responses=errors(400, 401, 403, 404, 409),
        tags=["write"],
    )
    async def patch_session(session_id: str, body: SessionPatch, who: Writer) -> SessionResult:
        return await backend.update_session(session_id, body, actor=who.name)

    return api
