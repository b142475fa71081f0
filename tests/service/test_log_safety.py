"""What stations send cannot forge log lines, and no log line carries a credential.

`gridshare serve --log-level DEBUG` runs as its own process (its logging set up
by its command line, as in production); a station on loopback sends right and
wrong Basic credentials, an id with a percent-encoded newline (refused), a
frame that is not JSON and a transaction id with a newline on a connector the site does not
have. Plus the formatter on its own.
"""

from __future__ import annotations

import asyncio
import base64
import io
import logging
import os
import re
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from gridshare.logs import SafeFormatter, escape, redact
from ocpp_adapter.rpc import OcppVersion
from tests.ocpp.helpers import TS, Station, basic

ROOT = Path(__file__).resolve().parents[2]
PASSWORD = "correct-horse-battery"
WRONG = "wrong-horse-battery!"
FORGED_TX = "X\nERROR gridshare.api: FAKE2 hi"
FORGED_ID = "X%0AERROR%20gridshare.api%20FAKE4"  # logged as the path it came on
RECORD = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} (DEBUG|INFO|WARNING|ERROR|CRITICAL) ")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def write_site(path: Path, ocpp_port: int, http_port: int) -> None:
    path.write_text(
        f"""
[site]
name = "log-safety"

[server]
host = "127.0.0.1"
ocpp_port = {ocpp_port}
http_port = {http_port}
allow_unknown_stations = true

[server.station_passwords]
CP1 = "{PASSWORD}"

[[groups]]
id = "grid"
limit_a = 64

[[chargers]]
id = "CP1"
group = "grid"
[[chargers.connectors]]
id = 1
max_current_a = 32
"""
    )


async def connected(port: int, sid: str, password: str) -> Station:
    ws = await connect(
        f"ws://127.0.0.1:{port}/ocpp/{sid}",
        subprotocols=[OcppVersion.V201.value],  # type: ignore[list-item]
        additional_headers=basic(sid, password),
        compression=None,
    )
    return Station(ws, OcppVersion.V201)


async def until_connected(port: int, proc: subprocess.Popen[bytes]) -> Station:
    for _ in range(300):
        assert proc.poll() is None, "gridshare serve exited"
        try:
            return await connected(port, "CP1", PASSWORD)
        except OSError:
            await asyncio.sleep(0.1)
    raise AssertionError("gridshare serve did not listen")


async def drive(port: int, proc: subprocess.Popen[bytes]) -> None:
    st = await until_connected(port, proc)
    try:
        await st.boot()
        started = {
            "eventType": "Started",
            "timestamp": TS,
            "triggerReason": "Authorized",
            "seqNo": 0,
            "transactionInfo": {"transactionId": FORGED_TX, "chargingState": "Charging"},
            "evse": {"id": 9, "connectorId": 1},  # the site has no connector CP1/9
        }
        await st.call("TransactionEvent", started)
        await st.send_raw("{not json\nERROR gridshare.api: FAKE3")
        await asyncio.wait_for(st.raw.get(), 5)  # its CALLERROR
    finally:
        await st.close()
    with pytest.raises(InvalidStatus):
        await connected(port, "CP1", WRONG)
    with pytest.raises(InvalidStatus) as refused:
        await connected(port, FORGED_ID, PASSWORD)
    # not an id at all (a newline in it): refused before its credentials are looked at
    assert refused.value.response.status_code == 404


@pytest.mark.slow
async def test_serve_debug_log_is_one_line_per_record_without_credentials(tmp_path: Path) -> None:
    ocpp_port, http_port = free_port(), free_port()
    config, log = tmp_path / "site.toml", tmp_path / "serve.log"
    write_site(config, ocpp_port, http_port)
    cmd = [sys.executable, "-m", "gridshare.cli", "serve", "--config", str(config)]
    cmd += ["--db", str(tmp_path / "site.db"), "--log-level", "DEBUG"]
    with log.open("wb") as out:
        proc = subprocess.Popen(
            cmd, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, stdout=out, stderr=out
        )
    try:
        await drive(ocpp_port, proc)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(20)
    text = log.read_text()

    for secret in (PASSWORD, WRONG):
        assert secret not in text
        for user in ("CP1", FORGED_ID):
            assert base64.b64encode(f"{user}:{secret}".encode()).decode() not in text
    assert "Authorization: Basic ***" in text  # websockets' handshake log, redacted

    lines = text.splitlines()
    strays = [line for line in lines if not RECORD.match(line) and not line.startswith(" ")]
    assert strays == []
    for fake in ("FAKE2", "FAKE3", "FAKE4"):
        assert any(fake in line for line in lines), fake
    assert any(
        "session 'X\\nERROR gridshare.api: FAKE2 hi' on unknown connector" in ln for ln in lines
    )


