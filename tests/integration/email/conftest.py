"""Fixtures of the email integration tests: dovecot, an aiosmtpd sink, and settings pointing at them."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from hub import runtime as hub_runtime
from hub.channels.email.mailbox import MailboxConfig
from hub.channels.email.poller import run_mailbox
from hub.settings import Settings, load_settings
from tests.support.dovecot import PASSWORD, USER, Dovecot
from tests.support.smtp_sink import SmtpSink

HOTEL = "reception@hotel.test"


@pytest.fixture
def dovecot() -> Iterator[Dovecot]:
    server = Dovecot()
    server.start()
    yield server
    server.cleanup()


@pytest.fixture
def smtp() -> Iterator[SmtpSink]:
    with SmtpSink() as sink:
        yield sink


@pytest.fixture
def settings(database_url: str, tmp_path: Path, smtp: SmtpSink) -> Settings:
    return load_settings(database_url=database_url, data_dir=tmp_path / "data", redis_url=None,
                         mail_domain="hub.test", smtp_from=HOTEL, smtp_host="127.0.0.1", smtp_port=smtp.port)


def mailbox(server: Dovecot, **overrides: object) -> MailboxConfig:
    """The hub's view of the test mailbox, with short timeouts and backoff for tests."""
    values: dict[str, object] = {
        "host": "127.0.0.1", "port": server.port, "username": USER, "password": PASSWORD, "address": HOTEL,
        "timeout": 5.0, "poll_seconds": 0.5, "backoff_min": 0.1, "backoff_max": 0.5, **overrides,
    }
    return MailboxConfig(**values)  # type: ignore[arg-type]


@contextlib.asynccontextmanager
async def polling(rt: hub_runtime.Runtime, config: MailboxConfig) -> AsyncIterator[asyncio.Task[None]]:
    """Run the poller of one mailbox for the block's duration; it must not have crashed at the end."""
    stop = asyncio.Event()
    task = asyncio.create_task(run_mailbox(rt, config, stop))
    try:
        yield task
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)
