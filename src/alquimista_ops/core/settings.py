"""Typed settings read from the environment (names follow the deployment document)."""

from __future__ import annotations

import os
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

PROJECT_ROOT = Path.cwd()
DEFAULT_VAR_DIR = PROJECT_ROOT / "var"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=None, extra="ignore", case_sensitive=False)

    env: str = Field(default="dev", alias="ENV")
    var_dir: Path = Field(default=DEFAULT_VAR_DIR, alias="VAR_DIR")

    # Database: DATABASE_URL, or AURORA_SECRET_ARN (+ AURORA_CLUSTER_ARN) on AWS.
    database_url: str | None = Field(default=None, alias="DATABASE_URL")
    aurora_secret_arn: str | None = Field(default=None, alias="AURORA_SECRET_ARN")
    aurora_cluster_arn: str | None = Field(default=None, alias="AURORA_CLUSTER_ARN")
    db_schema: str = Field(default="alquimista_platform", alias="DB_SCHEMA")
    db_pool_size: int = Field(default=10, alias="DB_POOL_SIZE")

    # Cache
    redis_url: str | None = Field(default=None, alias="REDIS_URL")
    redis_host: str | None = Field(default=None, alias="REDIS_HOST")
    redis_port: int = Field(default=6379, alias="REDIS_PORT")
    cache_enabled: bool = Field(default=True, alias="CACHE_ENABLED")
    cache_prefix: str = Field(default="opdash", alias="CACHE_PREFIX")

    # Authentication
    auth_mode: Literal["local", "cognito"] = Field(default="local", alias="AUTH_MODE")
    cognito_user_pool_id: str | None = Field(default=None, alias="COGNITO_USER_POOL_ID")
    cognito_client_id: str | None = Field(default=None, alias="COGNITO_CLIENT_ID")
    aws_region: str = Field(default="us-east-1", alias="AWS_REGION")
    local_issuer: str = Field(default="http://127.0.0.1:8000/local-idp", alias="LOCAL_ISSUER")
    local_client_id: str = Field(default="alquimista-ops-local", alias="LOCAL_CLIENT_ID")
    local_key_file: Path | None = Field(default=None, alias="LOCAL_KEY_FILE")
    token_ttl_seconds: int = Field(default=3600, alias="TOKEN_TTL_SECONDS")
    jwks_refresh_interval_seconds: int = Field(default=60, alias="JWKS_REFRESH_INTERVAL_SECONDS")

    # Web / API
    enable_operational_dashboard: bool = Field(default=True, alias="ENABLE_OPERATIONAL_DASHBOARD")
    api_base_url: str | None = Field(default=None, alias="API_BASE_URL")
    cors_origins: list[str] = Field(default_factory=list, alias="CORS_ORIGINS")
    max_body_bytes: int = Field(default=5 * 1024 * 1024, alias="MAX_BODY_BYTES")
    log_level: str = Field(default="INFO", alias="LOG_LEVEL")

    # Web dashboard
    cognito_domain: str | None = Field(default=None, alias="COGNITO_DOMAIN")
    # operational commands and their worker.
    command_max_attempts: int = Field(default=5, ge=1, le=50, alias="COMMAND_MAX_ATTEMPTS")
    command_retention_days: int = Field(default=90, ge=1, alias="COMMAND_RETENTION_DAYS")
    command_lease_seconds: float = Field(default=30.0, gt=0, alias="COMMAND_LEASE_SECONDS")
    command_poll_interval_seconds: float = Field(
        default=2.0, gt=0, alias="COMMAND_POLL_INTERVAL_SECONDS"
    )
    command_backoff_base_seconds: float = Field(
        default=2.0, ge=0, alias="COMMAND_BACKOFF_BASE_SECONDS"
    )
    command_backoff_max_seconds: float = Field(
        default=300.0, ge=0, alias="COMMAND_BACKOFF_MAX_SECONDS"
    )
    command_batch_size: int = Field(default=100, ge=1, le=1000, alias="COMMAND_BATCH_SIZE")
    # the command worker and the usage scheduler inside the server (`alquimista-ops dev`)
    command_inprocess_worker: bool = Field(default=False, alias="COMMAND_INPROCESS_WORKER")
    # -- cache tuning and rate limiting -----------------------------------------------
    # Redis socket timeouts (a slow Redis is treated as down) and the back-off after a failure
    # during which Redis is not tried at all (doubles on repeated failures, up to 12x).
    cache_timeout_ms: int = Field(default=100, ge=1, le=10_000, alias="CACHE_TIMEOUT_MS")
    cache_backoff_seconds: float = Field(default=5.0, ge=0, le=600, alias="CACHE_BACKOFF_SECONDS")
    cache_memory_max_entries: int = Field(default=10_000, ge=1, alias="CACHE_MEMORY_MAX_ENTRIES")
    # With Redis, each process keeps copies of what it read for at most this long (0: off),
    # dropped at once by any process's invalidation (published on a Redis channel). Off on
    # AWS Lambda, whose frozen instances cannot listen between invocations.
    cache_local_seconds: float = Field(default=5.0, ge=0, le=300, alias="CACHE_LOCAL_SECONDS")
    cache_local_max_mb: int = Field(default=16, ge=1, le=4096, alias="CACHE_LOCAL_MAX_MB")
    # Fixed-window limits per authenticated user and per client address (0 turns one off).
    rate_limit_enabled: bool = Field(default=True, alias="RATE_LIMIT_ENABLED")
    rate_limit_per_user: int = Field(default=600, ge=0, alias="RATE_LIMIT_PER_USER")
    rate_limit_per_address: int = Field(default=1200, ge=0, alias="RATE_LIMIT_PER_ADDRESS")
    rate_limit_window_seconds: int = Field(
        default=60, ge=1, le=3600, alias="RATE_LIMIT_WINDOW_SECONDS"
    )
    # Take the client address from X-Forwarded-For (only behind a trusted proxy / API gateway).
    trust_forwarded_for: bool = Field(default=False, alias="TRUST_FORWARDED_FOR")
    # -- speed under load and observability ---------------------------------------------
    # How many reads one server worker runs at once (its event loop's asyncpg connections,
    # core.reads); the others wait in line. Default: by where PostgreSQL is
    # (core.db.read_concurrency).
    db_read_concurrency: int | None = Field(default=None, ge=1, le=100, alias="DB_READ_CONCURRENCY")
    # A pooled PostgreSQL connection idle longer than this is pinged before use (0: always).
    db_ping_idle_seconds: float = Field(default=10.0, ge=0, le=3600, alias="DB_PING_IDLE_SECONDS")
    # Verified tokens are remembered (by their SHA-256) this long, never past their exp.
    token_cache_seconds: float = Field(default=60.0, ge=0, le=3600, alias="TOKEN_CACHE_SECONDS")
    token_cache_max_entries: int = Field(
        default=10_000, ge=0, le=1_000_000, alias="TOKEN_CACHE_MAX_ENTRIES"
    )
    # GET /metrics: internal users' bearer tokens, this token, or a client address of the list.
    metrics_enabled: bool = Field(default=True, alias="METRICS_ENABLED")
    metrics_token: str | None = Field(default=None, alias="METRICS_TOKEN")
    metrics_allow_from: list[str] = Field(default_factory=list, alias="METRICS_ALLOW_FROM")

    @field_validator("cors_origins", "metrics_allow_from", mode="before")
    @classmethod
    def _split_origins(cls, value: object) -> object:
        if isinstance(value, str):
            return [item.strip() for item in value.split(",") if item.strip()]
        return value

    @model_validator(mode="after")
    def _refuse_unsafe_defaults(self) -> Settings:
        if self.is_production:
            if "*" in self.cors_origins:
                raise ValueError("CORS_ORIGINS may not contain '*'")
            if self.auth_mode == "cognito" and not (
                self.cognito_user_pool_id and self.cognito_client_id
            ):
                raise ValueError(
                    "AUTH_MODE=cognito needs COGNITO_USER_POOL_ID and COGNITO_CLIENT_ID"
                )
        if self.auth_mode == "cognito" and not self.cognito_user_pool_id:
            raise ValueError("AUTH_MODE=cognito needs COGNITO_USER_POOL_ID")
        return self

    @property
    def is_production(self) -> bool:
        return self.env.lower() in {"prod", "production"}

    @property
    def is_development(self) -> bool:
        return self.env.lower() in {"dev", "development", "local", "test"}

    @property
    def embedded_data_dir(self) -> Path:
        """The embedded PostgreSQL server's data (without ``DATABASE_URL``)."""
        return self.var_dir / "postgres"

    @property
    def effective_cache_local_seconds(self) -> float:
        """``CACHE_LOCAL_SECONDS``, or 0 inside AWS Lambda (see the field)."""
        if os.environ.get("AWS_LAMBDA_FUNCTION_NAME"):
            return 0.0
        return self.cache_local_seconds

    @property
    def resolved_redis_url(self) -> str | None:
        if self.redis_url:
            return self.redis_url
        if self.redis_host:
            return f"redis://{self.redis_host}:{self.redis_port}/0"
        return None

    @property
    def issuer(self) -> str:
        if self.auth_mode == "cognito":
            return (
                f"https://cognito-idp.{self.aws_region}.amazonaws.com/{self.cognito_user_pool_id}"
            )
        return self.local_issuer

    @property
    def client_id(self) -> str:
        if self.auth_mode == "cognito":
            return self.cognito_client_id or ""
        return self.local_client_id

    @property
    def jwks_url(self) -> str:
        return f"{self.issuer}/.well-known/jwks.json"

    @property
    def key_file(self) -> Path:
        return self.local_key_file or self.var_dir / "local-idp-key.pem"

    # usage pipeline (ingestion, daily rollup, schedule, retention).
    usage_rollup_time: str = Field(default="02:00", alias="USAGE_ROLLUP_TIME")
    usage_rollup_rerun_days: int = Field(default=2, ge=0, le=31, alias="USAGE_ROLLUP_RERUN_DAYS")
    usage_raw_retention_days: int = Field(
        default=90, ge=1, le=3650, alias="USAGE_RAW_RETENTION_DAYS"
    )
    usage_scheduler_interval_seconds: float = Field(
        default=60.0, gt=0, alias="USAGE_SCHEDULER_INTERVAL_SECONDS"
    )
    ingest_max_records: int = Field(default=10_000, ge=1, le=100_000, alias="INGEST_MAX_RECORDS")
    ingest_max_clock_skew_seconds: int = Field(
        default=300, ge=0, alias="INGEST_MAX_CLOCK_SKEW_SECONDS"
    )

    @field_validator("usage_rollup_time")
    @classmethod
    def _check_rollup_time(cls, value: str) -> str:
        hours, sep, minutes = value.partition(":")
        if not (sep and hours.isdigit() and minutes.isdigit()):
            raise ValueError("USAGE_ROLLUP_TIME must be HH:MM (UTC)")
        if not (0 <= int(hours) <= 23 and 0 <= int(minutes) <= 59):
            raise ValueError("USAGE_ROLLUP_TIME must be HH:MM (UTC)")
        return f"{int(hours):02d}:{int(minutes):02d}"

    # commands on DynamoDB. COMMANDS_BACKEND=auto keeps the commands in the DynamoDB
    # table COMMANDS_TABLE when it is set (the CDK stack sets it on every function), else in
    # the relational operational_commands table; sql / dynamodb force one.
    commands_table: str | None = Field(default=None, alias="COMMANDS_TABLE")
    commands_backend: Literal["auto", "sql", "dynamodb"] = Field(
        default="auto", alias="COMMANDS_BACKEND"
    )

    @model_validator(mode="after")
    def _check_commands_backend(self) -> Settings:
        if self.commands_backend == "dynamodb" and not self.commands_table:
            raise ValueError("COMMANDS_BACKEND=dynamodb needs COMMANDS_TABLE")
        return self

    @property
    def commands_on_dynamodb(self) -> bool:
        if self.commands_backend == "dynamodb":
            return True
        return self.commands_backend == "auto" and bool(self.commands_table)