def record(msg: str, *args: object, exc: bool = False) -> logging.LogRecord:
    exc_info = None
    if exc:
        try:
            raise ValueError("bad\nERROR forged: line")
        except ValueError:
            exc_info = sys.exc_info()
    return logging.LogRecord("t", logging.WARNING, __file__, 1, msg, args or None, exc_info)


def test_formatter_escapes_every_control_character_and_keeps_the_original() -> None:
    fmt = SafeFormatter("%(levelname)s %(name)s: %(message)s")
    rec = record("session %s on %s", "X\r\nERROR a: b\x1b[2J\x85\u2028", "c\x00")
    assert fmt.format(rec) == r"WARNING t: session X\r\nERROR a: b\x1b[2J\x85\u2028 on c\x00"
    assert rec.args == ("X\r\nERROR a: b\x1b[2J\x85\u2028", "c\x00")  # other handlers unaffected
    assert escape("tab\tand é ü 電") == "tab\\tand é ü 電"


def test_a_log_calls_own_line_end_is_dropped_a_peers_is_escaped() -> None:
    fmt = SafeFormatter("%(levelname)s %(message)s")
    assert fmt.format(record("Exception in ASGI application\n")) == (
        "WARNING Exception in ASGI application"
    )
    assert fmt.format(record("station %s", "CP1\n")) == "WARNING station CP1\\n"


def test_formatter_puts_tracebacks_after_the_message_indented() -> None:
    rec = record("failed for %r", "a\nb", exc=True)
    logging.Formatter().format(rec)  # another handler first: caches the raw traceback
    out = SafeFormatter("%(levelname)s %(message)s").format(rec)
    first, *rest = out.split("\n")
    assert first == "WARNING failed for 'a\\nb'"
    assert rest and all(line.startswith("    ") for line in rest)
    # The exception's own newline: a line of the traceback, indented like the rest.
    assert rest[-2:] == ["    ValueError: bad", "    ERROR forged: line"]
    assert "ERROR forged" not in first


@pytest.mark.parametrize(
    ("line", "safe"),
    [
        ("< Authorization: Basic Q1AxOnBhc3N3b3Jk", "< Authorization: Basic ***"),
        (
            "{'authorization': 'Bearer abc.def.ghi', 'x': 1}",
            "{'authorization': 'Bearer ***', 'x': 1}",
        ),
        ("(b'Authorization', b'Token 0123456789abcdef')", "(b'Authorization', b'Token ***')"),
        ("Authorization: Digest username=x", "Authorization: ***"),
        ("sent Token 0123456789abcdef to the DSO", "sent Token *** to the DSO"),
        (
            "GET wss://cp1:s3cret@host/ocpp?token=abc&x=1",
            "GET wss://cp1:***@host/ocpp?token=***&x=1",
        ),
        ('WWW-Authenticate: Basic realm="ocpp"', 'WWW-Authenticate: Basic realm="ocpp"'),
        ("Token expired", "Token expired"),
    ],
)
def test_redaction(line: str, safe: str) -> None:
    assert redact(line) == safe


def test_formatter_redacts_through_a_handler() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(SafeFormatter("%(message)s"))
    logger = logging.getLogger("tests.log_safety")
    logger.addHandler(handler)
    try:
        logger.warning("> %s: %s", "Authorization", "Basic " + base64.b64encode(b"CP1:pw").decode())
    finally:
        logger.removeHandler(handler)
    assert stream.getvalue() == "> Authorization: Basic ***\n"
