"""Configuration from the environment (prefix ``LIVEGUARD_``), read once at the edge.

Tests build their own ``Settings(...)`` and hand it to the factories; nothing patches it.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="LIVEGUARD_", extra="ignore")

    policies: Path = Field(default=Path("policies"), description="The policy repository.")
    database_url: str = Field(
        default="sqlite:///liveguard.db",
        description="Decision log and review queue; PostgreSQL for several replicas.",
    )
    opa_url: str | None = Field(default=None, description="Remote OPA for Rego policies.")
    opa_token: SecretStr | None = None
    opa_timeout_ms: int = Field(default=50, gt=0, le=10_000)
    shadow: str | None = Field(
        default=None, description="<policy-id>@<ref|path>: a candidate run beside the live one."
    )
    shared_data: Path = Field(default=Path("../shared/data"))
    log_format: Literal["auto", "json", "console"] = "auto"
    log_level: str = "INFO"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
