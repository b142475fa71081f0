"""Where the tokens of each capacity provider live, so rotated ones survive a restart.

`TokenStore` is the protocol the app implements on its own storage;
`MemoryTokenStore` and `JsonFileTokenStore` are ready-made. A record holds the
token the party presents to us, the one we present to it, its base URL, the
registration state, what it asked in its Handshake and the last INTERMITTENT
measurement of each group. Tokens are `SecretStr` everywhere but inside the file.
"""

from __future__ import annotations

import asyncio
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Protocol

from pydantic import AwareDatetime, BaseModel, ConfigDict, SecretStr, ValidationError

from oscp.errors import OscpError
from oscp.registration import RegState


class TokenRecord(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    token_to_us: SecretStr | None = None
    token_to_them: SecretStr | None = None
    base_url: str | None = None
    """The party's base URL (from its Register, else from the configuration)."""
    state: RegState = RegState.UNREGISTERED
    behaviour: dict[str, Any] | None = None
    """What the party asked of us in its last Handshake (RequiredBehaviour as
    JSON), so a restart keeps honouring it without a new Handshake."""
    reported: dict[str, tuple[AwareDatetime, float]] = {}
    """Per group: time and cumulative kWh of the last INTERMITTENT measurement the
    party received, so the first one after a restart covers the time we were down."""

    def plain(self) -> dict[str, Any]:
        """The record with the tokens in clear, for storage only."""
        return {
            "token_to_us": self.token_to_us.get_secret_value() if self.token_to_us else None,
            "token_to_them": self.token_to_them.get_secret_value() if self.token_to_them else None,
            "base_url": self.base_url,
            "state": self.state.value,
            "behaviour": self.behaviour,
            "reported": {g: [t.isoformat(), v] for g, (t, v) in self.reported.items()},
        }


class TokenStore(Protocol):
    async def load(self, provider_id: str) -> TokenRecord | None: ...

    async def save(self, provider_id: str, record: TokenRecord) -> None: ...


class MemoryTokenStore:
    def __init__(self) -> None:
        self._records: dict[str, TokenRecord] = {}

    async def load(self, provider_id: str) -> TokenRecord | None:
        return self._records.get(provider_id)

    async def save(self, provider_id: str, record: TokenRecord) -> None:
        self._records[provider_id] = record

    def __repr__(self) -> str:
        return f"MemoryTokenStore({sorted(self._records)})"


class TokenFileError(OscpError):
    """The token file cannot be read."""


class JsonFileTokenStore:
    """One JSON file (mode 0600) ``{provider_id: record}``, replaced atomically on save."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._lock = asyncio.Lock()

    def _read(self) -> dict[str, dict[str, Any]]:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as e:
            raise TokenFileError(f"{self.path}: {type(e).__name__}") from None
        if not isinstance(data, dict):
            raise TokenFileError(f"{self.path}: not a JSON object")
        return data

    def _write(self, data: dict[str, dict[str, Any]]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".tokens-", dir=self.path.parent)
        try:
            os.fchmod(fd, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump(data, f, indent=1, sort_keys=True)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    async def load(self, provider_id: str) -> TokenRecord | None:
        async with self._lock:
            raw = self._read().get(provider_id)
        if raw is None:
            return None
        try:
            return TokenRecord.model_validate(raw)
        except ValidationError:
            raise TokenFileError(f"{self.path}: bad record for {provider_id}") from None

    async def save(self, provider_id: str, record: TokenRecord) -> None:
        async with self._lock:
            data = self._read()
            data[provider_id] = record.plain()
            self._write(data)

    def __repr__(self) -> str:
        return f"JsonFileTokenStore({str(self.path)!r})"
