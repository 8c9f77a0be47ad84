"""Settings from HUB_* environment variables; a bad value fails at start naming the variable."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import phonenumbers
from pydantic import Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class SettingsError(RuntimeError):
    """Raised when an HUB_* variable holds a value the hub cannot use."""


def default_database_url() -> str:
    return f"sqlite+aiosqlite:///{Path('var/hub.db').absolute()}"


class Settings(BaseSettings):
    """Every knob of the hub; read once at start and passed down, never read from os.environ later."""

    model_config = SettingsConfigDict(env_prefix="HUB_", extra="ignore", frozen=True)

    database_url: str = Field(default_factory=default_database_url)
    redis_url: str | None = None
    secret_key: str = "dev-secret-change-me"
    default_region: str = "IT"
    public_url: str = "http://127.0.0.1:8080"
    mail_domain: str = "hub.localhost"
    data_dir: Path = Path("var")
    thread_window_days: int = Field(default=30, ge=0)
    outbox_stuck_seconds: int = Field(default=300, ge=1)
    outbox_max_attempts: int = Field(default=8, ge=1)
    inprocess_workers: int = Field(default=4, ge=1, le=64)
    sql_echo: bool = False

    smtp_host: str | None = None
    smtp_port: int = 25
    smtp_username: str | None = None
    smtp_password: str | None = None
    smtp_tls: str = Field(default="none", pattern="^(none|starttls|tls)$")
    smtp_from: str = "reception@hub.localhost"

    imap_host: str | None = None
    imap_port: int = 143
    imap_username: str | None = None
    imap_password: str | None = None
    imap_tls: str = Field(default="none", pattern="^(none|starttls|tls)$")
    imap_mailbox: str = "INBOX"
    # Email channel (hub/channels/email): more mailboxes as a JSON list of objects with the keys
    # of the single-mailbox settings above without the imap_ prefix (host, port, username, ...).
    imap_mailboxes: list[dict[str, Any]] = Field(default_factory=list)
    imap_address: str | None = None  # the address the mailbox receives at (default: smtp_from)
    imap_processed_folder: str | None = None
    imap_idle: bool = True
    imap_poll_seconds: float = Field(default=60.0, gt=0)
    imap_timeout_seconds: float = Field(default=30.0, gt=0)
    smtp_pool_size: int = Field(default=4, ge=1, le=100)
    smtp_timeout_seconds: float = Field(default=30.0, gt=0)
    smtp_validate_certs: bool = True
    email_max_attachment_bytes: int = Field(default=25 * 1024 * 1024, ge=1024)
    auto_reply_cap_per_hour: int = Field(default=3, ge=0)

    twilio_account_sid: str | None = None
    twilio_auth_token: str | None = None
    twilio_base_url: str | None = None
    twilio_from: str | None = None
    twilio_webhook_max_bytes: int = Field(default=64 * 1024, ge=1024)
    sms_help_reply: str = "Reception: write here any time. Reply STOP to unsubscribe, START to resubscribe."
    sms_rates: dict[str, float] = Field(default_factory=dict)  # msg/s per sender kind, e.g. {"long_code": 2}
    sms_burst: float = Field(default=1.0, ge=1.0)
    voice_forward_to: str | None = None
    voice_greeting: str | None = None

    # Routing: rules, SLA and surveys (hub/routing).
    rules_max_depth: int = Field(default=4, ge=1, le=32)
    rules_cache_seconds: float = Field(default=5.0, ge=0)
    auto_reply_period_hours: float = Field(default=24.0, ge=0)
    business_hours: str = "mon-fri 09:00-18:00"
    business_timezone: str = "Europe/Rome"
    # Minutes of business time per priority: [first response, resolution].
    sla_targets: dict[str, list[int]] = Field(default_factory=lambda: {
        "urgent": [15, 240], "high": [60, 480], "normal": [240, 1440], "low": [480, 2880]})
    webhook_timeout_seconds: float = Field(default=10.0, gt=0)

    # Campaigns (hub/campaigns): send rate per channel in msg/s shared by all workers, batch sizes,
    # and how long a `sending` row may stay claimed before a lost worker's rows are re-queued.
    campaign_rates: dict[str, float] = Field(default_factory=dict)
    campaign_burst: float = Field(default=10.0, ge=1.0)
    campaign_batch_size: int = Field(default=1000, ge=1, le=10000)
    # 50 rows per claim/record: per-chunk statements cost less than a tenth of a message's work,
    # and a killed worker can have sent at most parallel_chunks x chunk_size rows it never recorded.
    campaign_chunk_size: int = Field(default=50, ge=1, le=1000)
    campaign_parallel_chunks: int = Field(default=3, ge=1, le=100)
    campaign_lease_seconds: float = Field(default=120.0, gt=0)
    campaign_stale_seconds: float = Field(default=60.0, gt=0)
    campaign_tick_seconds: int = Field(default=5, ge=1, le=60)

    # Operations (hub/ops): logs, metrics, privacy retention, login throttling, request limits.
    log_format: str = Field(default="json", pattern="^(json|text)$")
    log_level: str = Field(default="INFO", pattern="^(?i)(debug|info|warning|error)$")
    metrics_token: str | None = None  # when set, /metrics wants `Authorization: Bearer <it>`
    metrics_port: int | None = Field(default=None, ge=1, le=65535)  # `hub worker` serves /metrics here
    retention_raw_days: int | None = Field(default=None, ge=1)  # raw mail/forms older than this go
    retention_closed_years: int | None = Field(default=None, ge=1)  # resolved conversations older than this go
    login_max_failures: int = Field(default=5, ge=1)  # per account within login_window_seconds
    login_ip_max_failures: int = Field(default=20, ge=1)  # per client IP within login_window_seconds
    login_window_seconds: int = Field(default=900, ge=1)
    login_lockout_seconds: int = Field(default=900, ge=1)
    session_ttl_hours: float = Field(default=12.0, gt=0)  # login tokens expire; API tokens do not
    public_body_max_bytes: int = Field(default=256 * 1024, ge=1024)  # webhooks, login, public forms
    trusted_proxies: int = Field(default=0, ge=0, le=5)  # X-Forwarded-For hops to trust for the client IP

    @field_validator("default_region")
    @classmethod
    def _known_region(cls, value: str) -> str:
        region = value.upper()
        if region not in phonenumbers.SUPPORTED_REGIONS:
            raise ValueError(f"unknown region {value!r}; use an ISO 3166 code such as IT or US")
        return region

    @field_validator("database_url")
    @classmethod
    def _async_driver(cls, value: str) -> str:
        if value.startswith("postgresql://") or value.startswith("postgres://"):
            return "postgresql+asyncpg://" + value.split("://", 1)[1]
        if value.startswith("sqlite://") and not value.startswith("sqlite+aiosqlite"):
            return "sqlite+aiosqlite://" + value.split("://", 1)[1]
        if not value.startswith(("sqlite+aiosqlite://", "postgresql+asyncpg://")):
            raise ValueError("use a sqlite:///path or postgresql://user@host/db URL")
        return value

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")


def load_settings(**overrides: object) -> Settings:
    """Read settings from the environment; turn pydantic's errors into one naming HUB_ variables."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        problems = "; ".join(
            f"HUB_{'_'.join(str(p) for p in err['loc']).upper()}: {err['msg']}" for err in exc.errors()
        )
        raise SettingsError(f"bad configuration: {problems}") from None
