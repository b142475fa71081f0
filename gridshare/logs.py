"""Log lines that cannot be forged and carry no credentials.

Stations, the DSO and API clients put their own strings into our log lines
(station ids, transaction ids, frames, HTTP headers). `SafeFormatter` makes
every record one line whatever it contains, and blanks credentials, for every
logger that reaches the root handler: ours, ``websockets`` (which logs every
handshake header at DEBUG, ``Authorization`` included), ``uvicorn``, ``httpx``.

- Credentials: the value of ``Authorization`` / ``Proxy-Authorization`` /
  ``Cookie`` / ``X-API-Key`` headers, ``Basic``/``Bearer``/``Token`` credentials
  anywhere (OSCP sends ``Authorization: Token ...``), the password in
  ``scheme://user:password@host`` URLs and ``password=``/``token=`` parameters
  become ``***``.
- Control characters (C0 including newline and carriage return, DEL, C1, and
  the Unicode line and paragraph separators) in the message become escapes
  (``\\n``, ``\\x1b``, ``\\u2028``). A traceback, which our code produces,
  stays multi-line after the message, every line indented, so no line of it
  can pass for a record of its own.

`fields` writes the ``key=value`` pairs that follow an operator line's short
message (``station connected id=CP01 ocpp=1.6 tls=no``), quoting a value only
where it would not stay one word.

`configure_logging` is the one place the commands set logging up. Below DEBUG
the libraries keep their per-connection and per-job lines to themselves
(`QUIET_LIBRARIES` log at WARNING and above); uvicorn's access log is on only
at DEBUG (`gridshare.http_server`).
"""

from __future__ import annotations

import json
import logging
import re
from datetime import datetime
from enum import Enum
from types import TracebackType

__all__ = [
    "QUIET_LIBRARIES",
    "SafeFormatter",
    "configure_logging",
    "duration",
    "escape",
    "fields",
    "redact",
]

QUIET_LIBRARIES = ("websockets", "apscheduler", "httpx", "httpcore")
"""Loggers held at WARNING unless the level asked for is DEBUG: a line per
connection, scheduled job or HTTP request says nothing an operator follows."""

_SCHEMES = r"(?:basic|bearer|token)"
_HEADER = re.compile(
    r"""(?ix)
    \b((?:proxy-)?authorization|cookie|x-api-key)   # header name
    (["']\s*[:=,]\s*b?["']?|\s*[:=]\s*["']?)       # ': ', '=', "': '", "', b'"
    (?:("""
    + _SCHEMES
    + r""")\s+)?                   # scheme, kept
    ([^"'\r\n]+)                                    # the credential, up to a quote or line end
    """
)
_CREDENTIAL = re.compile(r"(?i)\b(" + _SCHEMES + r")(\s+)(?!realm\b)([A-Za-z0-9+/._~-]{8,}=*)")
_URL_PASSWORD = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://[^/\s:@]*:)[^@\s/]*@")
_PARAM = re.compile(r"(?i)\b(password|passwd|secret|token|api_key)=([^&\s\"']+)")

_ExcInfo = tuple[type[BaseException], BaseException, TracebackType | None] | tuple[None, None, None]

_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _header(m: re.Match[str]) -> str:
    scheme = f"{m[3]} " if m[3] else ""
    return f"{m[1]}{m[2]}{scheme}***"


def redact(text: str) -> str:
    """``text`` with every credential it contains replaced by ``***``."""
    text = _HEADER.sub(_header, text)
    text = _CREDENTIAL.sub(r"\1\2***", text)
    text = _URL_PASSWORD.sub(r"\1***@", text)
    return _PARAM.sub(r"\1=***", text)


def _escape_one(m: re.Match[str]) -> str:
    c = m[0]
    named = _NAMED.get(c)
    if named is not None:
        return named
    return f"\\x{ord(c):02x}" if ord(c) <= 0xFF else f"\\u{ord(c):04x}"


def escape(text: str) -> str:
    """``text`` on one line: control characters as Python-style escapes."""
    return _CONTROL.sub(_escape_one, text)


class SafeFormatter(logging.Formatter):
    """A `logging.Formatter` whose every record is one line without credentials
    (plus, after it, an indented traceback if the record has one)."""

    def format(self, record: logging.LogRecord) -> str:
        # A copy: other handlers (pytest's capture, a file handler) see the original.
        safe = logging.makeLogRecord(record.__dict__)
        try:
            message = record.getMessage()
        except Exception:  # a bad format string must still be logged, safely
            message = f"{record.msg!r} % {record.args!r}"
        if isinstance(record.msg, str) and record.msg.endswith("\n"):
            # the log call's own line end (uvicorn's "Exception in ASGI
            # application\n"), not a peer's: dropped, not shown as a literal \n
            message = message.rstrip("\r\n")
        safe.msg, safe.args = escape(redact(message)), None
        safe.exc_text = None  # another handler's formatter may have cached it raw
        return super().format(safe)

    def formatException(self, ei: _ExcInfo) -> str:
        return _indented(super().formatException(ei))

    def formatStack(self, stack_info: str) -> str:
        return _indented(super().formatStack(stack_info))


def _indented(text: str) -> str:
    # \r and escape sequences could still overwrite a terminal line: escaped too.
    return "\n".join("    " + escape(redact(line)) for line in text.splitlines())


_WORD = re.compile(r"[\w.:/@+,~*-]+")


def _value(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.2f}".rstrip("0").rstrip(".")
    if isinstance(value, datetime):
        return value.isoformat(timespec="seconds")
    text = value.value if isinstance(value, Enum) else value
    text = str(text)
    return text if _WORD.fullmatch(text) else json.dumps(text, ensure_ascii=False)


def fields(**pairs: object) -> str:
    """``key=value`` pairs for a log line: None as ``-``, booleans as ``yes``/``no``,
    floats to two decimals, a value with spaces or quotes in double quotes."""
    return " ".join(f"{key}={_value(value)}" for key, value in pairs.items())


def duration(seconds: float) -> str:
    """``45s``, ``12m30s``, ``2h05m``: a duration in the log."""
    s = max(0, round(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{s % 3600 // 60:02d}m"


def configure_logging(level: int | str, fmt: str) -> None:
    """Log to stderr at ``level`` through `SafeFormatter` (root handler); below
    DEBUG, the `QUIET_LIBRARIES` only from WARNING."""
    handler = logging.StreamHandler()
    handler.setFormatter(SafeFormatter(fmt))
    if isinstance(level, str):
        level = level.upper()
    logging.basicConfig(level=level, handlers=[handler])
    number = level if isinstance(level, int) else logging.getLevelNamesMapping()[level]
    quiet = number > logging.DEBUG
    for name in QUIET_LIBRARIES:
        logging.getLogger(name).setLevel(logging.WARNING if quiet else logging.NOTSET)
