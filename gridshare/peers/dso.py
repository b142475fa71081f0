"""A simulated DSO: an OSCP 2.0 Capacity Provider over real HTTP.

It serves the Capacity Provider endpoints (``/oscp/cp/2.0/...``) on a
loopback port, registers with a Flexibility Provider (or lets the FP register
with it), handshakes, sends heartbeats and capacity forecasts (from a CSV or
a built-in profile), and records and prints what it receives: measurements,
compliance errors, adjust requests. Used by the demo, ``gridshare dso`` and
the tests.

    async with SimulatedDso(fp_url=..., token_to_fp="...") as dso:
        await dso.register()
        await dso.handshake(heartbeat_interval=30)
        await dso.send_forecast("trafo-1", ForecastType.CONSUMPTION, blocks)
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import json
import secrets
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, tzinfo
from enum import Enum
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

import httpx
from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse
from starlette.requests import ClientDisconnect

from forecasts.model import Block, ForecastType, Phase, Unit
from gridshare.csvio import InputError, parse_time
from gridshare.errors import GridshareError
from oscp.loopback import LoopbackServer
from oscp.messages import (
    OSCP_VERSION,
    ForecastedBlock,
    Heartbeat,
    MeasurementConfiguration,
    Message,
    Register,
    UpdateGroupCapacityForecast,
    VersionUrl,
)

CP_PREFIX = "/oscp/cp/2.0"

CP_MESSAGES = {
    "register": ["POST", "PUT", "DELETE"],
    "handshake_acknowledge": ["POST"],
    "heartbeat": ["POST"],
    "update_group_measurements": ["POST"],
    "update_asset_measurements": ["POST"],
    "group_capacity_compliance_error": ["POST"],
    "adjust_group_capacity_forecast": ["POST"],
}


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class Received:
    time: datetime
    message: str
    method: str
    request_id: str | None
    correlation_id: str | None
    body: dict[str, Any]


def _redact(body: dict[str, Any]) -> dict[str, Any]:
    return {k: ("***" if k == "token" else v) for k, v in body.items()}


# --- forecast profiles --------------------------------------------------------------


def evening_peak_cut(
    now: datetime,
    *,
    base_kw: float,
    cut_kw: float,
    peak_start_h: int = 17,
    peak_end_h: int = 21,
    hours: float = 24.0,
    block_minutes: int = 15,
) -> list[Block]:
    """``base_kw`` all day, ``cut_kw`` between the peak hours (UTC), in blocks of
    ``block_minutes`` from the block containing ``now``."""
    step = timedelta(minutes=block_minutes)
    epoch = datetime(2000, 1, 1, tzinfo=UTC)
    t = epoch + ((now.astimezone(UTC) - epoch) // step) * step
    end = t + timedelta(hours=hours)
    out = []
    while t < end:
        kw = cut_kw if peak_start_h <= t.hour < peak_end_h else base_kw
        out.append(Block(kw, Unit.KW, Phase.ALL, t, t + step))
        t += step
    return out


def step_at(
    at: datetime,
    *,
    before: float,
    after: float,
    unit: Unit = Unit.A,
    hours: float = 24.0,
    start: datetime | None = None,
) -> list[Block]:
    """Two blocks: ``before`` from ``start`` (default: an hour before ``at``) to
    ``at``, then ``after`` for ``hours``."""
    s = start or at - timedelta(hours=1)
    out = []
    if at > s:
        out.append(Block(before, unit, Phase.ALL, s, at))
    out.append(Block(after, unit, Phase.ALL, at, at + timedelta(hours=hours)))
    return out


_E = TypeVar("_E", bound=Enum)

NO_ZONE_HINT = "give the site file (--config SITE.toml) to read it in its [site] timezone"
"""Why a time without an offset cannot be read when no site says its zone."""


def _csv_time(text: str, where: str, field: str, zone: tzinfo | None) -> datetime:
    """An ISO time; one without an offset is a local time of the site (``zone``),
    as in every CSV gridshare reads (see `gridshare.csvio`)."""
    t = parse_time(text, where, field, zone or UTC)
    if zone is None and datetime.fromisoformat(text.strip().replace("Z", "+00:00")).tzinfo is None:
        raise InputError(f"{where}: {field}: {text.strip()!r} has no offset; {NO_ZONE_HINT}")
    return t


def _choice(text: str | None, default: _E, where: str, field: str) -> _E:
    """A cell naming one of the values of ``default``'s kind; empty: ``default``."""
    kind = type(default)
    try:
        return kind(text) if text else default
    except ValueError:
        allowed = ", ".join(str(k.value) for k in kind)
        raise InputError(f"{where}: {field}: {text!r} is not one of {allowed}") from None


