"""Stations and their connectors, and commands sent to a station."""

from typing import Annotated

from fastapi import APIRouter, Body

from gridshare.api.backend import OperatorBackend
from gridshare.api.errors import NotFound
from gridshare.api.routes.common import READ_ERRORS, WRITE_ERRORS, Reader, Writer, errors
from gridshare.api.schemas import CommandResult, StationCommand, StationOut


def router(backend: OperatorBackend) -> APIRouter:
    api = APIRouter()

    @api.get("/stations", response_model=list[StationOut], responses=READ_ERRORS, tags=["read"])
    async def get_stations(_: Reader) -> list[StationOut]:
        return await backend.stations()

    @api.get(
        "/stations/{station_id}",
        response_model=StationOut,
        responses=errors(401, 404),
        tags=["read"],
    )
    async def get_station(station_id: str, _: Reader) -> StationOut:
        for s in await backend.stations():
            if s.station_id == station_id:
                return s
        raise NotFound("station", station_id)

    @api.post(
        "/stations/{station_id}/commands",
        response_model=CommandResult,
        responses=WRITE_ERRORS,
        tags=["write"],
    )
    async def post_command(
        station_id: str, body: Annotated[StationCommand, Body()], who: Writer
    ) -> CommandResult:
        return await backend.station_command(station_id, body, actor=who.name)

    return api
