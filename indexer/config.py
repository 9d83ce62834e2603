"""Settings from AUDIFI_* environment variables (pydantic-settings).

Secrets (the database URLs) are SecretStr so that they never reach a log line,
an error message or a repr by accident; `redact_url` is the one way to show one.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal
from urllib.parse import urlsplit, urlunsplit

from pydantic import AfterValidator, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from indexer.errors import ConfigError

_ADDRESS = re.compile(r"^0x[0-9a-fA-F]{40}$")


def parse_address(value: str) -> bytes:
    """A 0x-prefixed 20-byte hex address as bytes; raises ValueError otherwise."""
    if not _ADDRESS.match(value):
        raise ValueError("must be a 0x-prefixed 20-byte hex address")
    return bytes.fromhex(value[2:])


def _check_postgres_url(value: SecretStr | None) -> SecretStr | None:
    if value is not None:
        parts = urlsplit(value.get_secret_value())
        if parts.scheme not in ("postgresql", "postgres"):
            raise ValueError("must be a postgresql:// URL")
        try:
            parts.port  # noqa: B018 - raises on a port that is not a number
        except ValueError:
            raise ValueError("has a port that is not a number") from None
    return value


def _check_http_url(value: str) -> str:
    if urlsplit(value).scheme not in ("http", "https"):
        raise ValueError("must be an http:// or https:// URL")
    return value


PostgresUrl = Annotated[SecretStr, AfterValidator(_check_postgres_url)]
HttpUrl = Annotated[str, AfterValidator(_check_http_url)]
# What is between the indexer and PostgreSQL: the server itself or a session pooler
# (session), or a pooler that hands each transaction to any server connection
# (transaction: PgBouncer's pool_mode=transaction; see indexer/store/db.py).
PoolMode = Literal["session", "transaction"]


class Settings(BaseSettings):
    """Every AUDIFI_* setting; defaults suit a local anvil and PostgreSQL."""

    model_config = SettingsConfigDict(env_prefix="AUDIFI_", extra="ignore")

    database_url: PostgresUrl | None = None
    # A streaming standby of the primary for read-only work (deploy/README.md "Read
    # replica"): `status` and `verify` read it; `verify` only once it has replayed what
    # the primary had written when it started, waiting at most this long (then it reads
    # the primary); the daemon measures its lag this often.
    database_replica_url: PostgresUrl | None = None
    database_replica_wait_seconds: float = Field(default=30.0, ge=0)
    database_replica_sample_interval: float = Field(default=5.0, gt=0)
    db_pool_min: int = Field(default=2, ge=1)
    db_pool_max: int = Field(default=10, ge=2)
    db_statement_timeout_ms: int = Field(default=60_000, ge=0)
    db_pool_mode: PoolMode = "session"

    rpc_url: HttpUrl = "http://127.0.0.1:8545"
    rpc_urls: Annotated[list[HttpUrl], NoDecode] = Field(default_factory=list)
    rpc_timeout: float = Field(default=15.0, gt=0)
    rpc_max_retries: int = Field(default=8, ge=0)
    rpc_batch_size: int = Field(default=200, ge=1)
    # The provider's known limit in JSON-RPC calls per second (a batch of k counts k), per
    # URL; unset: learned from its 429s (indexer/ratelimit.py).
    rpc_calls_per_second: float | None = Field(default=None, gt=0)

    chain_id: int | None = Field(default=None, ge=1)
    factory_address: str | None = None
    start_block: int | None = Field(default=None, ge=0)
    confirmations: int = Field(default=0, ge=0)
    poll_interval: float = Field(default=0.2, gt=0)
    reorg_window: int = Field(default=128, ge=1)

    getlogs_initial_range: int = Field(default=1, ge=1)
    getlogs_max_range: int = Field(default=100_000, ge=1)
    batch_max_logs: int = Field(default=20_000, ge=1)
    fetch_concurrency: int = Field(default=3, ge=1)

    # The audit: every committed block compared with the chain and healed (see audit.py).
    audit: bool = True
    audit_rpc_url: HttpUrl | None = None  # a second provider to audit against
    audit_requests_per_second: float = Field(default=200.0, gt=0)
    audit_depth: int | None = Field(default=None, ge=0)  # the deep pass; None: reorg window
    # The watchdog: stalled when the checkpoint has not moved for this long, or while the
    # head moved this far, though behind the head; the process exits after exit_seconds more.
    stall_seconds: float = Field(default=300.0, gt=0)
    stall_blocks: int = Field(default=300, ge=1)
    stall_exit_seconds: float = Field(default=300.0, ge=0)

    lease_seconds: float = Field(default=15.0, ge=1)
    replica_name: str | None = Field(default=None, min_length=1, max_length=100)

    metrics_host: str = "127.0.0.1"
    metrics_port: int = Field(default=9108, ge=0, le=65535)
    ready_max_lag_blocks: int = Field(default=10, ge=0)
    view_refresh_interval: float = Field(default=0.0, ge=0)
    fatal_linger: float = Field(default=30.0, ge=0)

    log_level: Literal["debug", "info", "warning", "error"] = "info"
    log_format: Literal["auto", "json", "console"] = "auto"

    @field_validator("rpc_urls", mode="before")
    @classmethod
    def _split_urls(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("audit_rpc_url", "database_replica_url", mode="before")
    @classmethod
    def _unset_when_empty(cls, value: object) -> object:
        return None if value == "" else value

    @field_validator("factory_address")
    @classmethod
    def _check_factory(cls, value: str | None) -> str | None:
        if value is not None:
            parse_address(value)
        return value

    @property
    def rpc_endpoints(self) -> list[str]:
        """AUDIFI_RPC_URLS when given, else the single AUDIFI_RPC_URL."""
        return self.rpc_urls or [self.rpc_url]

    @property
    def factory(self) -> bytes:
        if self.factory_address is None:
            raise ConfigError("AUDIFI_FACTORY_ADDRESS: is required for this command")
        return parse_address(self.factory_address)

    def database_dsn(self) -> str:
        if self.database_url is None:
            raise ConfigError("AUDIFI_DATABASE_URL: is required for this command")
        return self.database_url.get_secret_value()


def load_settings(**overrides: object) -> Settings:
    """Read the environment; an invalid value becomes one ConfigError line naming the variable."""
    try:
        settings = Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as e:
        first = e.errors()[0]
        field = str(first["loc"][0]) if first["loc"] else "settings"
        message = first["msg"].removeprefix("Value error, ")  # pydantic's, for a ValueError
        raise ConfigError(f"AUDIFI_{field.upper()}: {message}") from None
    if settings.db_pool_min > settings.db_pool_max:
        raise ConfigError("AUDIFI_DB_POOL_MIN: must not exceed AUDIFI_DB_POOL_MAX")
    return settings


def redact_url(url: str) -> str:
    """The URL with any password replaced by ***, safe to log."""
    parts = urlsplit(url)
    if not parts.password:
        return url
    netloc = parts.netloc.rsplit("@", 1)[1]
    user = parts.username or ""
    return urlunsplit(parts._replace(netloc=f"{user}:***@{netloc}"))
