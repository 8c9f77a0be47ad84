"""Settings from HUB_* environment variables; a bad value fails at start naming the variable."""

from __future__ import annotations

from pathlib import Path

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