COLUMNS = ("group_id", "start_time", "end_time", "capacity")


def blocks_from_csv(
    path: str | Path, zone: tzinfo | None = None
) -> dict[tuple[str, ForecastType], list[Block]]:
    """Rows ``group_id,type,start_time,end_time,capacity,unit,phase`` (ISO times;
    type, unit and phase default to CONSUMPTION, KW, ALL). A time without an
    offset is in ``zone``, the site's; without a zone it is refused."""
    out: dict[tuple[str, ForecastType], list[Block]] = {}
    with Path(path).open(newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        missing = [c for c in COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise InputError(f"{path}:1: missing column(s): {', '.join(missing)}")
        for row in reader:
            where = f"{path}:{reader.line_num}"
            cells = {k: (v or "").strip() for k, v in row.items() if k is not None}
            key = (
                cells["group_id"],
                _choice(cells.get("type"), ForecastType.CONSUMPTION, where, "type"),
            )
            try:
                capacity = float(cells["capacity"])
            except ValueError:
                raise InputError(
                    f"{where}: capacity: not a number: {cells['capacity']!r}"
                ) from None
            try:
                b = Block(
                    capacity,
                    _choice(cells.get("unit"), Unit.KW, where, "unit"),
                    _choice(cells.get("phase"), Phase.ALL, where, "phase"),
                    _csv_time(cells["start_time"], where, "start_time", zone),
                    _csv_time(cells["end_time"], where, "end_time", zone),
                )
            except InputError:
                raise
            except ValueError as e:  # the block itself (an end before its start...)
                raise InputError(f"{where}: {e}") from None
            out.setdefault(key, []).append(b)
    return out


class FpAnswered(GridshareError, RuntimeError):
    """The FP answered one of our messages with something else than 204."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


# --- the simulated capacity provider -----------------------------------------------------


@dataclass
class SimulatedDso:
    """A Capacity Provider on a loopback port.

    ``token_to_fp`` is the token the FP was given out of band for us (its
    ``token_to_us``); with it we start the Register flow. ``registration_token``
    is the one we gave the FP out of band (its ``registration_token``) so that
    it can register with us instead.
    """

    fp_url: str | None = None
    token_to_fp: str | None = None
    registration_token: str | None = None
    out: Callable[[str], None] | None = None
    clock: Callable[[], datetime] = utc_now
    received: list[Received] = field(default_factory=list)
    accepted_tokens: set[str] = field(default_factory=set)
    registered: asyncio.Event = field(default_factory=asyncio.Event)
    _awaiting_reply: bool = False
    _server: LoopbackServer | None = None
    _http: httpx.AsyncClient | None = None
    _heartbeat_task: asyncio.Task[None] | None = None
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)
    _arrived: asyncio.Condition = field(default_factory=asyncio.Condition)

    def __repr__(self) -> str:
        return f"SimulatedDso(fp_url={self.fp_url!r}, registered={self.registered.is_set()})"

    # --- lifecycle -----------------------------------------------------------------

    async def start(self, port: int = 0) -> None:
        if self.registration_token:
            self.accepted_tokens.add(self.registration_token)
        self._http = httpx.AsyncClient(timeout=5.0)
        self._server = LoopbackServer(self._app(), port=port)
        await self._server.start()

    async def stop(self) -> None:
        await self.stop_heartbeats()
        for t in list(self._tasks):
            t.cancel()
        for t in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, httpx.HTTPError, RuntimeError):
                await t
        if self._server is not None:
            await self._server.stop()
            self._server = None
        if self._http is not None:
            await self._http.aclose()
            self._http = None

    async def __aenter__(self) -> SimulatedDso:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    @property
    def base_url(self) -> str:
        assert self._server is not None, "start() first"
        return f"{self._server.url}{CP_PREFIX}"

    def _say(self, line: str) -> None:
        if self.out is not None:
            self.out(line)

    # --- the endpoints we serve ----------------------------------------------------------

    def _app(self) -> FastAPI:
        app = FastAPI(openapi_url=None)

        def route(name: str, methods: list[str]) -> None:
            async def endpoint(request: Request) -> Response:
                return await self._receive(name, request)

            endpoint.__name__ = f"cp_{name}"
            app.add_api_route(f"{CP_PREFIX}/{name}", endpoint, methods=methods)

        for name, methods in CP_MESSAGES.items():
            route(name, methods)
        return app

    async def _receive(self, name: str, request: Request) -> Response:
        auth = request.headers.get("authorization", "")
        scheme, _, token = auth.partition(" ")
        if scheme.lower() != "token" or not token:
            return JSONResponse({"message": "no token"}, status_code=401)
        if token not in self.accepted_tokens:
            return JSONResponse({"message": "wrong token"}, status_code=403)
        rid = request.headers.get("x-request-id")
        if not rid:
            return JSONResponse({"message": "X-Request-ID required"}, status_code=400)
        try:
            raw = await request.body()
        except ClientDisconnect:  # nobody left to answer: say so, not a traceback
            self._say(f"[dso] <- {name}: the FP hung up before its request arrived whole")
            return Response(status_code=400)
        try:
            body = json.loads(raw) if raw else {}
        except ValueError:
            return JSONResponse({"message": "invalid JSON"}, status_code=400)
        rec = Received(
            self.clock(), name, request.method, rid, request.headers.get("x-correlation-id"), body
        )
        after: Callable[[], Any] | None = None
        if name == "register" and request.method != "DELETE":
            try:
                reg = Register.model_validate(body)
            except ValueError:
                return JSONResponse({"message": "invalid Register"}, status_code=400)
            after = self._on_register(reg)
        self.received.append(rec)
        self._say(f"[dso] <- {name} {json.dumps(_redact(body), sort_keys=True)}")
        async with self._arrived:
            self._arrived.notify_all()
        if after is not None:
            self._spawn(after())
        return Response(status_code=204, headers={"X-Correlation-ID": rid})

    def _on_register(self, reg: Register) -> Callable[[], Any] | None:
        version = next((v for v in reg.version_url if v.version == OSCP_VERSION), None)
        if version is not None:
            self.fp_url = version.base_url
        self.token_to_fp = reg.token
        if self._awaiting_reply:  # the FP answered our Register: done
            self._awaiting_reply = False
            self.registered.set()
            return None
        new = secrets.token_urlsafe(24)  # the FP registered with us: reply with our token

        async def reply() -> None:
            await asyncio.sleep(0.05)  # after our 204
            self.accepted_tokens = {new}
            await self.post(Message.REGISTER, Register(token=new, version_url=self._versions()))
            self.registered.set()

        return reply

    def _spawn(self, coro: Any) -> None:
        t = asyncio.ensure_future(coro)
        self._tasks.add(t)
        t.add_done_callback(self._tasks.discard)

    def _versions(self) -> list[VersionUrl]:
        return [VersionUrl(version=OSCP_VERSION, base_url=self.base_url)]

    async def wait_for(
        self,
        message: str,
        timeout_s: float = 5.0,
        where: Callable[[Received], bool] | None = None,
        after: int = 0,
    ) -> Received:
        """The first message ``message`` received (from index ``after`` on) that
        satisfies ``where``; TimeoutError after ``timeout_s``."""

        def find() -> Received | None:
            for r in self.received[after:]:
                if r.message == message and (where is None or where(r)):
                    return r
            return None

        async def wait() -> Received:
            async with self._arrived:
                while (hit := find()) is None:
                    await self._arrived.wait()
                return hit

        return await asyncio.wait_for(wait(), timeout_s)

    # --- what we send ---------------------------------------------------------------------

    async def send(
        self,
        message: Message | str,
        body: Any,
        *,
        method: str = "POST",
        token: str | None = None,
        headers: dict[str, str] | None = None,
        request_id: str | None = None,
    ) -> httpx.Response:
        """One request to the FP; the raw response (any status). ``body`` is a
        model, a dict or raw bytes; ``headers`` override the defaults (a value
        of "" removes the header)."""
        assert self._http is not None and self.fp_url is not None, "start() and fp_url first"
        name = message.value if isinstance(message, Message) else message
        h = {"X-Request-ID": request_id or str(uuid.uuid4()), "Content-Type": "application/json"}
        tok = token if token is not None else self.token_to_fp
        if tok:
            h["Authorization"] = f"Token {tok}"
        for k, v in (headers or {}).items():
            h.pop(k, None)
            if v:
                h[k] = v
        if isinstance(body, bytes):
            content = body
        elif hasattr(body, "model_dump_json"):
            content = body.model_dump_json(exclude_none=True).encode()
        else:
            content = json.dumps(body).encode()
        url = f"{self.fp_url.rstrip('/')}/{name}"
        return await self._http.request(method, url, content=content, headers=h)

    async def post(self, message: Message | str, body: Any, **kw: Any) -> httpx.Response:
        """`send`, raising unless the FP answered 204."""
        r = await self.send(message, body, **kw)
        if r.status_code != 204:
            raise FpAnswered(
                r.status_code, f"{message}: FP answered {r.status_code} {r.text[:200]}"
            )
        return r

    async def register(self, timeout_s: float = 5.0, method: str = "POST") -> None:
        """Register (POST; PUT to update) with the FP using ``token_to_fp``; returns
        once the FP's own Register arrived (then ``token_to_fp`` is the rotated token)."""
        ours = secrets.token_urlsafe(24)
        self.accepted_tokens.add(ours)
        self.registered.clear()
        self._awaiting_reply = True
        await self.post(
            Message.REGISTER, Register(token=ours, version_url=self._versions()), method=method
        )
        await asyncio.wait_for(self.registered.wait(), timeout_s)
        self.accepted_tokens = {ours}
        self._say("[dso] registered")

    async def unregister(self) -> None:
        await self.post(Message.REGISTER, b"", method="DELETE")

    async def handshake(
        self,
        heartbeat_interval: float = 60.0,
        measurement_configuration: Sequence[MeasurementConfiguration] = (
            MeasurementConfiguration.CONTINUOUS,
        ),
    ) -> str:
        """Send a Handshake; its X-Request-ID (the FP's acknowledge correlates to it)."""
        rid = str(uuid.uuid4())
        body = {
            "required_behaviour": {
                "heartbeat_interval": heartbeat_interval,
                "measurement_configuration": [m.value for m in measurement_configuration],
            }
        }
        await self.post(Message.HANDSHAKE, body, request_id=rid)
        return rid

    async def heartbeat(self, offline_in_s: float) -> None:
        at = self.clock() + timedelta(seconds=offline_in_s)
        await self.post(Message.HEARTBEAT, Heartbeat(offline_mode_at=at))

    def start_heartbeats(self, interval_s: float, offline_in_s: float | None = None) -> None:
        """Heartbeat every ``interval_s`` with offline_mode_at = now + ``offline_in_s``
        (default: 2 intervals)."""
        offline = offline_in_s if offline_in_s is not None else 2 * interval_s

        async def loop() -> None:
            while True:
                try:
                    await self.heartbeat(offline)
                except (httpx.HTTPError, RuntimeError) as e:
                    self._say(f"[dso] heartbeat failed: {type(e).__name__}")
                await asyncio.sleep(interval_s)

        self._heartbeat_task = asyncio.ensure_future(loop())

    async def stop_heartbeats(self) -> None:
        t, self._heartbeat_task = self._heartbeat_task, None
        if t is not None:
            t.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await t

    async def send_forecast(
        self,
        group_id: str,
        type_: ForecastType,
        blocks: Iterable[Block],
        *,
        segments: int = 1,
    ) -> None:
        """UpdateGroupCapacityForecast, split in ``segments`` parts if asked."""
        fb = [ForecastedBlock.from_block(b) for b in blocks]
        if segments <= 1:
            await self.post(
                Message.UPDATE_GROUP_CAPACITY_FORECAST,
                UpdateGroupCapacityForecast(group_id=group_id, type=type_, forecasted_blocks=fb),
            )
            self._say(f"[dso] -> forecast {group_id} {type_.value}: {len(fb)} blocks")
            return
        first = str(uuid.uuid4())
        size = -(-len(fb) // segments)
        for i in range(segments):
            part = UpdateGroupCapacityForecast(
                group_id=group_id, type=type_, forecasted_blocks=fb[i * size : (i + 1) * size]
            )
            await self.post(
                Message.UPDATE_GROUP_CAPACITY_FORECAST,
                part,
                request_id=first if i == 0 else None,
                headers={
                    "X-Segment-Index": str(i + 1),
                    "X-Segment-Count": str(segments),
                    "X-Correlation-ID": first,
                },
            )
        self._say(f"[dso] -> forecast {group_id} {type_.value}: {len(fb)} blocks, {segments} parts")