EMBEDDED_DATABASE = "alquimista"
# How ``AURORA_SECRET_ARN`` becomes a URL: set by the AWS adapter when it is imported
# (``alquimista_ops.aws``: Secrets Manager), as every entry point that may need it does.
_secret_reader: Callable[[Settings], str] | None = None


def read_database_secrets_with(reader: Callable[[Settings], str]) -> None:
    global _secret_reader
    _secret_reader = reader


def resolve_database_url(settings: Settings) -> str:
    """The SQLAlchemy URL: ``DATABASE_URL``, the Aurora secret, or else the embedded PostgreSQL
    server under ``VAR_DIR`` (started, or joined when running, by this call: it stops when the
    last process using it exits)."""
    if settings.database_url:
        return normalize_database_url(settings.database_url)
    if settings.aurora_secret_arn:
        if _secret_reader is None:
            raise RuntimeError(
                "AURORA_SECRET_ARN is read by the AWS adapter: import alquimista_ops.aws"
            )
        return _secret_reader(settings)
    from alquimista_ops.core.embedded import ensure_server

    server = ensure_server(settings.embedded_data_dir)
    return normalize_database_url(server.url(EMBEDDED_DATABASE, create=True))


def normalize_database_url(url: str) -> str:
    """Accept plain ``postgresql://`` URLs and use the psycopg 3 driver for them."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
