"""Keel's configuration: environment variables prefixed ``KEEL_`` (or a ``.env`` file).

Every setting is validated at start-up; a bad value stops the process with a message
naming the variable (see :func:`load_settings`).
"""

from __future__ import annotations

import ipaddress
import json
import os
import secrets
from datetime import date, timedelta
from enum import StrEnum
from functools import cached_property
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

ENV_PREFIX = "KEEL_"
SQLITE_DEFAULT_URL = "sqlite+aiosqlite:///./keel.db"
MIN_SECRET_LENGTH = 32

# Values seen in templates and tutorials; a production secret equal to (or built only
# from) one of these is refused even when long enough.
_PLACEHOLDER_SECRETS = frozenset(
    {
        "changethis",
        "changeme",
        "change-me",
        "secret",
        "secret-key",
        "secretkey",
        "your-secret-key",
        "your-secret-key-here",
        "supersecret",
        "insecure",
        "development",
        "password",
        "keel",
        "xxx",
        "test",
    }
)


class Environment(StrEnum):
    DEVELOPMENT = "development"
    PRODUCTION = "production"
    TEST = "test"


def _split_list(value: Any) -> Any:
    """Accept a JSON list or a comma-separated string for list settings."""
    if isinstance(value, str):
        stripped = value.strip()
        if stripped.startswith("["):
            return json.loads(stripped)
        return [item.strip() for item in stripped.split(",") if item.strip()]
    return value


StrList = Annotated[list[str], NoDecode]


