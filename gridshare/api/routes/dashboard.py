"""The dashboard page ``/``; its files are served under ``/static`` from `WEB_DIR`."""

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse

WEB_DIR = Path(__file__).resolve().parent.parent.parent / "web"


def router() -> APIRouter:
    api = APIRouter()

    @api.get("/", include_in_schema=False)
    async def dashboard() -> FileResponse:
        return FileResponse(WEB_DIR / "index.html", headers={"Cache-Control": "no-cache"})

    return api
