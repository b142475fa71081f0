"""Configuration of the OSCP side: the ``[oscp]`` table of the site TOML.

    [oscp]
    base_url = "https://site.example/oscp/fp/2.0"   # ours, sent in Register

    [[oscp.capacity_providers]]
    id = "dso"
    base_url = "https://dso.example/oscp/cp/2.0"
    token_to_us = "..."          # the token the DSO presents to us
    token_to_them = "..."        # the token we present to the DSO, or instead:
    registration_token = "..."   # given out of band, starts the Register flow
    heartbeat_interval_s = 60

Tokens are `SecretStr`: they never show in a repr or a log line.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, SecretStr


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class OscpProviderConfig(_Strict):
    id: str = Field(min_length=1)
    base_url: str
    token_to_us: SecretStr | None = None
    token_to_them: SecretStr | None = None
    registration_token: SecretStr | None = None
    heartbeat_interval_s: Annotated[float, Field(gt=0)] = 60.0


class OscpConfig(_Strict):
    base_url: str | None = None
    """Our own public base URL (sent in Register); default from [server]."""
    capacity_providers: list[OscpProviderConfig] = Field(default_factory=list)
