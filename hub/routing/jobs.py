"""Outbox handlers for rule side effects: signed webhooks and notification emails."""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

import aiohttp

from hub.core.envelopes import Address, AddressKind, Channel, Outbound
from hub.core.jobs import Handler, Job, JobContext, PermanentError, TransientError
from hub.settings import Settings

SIGNATURE_HEADER = "X-Hub-Signature-256"
_RETRY_STATUSES = frozenset({408, 425, 429})


def signature(secret: str, body: bytes) -> str:
    """The header value receivers check: `sha256=` and the hex HMAC of the exact body."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def webhook_job(settings: Settings) -> Handler:
    """POST the stored body; 2xx is done, 408/429/5xx and network errors retry, other 4xx fail."""

    async def run(ctx: JobContext, item: Job) -> dict[str, Any]:
        body = str(item.payload["body"]).encode()
        headers = {"Content-Type": "application/json", SIGNATURE_HEADER: signature(settings.secret_key, body),
                   "X-Hub-Delivery": str(item.id), "User-Agent": "hub-webhook/1"}
        timeout = aiohttp.ClientTimeout(total=settings.webhook_timeout_seconds)
        try:
            async with aiohttp.ClientSession(timeout=timeout) as http, \
                    http.post(str(item.payload["url"]), data=body, headers=headers, allow_redirects=False) as resp:
                status = resp.status
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise TransientError(f"webhook unreachable: {type(exc).__name__}") from exc
        if 200 <= status < 300:
            return {"status": status}
        if status >= 500 or status in _RETRY_STATUSES:
            raise TransientError(f"webhook answered {status}")
        raise PermanentError(f"webhook answered {status}")

    return run


def notify_email_job(settings: Settings) -> Handler:
    """Send a notification through the email sender, one recipient at a time."""

    async def run(ctx: JobContext, item: Job) -> dict[str, Any]:
        sender = ctx.senders.get(Channel.EMAIL.value)
        if sender is None:
            raise PermanentError("no email sender is configured (HUB_SMTP_HOST)")
        sent = []
        for to in item.payload["to"]:
            result = await sender.send(Outbound(
                channel=Channel.EMAIL, message_id=0, sender=Address(AddressKind.EMAIL, settings.smtp_from),
                recipient=Address(AddressKind.EMAIL, to), body_text=str(item.payload["body"]),
                subject=str(item.payload["subject"]), meta={"notification": item.id},
            ))
            if not result.ok:
                raise TransientError(f"notification to a recipient failed: {result.detail}")
            sent.append(to)
        return {"sent": len(sent)}

    return run