def _is_placeholder(secret: str) -> bool:
    lowered = secret.lower()
    if lowered in _PLACEHOLDER_SECRETS:
        return True
    # "changethischangethischangethis..." is as guessable as "changethis".
    return (
        any(lowered == word * (len(lowered) // len(word)) for word in _PLACEHOLDER_SECRETS)
        or len(set(lowered)) < 8
    )


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        frozen=True,
    )

    # --- Runtime -----------------------------------------------------------------
    env: Environment = Field(Environment.DEVELOPMENT, description="development | production | test")
    secret_key: SecretStr | None = Field(
        None,
        description="Signing key (>= 32 chars). Required in production; generated "
        "and kept in KEEL_SECRET_KEY_FILE in development.",
    )
    secret_key_file: Path = Field(
        Path(".keel/secret_key"),
        description="Where development keeps its generated secret key.",
    )
    gc_freeze: bool = Field(
        True,
        description=(
            "Once started, move every object then alive out of the garbage collector's "
            "sight (gc.freeze): its full collections stop walking the application itself."
        ),
    )

    # --- Identity ----------------------------------------------------------------
    access_token_minutes: int = Field(15, ge=1, le=60, description="Access token lifetime.")
    refresh_token_days: int = Field(7, ge=1, le=90, description="Refresh token (session) lifetime.")
    jwt_issuer: str = Field("keel", min_length=1, max_length=200)
    jwt_audience: str = Field("keel-api", min_length=1, max_length=200)
    password_hash_memory_kib: int = Field(
        19_456, ge=19_456, le=4_194_304, description="argon2id memory cost (OWASP minimum 19 MiB)."
    )
    password_hash_time_cost: int = Field(2, ge=2, le=20, description="argon2id iterations.")
    password_hash_parallelism: int = Field(1, ge=1, le=16, description="argon2id lanes.")
    lockout_threshold: int = Field(5, ge=1, le=100, description="Failed logins that lock an account.")
    lockout_window_minutes: int = Field(15, ge=1, le=1440, description="Window for counting failures.")
    session_cache_ms: int = Field(
        1000, ge=0, le=10_000, description="How long a process trusts its cached view of a session."
    )
    admin_email_domains: StrList = Field(
        default_factory=list, description="New accounts with these e-mail domains become admins."
    )
    admin_email: str | None = Field(None, description="Bootstrap admin created at start-up if missing.")
    admin_password: SecretStr | None = Field(None, description="Password of the bootstrap admin.")

    # --- Database ----------------------------------------------------------------
    database_url: str = Field(SQLITE_DEFAULT_URL, description="SQLAlchemy async URL.")
    db_pool_size: int = Field(20, ge=1, le=200, description="Pooled connections per process (PostgreSQL).")
    db_max_overflow: int = Field(
        0,
        ge=0,
        le=200,
        description=(
            "Extra connections opened under load and closed when returned. Each costs a new "
            "connection (~1 ms) per use once the pool is busy: size the pool instead."
        ),
    )
    db_pool_timeout: float = Field(5.0, gt=0, le=120, description="Seconds to wait for a pooled connection.")
    db_connect_timeout: float = Field(3.0, gt=0, le=60)
    db_statement_timeout_ms: int = Field(
        30_000, ge=0, le=3_600_000, description="PostgreSQL statement_timeout; 0 = none."
    )
    auto_migrate: bool | None = Field(
        None,
        description="Apply migrations when `keel serve` starts. Default: on for "
        "SQLite (embedded mode), off otherwise (run `keel db upgrade`).",
    )

    # --- Redis -------------------------------------------------------------------
    redis_url: str | None = Field(None, description="redis://host:port/db; optional.")
    redis_key_prefix: str = Field("keel:", min_length=1, max_length=64)
    redis_timeout_ms: int = Field(250, ge=10, le=30_000)

    # --- HTTP ----------------------------------------------------------------------
    cors_origins: StrList = Field(default_factory=list)
    trusted_hosts: StrList = Field(default_factory=lambda: ["*"])
    trusted_proxies: StrList = Field(
        default_factory=list,
        description="CIDRs whose X-Forwarded-For is believed.",
    )
    max_body_bytes: int = Field(1_048_576, ge=1024, le=1_073_741_824)
    hsts: bool = Field(False, description="Send HSTS even when the request was plain HTTP.")
    health_timeout_ms: int = Field(800, ge=50, le=30_000)
    v1_deprecated_on: date = Field(date(2026, 1, 20), description="Sent as the v1 Deprecation header.")
    v1_sunset_on: date = Field(date(2027, 6, 30), description="Sent as the v1 Sunset header.")
    idempotency_ttl_hours: int = Field(
        24, ge=1, le=720, description="How long a POST's response is kept for Idempotency-Key retries."
    )
    list_total_cache_ms: int = Field(
        2000,
        ge=0,
        le=60_000,
        description="How long a process reuses a list's counted total (per caller and filters); "
        "any write it serves drops them all. 0 counts on every request.",
    )

    # --- Rate limits ---------------------------------------------------------------
    rate_limit_enabled: bool = Field(True, description="Enforce the rate limits and send their headers.")
    rate_limit_anonymous_per_minute: int = Field(60, ge=1, le=1_000_000, description="Per client IP.")
    rate_limit_user_per_minute: int = Field(
        100, ge=1, le=1_000_000, description="Per user (their API keys count as them)."
    )
    rate_limit_admin_per_minute: int = Field(10_000, ge=1, le=1_000_000, description="Per admin user.")
    rate_limit_login_per_minute: int = Field(
        5, ge=1, le=1_000_000, description="POST /auth/login and /auth/token, per IP and per e-mail."
    )
    rate_limit_register_per_minute: int = Field(
        3, ge=1, le=1_000_000, description="POST /auth/register, per IP."
    )
    rate_limit_period_seconds: float = Field(
        60.0, ge=1.0, le=3600.0, description="The window of the per-minute limits (shortened by tests)."
    )
    rate_limit_probe_seconds: float = Field(
        1.0, ge=0.05, le=60.0, description="While Redis is down, how often one request probes it again."
    )
    rate_limit_free_multiplier: float = Field(
        1.0, ge=0.01, le=1000.0, description="The user limit is multiplied by this on the free plan."
    )
    rate_limit_pro_multiplier: float = Field(
        5.0, ge=0.01, le=1000.0, description="The user limit is multiplied by this on the pro plan."
    )
    rate_limit_enterprise_multiplier: float = Field(
        20.0, ge=0.01, le=1000.0, description="The user limit is multiplied by this on the enterprise plan."
    )
    quota_products_free: int = Field(
        1, ge=0, le=1_000_000, description="Products a free account may create per period; 0: no limit."
    )
    quota_products_free_period_seconds: float = Field(7200.0, ge=1.0, le=31 * 86400.0)
    quota_products_pro: int = Field(
        100, ge=0, le=1_000_000, description="Products a pro account may create per period; 0: no limit."
    )
    quota_products_pro_period_seconds: float = Field(3600.0, ge=1.0, le=31 * 86400.0)
    quota_products_enterprise: int = Field(
        0, ge=0, le=1_000_000, description="Products an enterprise account may create per period; 0: none."
    )
    quota_products_enterprise_period_seconds: float = Field(3600.0, ge=1.0, le=31 * 86400.0)

    # --- Cache ---------------------------------------------------------------------
    cache_enabled: bool | None = Field(
        None,
        description="Cache single product and folder reads. Default: on with Redis (one cache for "
        "every replica) or SQLite (one host); off for PostgreSQL without Redis, where each "
        "replica's own cache would miss the others' writes.",
    )
    cache_max_bytes: int = Field(
        64 * 1024 * 1024, ge=1024, le=64 * 1024**3, description="The cache's budget: keys plus values."
    )
    cache_ttl_seconds: float = Field(
        60.0, ge=0.0, le=86400.0, description="How long an entry lives whatever happens (0: store nothing)."
    )
    cache_fill_guard_seconds: float = Field(
        5.0,
        ge=0.0,
        le=300.0,
        description="After an invalidation, how long reads that may have seen the old rows are not stored.",
    )
    cache_warm_limit: int = Field(100, ge=1, le=10_000, description="Entries POST /cache/warm reloads.")

    # --- Jobs ----------------------------------------------------------------------
    worker_in_process: bool | None = Field(
        None,
        description="Run a job worker inside `keel serve`. Default: on for SQLite (embedded "
        "mode), off otherwise (run `keel worker`).",
    )
    worker_concurrency: int = Field(8, ge=1, le=256, description="Jobs one worker runs at once.")
    worker_poll_ms: int = Field(
        1000, ge=10, le=60_000, description="How often an idle worker looks for due jobs without a wake-up."
    )
    job_lease_seconds: int = Field(
        30,
        ge=2,
        le=3600,
        description="A running job whose worker stops renewing it for this long is retried.",
    )
    worker_shutdown_grace_seconds: float = Field(
        20.0,
        ge=0,
        le=600,
        description="On SIGTERM, how long running jobs may finish before they are released.",
    )
    job_retention_days: int = Field(
        7, ge=1, le=365, description="Finished jobs and dispatched events are deleted after this."
    )
    audit_retention_days: int = Field(
        365, ge=1, le=36_500, description="Audit log entries older than this are deleted."
    )

    # --- Webhooks ------------------------------------------------------------------
    webhooks_allow_private_targets: bool = Field(
        False,
        description="Allow webhook URLs that resolve to loopback, private or link-local "
        "addresses. For local development and tests only.",
    )
    webhooks_allow_http: bool | None = Field(
        None, description="Allow http:// webhook URLs. Default: off in production, on otherwise."
    )
    webhook_disable_after: timedelta = Field(
        timedelta(days=5),
        description="A subscription failing continuously this long is disabled (ISO 8601 duration "
        "such as P5D, or seconds).",
    )
    webhook_disable_after_failures: int = Field(
        50, ge=1, le=100_000, description="...or after this many consecutive failed deliveries."
    )
    webhook_secret_overlap_hours: int = Field(
        24, ge=0, le=720, description="After a secret rotation, the previous secret keeps signing this long."
    )

    # --- Documents -----------------------------------------------------------------
    upload_max_bytes: int = Field(
        20 * 1024 * 1024,
        ge=1024,
        le=1024**3,
        description="Largest document upload; larger → 413 while it streams.",
    )
    storage_backend: Literal["local", "s3"] = Field("local", description="Where uploaded files are kept.")
    storage_dir: Path = Field(
        Path(".keel/storage"), description="The local backend's directory (also its temp files)."
    )
    s3_endpoint_url: str | None = Field(
        None, description="S3-compatible endpoint (https://…); AWS when unset."
    )
    s3_bucket: str | None = Field(None, min_length=3, max_length=63)
    s3_access_key: SecretStr | None = None
    s3_secret_key: SecretStr | None = None
    s3_region: str = Field("us-east-1", min_length=1, max_length=64)
    s3_prefix: str = Field("keel/", max_length=200, description="Key prefix inside the bucket.")
    document_chunk_size: int = Field(1000, ge=100, le=20_000, description="Largest chunk, in characters.")
    document_chunk_overlap: int = Field(
        150, ge=0, le=5_000, description="Characters a chunk repeats from the previous one."
    )
    extraction_timeout_seconds: float = Field(
        60.0, ge=1.0, le=3600.0, description="Longest one document's text extraction may run."
    )
    extraction_memory_mb: int = Field(
        512,
        ge=128,
        le=65_536,
        # Under about 96 MiB even a one-page PDF fails: the child needs room to import its readers.
        description="Address-space cap of the extraction subprocess (at least 128: the readers must load).",
    )

    # --- Real time -----------------------------------------------------------------
    realtime_backend: Literal["memory", "redis", "postgres"] | None = Field(
        None,
        description="How WebSocket messages reach every replica. Default: redis with KEEL_REDIS_URL, "
        "else postgres (LISTEN/NOTIFY) on PostgreSQL, else memory (one process).",
    )
    realtime_pg_channel: str = Field(
        "keel_realtime",
        min_length=1,
        max_length=63,
        pattern=r"^[A-Za-z0-9_]+$",
        description="The postgres backend's NOTIFY channel (replicas sharing a database share it).",
    )
    realtime_ticket_seconds: int = Field(
        30, ge=1, le=300, description="How long a WebSocket ticket (POST /auth/ws-ticket) can be used."
    )
    realtime_status_seconds: float = Field(
        15.0, ge=0.05, le=3600.0, description="How often system_status is sent to its subscribers."
    )
    realtime_send_queue: int = Field(
        100,
        ge=1,
        le=100_000,
        description="Messages queued per WebSocket; a client that falls further behind is closed (1013).",
    )
    realtime_max_frame_bytes: int = Field(
        65_536,
        ge=128,
        le=16 * 1024 * 1024,
        description="Largest client frame; larger closes the socket (1009).",
    )
    realtime_max_messages_per_second: int = Field(
        20, ge=1, le=10_000, description="Client messages per second; more closes the socket (1008)."
    )
    realtime_reconnect_max_seconds: float = Field(
        30.0, ge=0.1, le=600.0, description="Longest pause between the listener's reconnection attempts."
    )
    realtime_ping_seconds: float = Field(
        15.0, ge=0.05, le=300.0, description="How often the events stream sends a keep-alive comment."
    )
    realtime_recheck_seconds: float = Field(
        60.0,
        ge=0.05,
        le=3600.0,
        description="How often an open WebSocket or events stream checks its credentials again.",
    )
    realtime_max_streams: int = Field(
        1000, ge=1, le=100_000, description="Open events streams per process; more are refused with 503."
    )

    # --- Observability -------------------------------------------------------------
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = "INFO"
    log_format: Literal["json", "console"] | None = Field(
        None, description="Default: json in production, console otherwise."
    )
    metrics_token: SecretStr | None = Field(
        None, description="When set, GET /metrics requires `Authorization: Bearer <token>`."
    )
    request_metrics: bool = Field(
        True,
        description=(
            "Record every request in the Prometheus metrics and the request statistics "
            "(GET /metrics/summary, latency and error alerts). Off only to measure what it costs."
        ),
    )
    metrics_flush_seconds: float = Field(
        10.0,
        ge=0.5,
        le=60.0,
        description="How often each process writes its request statistics (GET /metrics/summary).",
    )
    sentry_dsn: SecretStr | None = Field(
        None,
        description="When set, unhandled errors are reported to this Sentry DSN (needs the `sentry` extra).",
    )
    sentry_environment: str | None = Field(
        None, description="The environment Sentry files reports under. Default: KEEL_ENV."
    )
    sentry_traces_sample_rate: float = Field(
        0.0,
        ge=0.0,
        le=1.0,
        description="Share of requests Sentry also traces for performance (0: errors only).",
    )
    stats_backend: Literal["database", "redis"] | None = Field(
        None,
        description="Where the per-minute request statistics go (hours are always in the database). "
        "Default: redis with KEEL_REDIS_URL (one HINCRBY batch per flush), else database.",
    )

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper_level(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value

    @field_validator("cors_origins", "trusted_hosts", "trusted_proxies", "admin_email_domains", mode="before")
    @classmethod
    def _lists(cls, value: Any) -> Any:
        return _split_list(value)

    @field_validator("trusted_proxies")
    @classmethod
    def _cidrs(cls, value: list[str]) -> list[str]:
        for item in value:
            try:
                ipaddress.ip_network(item, strict=False)
            except ValueError as exc:
                raise ValueError(f"{item!r} is not an IP address or CIDR") from exc
        return value

    @field_validator("database_url")
    @classmethod
    def _database_url(cls, value: str) -> str:
        if not value.startswith(("sqlite+aiosqlite://", "postgresql+asyncpg://")):
            raise ValueError("must start with sqlite+aiosqlite:// or postgresql+asyncpg://")
        return value

    @field_validator("redis_url")
    @classmethod
    def _redis_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("must start with redis://, rediss:// or unix://")
        return value or None

    @field_validator("admin_email_domains")
    @classmethod
    def _domains(cls, value: list[str]) -> list[str]:
        return [domain.lower().lstrip("@") for domain in value]

    @model_validator(mode="after")
    def _documents(self) -> Settings:
        if self.document_chunk_overlap >= self.document_chunk_size:
            raise ValueError("KEEL_DOCUMENT_CHUNK_OVERLAP must be below KEEL_DOCUMENT_CHUNK_SIZE")
        if self.storage_backend == "s3" and not self.s3_bucket:
            raise ValueError("KEEL_STORAGE_BACKEND=s3 needs KEEL_S3_BUCKET")
        return self

    @model_validator(mode="after")
    def _realtime_backend(self) -> Settings:
        if self.realtime_backend == "redis" and self.redis_url is None:
            raise ValueError("KEEL_REALTIME_BACKEND=redis needs KEEL_REDIS_URL")
        if self.realtime_backend == "postgres" and self.is_sqlite:
            raise ValueError("KEEL_REALTIME_BACKEND=postgres needs a PostgreSQL KEEL_DATABASE_URL")
        return self

    @model_validator(mode="after")
    def _stats_backend(self) -> Settings:
        if self.stats_backend == "redis" and self.redis_url is None:
            raise ValueError("KEEL_STATS_BACKEND=redis needs KEEL_REDIS_URL")
        return self

    @model_validator(mode="after")
    def _admin_bootstrap_pair(self) -> Settings:
        if (self.admin_email is None) != (self.admin_password is None):
            raise ValueError("KEEL_ADMIN_EMAIL and KEEL_ADMIN_PASSWORD must be set together")
        return self

    @model_validator(mode="after")
    def _secret_key_policy(self) -> Settings:
        if self.env is not Environment.PRODUCTION or self.secret_key is None:
            if self.env is Environment.PRODUCTION:
                raise ValueError("KEEL_SECRET_KEY is required in production")
            return self
        secret = self.secret_key.get_secret_value()
        if len(secret) < MIN_SECRET_LENGTH:
            raise ValueError(f"KEEL_SECRET_KEY must be at least {MIN_SECRET_LENGTH} characters in production")
        if _is_placeholder(secret):
            raise ValueError(
                "KEEL_SECRET_KEY is a known placeholder; generate one "
                "with `python -c 'import secrets; print(secrets.token_urlsafe(48))'`"
            )
        return self

    # --- Derived -----------------------------------------------------------------
    @property
    def is_production(self) -> bool:
        return self.env is Environment.PRODUCTION

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    @property
    def should_auto_migrate(self) -> bool:
        return self.is_sqlite if self.auto_migrate is None else self.auto_migrate

    @property
    def runs_worker_in_process(self) -> bool:
        return self.is_sqlite if self.worker_in_process is None else self.worker_in_process

    @property
    def effective_realtime_backend(self) -> str:
        if self.realtime_backend is not None:
            return self.realtime_backend
        if self.redis_url is not None:
            return "redis"
        return "memory" if self.is_sqlite else "postgres"

    @property
    def effective_stats_backend(self) -> str:
        if self.stats_backend is not None:
            return self.stats_backend
        return "redis" if self.redis_url is not None else "database"

    @property
    def caches_reads(self) -> bool:
        if self.cache_enabled is not None:
            return self.cache_enabled
        return self.redis_url is not None or self.is_sqlite

    @property
    def allows_http_webhooks(self) -> bool:
        return not self.is_production if self.webhooks_allow_http is None else self.webhooks_allow_http

    @property
    def effective_log_format(self) -> str:
        if self.log_format is not None:
            return self.log_format
        return "json" if self.is_production else "console"

    @cached_property
    def trusted_proxy_networks(self) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
        return tuple(ipaddress.ip_network(item, strict=False) for item in self.trusted_proxies)

    @cached_property
    def signing_key(self) -> str:
        """The secret key, generating and persisting one outside production."""
        if self.secret_key is not None:
            return self.secret_key.get_secret_value()
        if self.env is Environment.TEST:
            return secrets.token_urlsafe(48)
        return _load_or_create_secret(self.secret_key_file)


def _load_or_create_secret(path: Path) -> str:
    if path.exists():
        existing = path.read_text(encoding="utf-8").strip()
        if len(existing) >= MIN_SECRET_LENGTH:
            return existing
    path.parent.mkdir(parents=True, exist_ok=True)
    secret = secrets.token_urlsafe(48)
    # Create with 0600 from the start so the key is never world-readable.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(secret + "\n")
    return secret


class SettingsError(Exception):
    """Raised with a message naming the offending ``KEEL_*`` variable(s)."""


def describe_validation_error(error: ValidationError) -> str:
    lines = []
    for item in error.errors():
        loc = [str(part) for part in item["loc"]]
        name = f"{ENV_PREFIX}{loc[0].upper()}" if loc else "settings"
        message = item["msg"].removeprefix("Value error, ")
        if loc:
            lines.append(f"{name}: {message}")
        else:
            lines.append(message)
    return "invalid configuration:\n  " + "\n  ".join(lines)


def load_settings(**overrides: Any) -> Settings:
    """Read settings from the environment, raising :class:`SettingsError` when invalid."""
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        raise SettingsError(describe_validation_error(exc)) from None
