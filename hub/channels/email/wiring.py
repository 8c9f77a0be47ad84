"""Start-up hook: the SMTP sender for `email`, and the IMAP pollers as a background task.

`runtime.extras["background"]` is a list of `start(runtime, stop_event)` coroutine functions
that `hub serve` runs as tasks for its lifetime; `runtime.extras["closers"]` are awaited on close.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from hub import runtime as hub_runtime
from hub.channels.email.inbound import ingest_raw
from hub.channels.email.poller import mailboxes_from_settings, run_mailboxes
from hub.channels.email.smtp import SmtpConfig, SmtpSender
from hub.core.envelopes import Channel
from hub.core.replies import SEND_MESSAGE
from hub.settings import Settings

SENDER_KEY = "email.sender"
MAILBOXES_KEY = "email.mailboxes"
BACKGROUND_KEY = "background"
CLOSERS_KEY = "closers"  # coroutine functions hub.runtime.close() awaits (the SMTP pool's QUITs)

Background = Callable[[hub_runtime.Runtime, asyncio.Event], Awaitable[None]]


def smtp_config(settings: Settings, **overrides: Any) -> SmtpConfig:
    """The sender's configuration from HUB_SMTP_* settings."""
    assert settings.smtp_host, "HUB_SMTP_HOST is needed to send mail"
    values: dict[str, Any] = {
        "host": settings.smtp_host, "port": settings.smtp_port, "username": settings.smtp_username,
        "password": settings.smtp_password, "tls": settings.smtp_tls, "timeout": settings.smtp_timeout_seconds,
        "pool_size": settings.smtp_pool_size, "validate_certs": settings.smtp_validate_certs,
        "mail_domain": settings.mail_domain,
    }
    return SmtpConfig(**{**values, **overrides})


def _replayer(runtime: hub_runtime.Runtime) -> Callable[[bytes, str | None], Awaitable[str]]:
    """`hub quarantine replay` for mail: the raw bytes go through the same ingest as from IMAP."""

    async def replay(raw: bytes, source: str | None) -> str:
        mailbox = runtime.settings.imap_address or runtime.settings.smtp_from
        result = await ingest_raw(runtime, raw, mailbox=mailbox, source=source or "quarantine")
        return result.outcome.value

    return replay


@hub_runtime.plugin
def wire_email(runtime: hub_runtime.Runtime) -> None:
    """Register the SMTP sender when HUB_SMTP_HOST is set, and the pollers when mailboxes are configured."""
    settings = runtime.settings
    if settings.smtp_host:
        sender = SmtpSender(smtp_config(settings))
        runtime.jobs.senders = {**runtime.jobs.senders, Channel.EMAIL.value: sender}
        # Email sends are claimed, loaded and recorded in batches, sent over the pooled connections.
        runtime.jobs.batch_channels.setdefault(SEND_MESSAGE, set()).add(Channel.EMAIL.value)
        runtime.extras[SENDER_KEY] = sender
        runtime.extras.setdefault(CLOSERS_KEY, []).append(sender.aclose)
    runtime.extras.setdefault(hub_runtime.REPLAYERS, {})[Channel.EMAIL.value] = _replayer(runtime)
    mailboxes = mailboxes_from_settings(settings)  # fails at start, naming the bad variable
    runtime.extras[MAILBOXES_KEY] = mailboxes
    if mailboxes:
        runtime.extras.setdefault(BACKGROUND_KEY, []).append(run_mailboxes)
