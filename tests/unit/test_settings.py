"""Settings: a bad HUB_* value fails at start and names the variable."""

from __future__ import annotations

import pytest

from hub.settings import SettingsError, load_settings


def test_defaults_use_embedded_sqlite_and_in_process_jobs(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HUB_DATABASE_URL", raising=False)
    monkeypatch.delenv("HUB_REDIS_URL", raising=False)
    settings = load_settings()
    assert settings.database_url.startswith("sqlite+aiosqlite:///") and settings.database_url.endswith("var/hub.db")
    assert settings.redis_url is None and settings.default_region == "IT"


def test_plain_postgres_url_gets_the_async_driver() -> None:
    assert load_settings(database_url="postgresql://u@h/db").database_url == "postgresql+asyncpg://u@h/db"


@pytest.mark.parametrize(("var", "value"), [("HUB_DEFAULT_REGION", "XX"), ("HUB_DATABASE_URL", "mysql://x/y"),
                                            ("HUB_THREAD_WINDOW_DAYS", "-3"), ("HUB_SMTP_TLS", "sometimes")])
def test_bad_values_name_the_variable(monkeypatch: pytest.MonkeyPatch, var: str, value: str) -> None:
    monkeypatch.setenv(var, value)
    with pytest.raises(SettingsError, match=var):
        load_settings()
