"""POST the event as JSON to a URL, signed with HMAC-SHA256, retried by the outbox."""

from __future__ import annotations

import json
from urllib.parse import urlsplit

from pydantic import Field, field_validator

from hub.core import outbox
from hub.routing.actions.base import ActionContext, Params, action

KIND = "webhook"


class Webhook(Params):
    url: str = Field(min_length=8, max_length=2000)

    @field_validator("url")
    @classmethod
    def _http(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("the URL must be http:// or https:// with a host")
        return value


@action("webhook", "POST the event as signed JSON to a URL (retried until it answers 2xx)", Webhook)
async def run(ctx: ActionContext, params: Webhook) -> None:
    event = ctx.event
    body = {
        "v": 1, "event": event.type, "customer_id": event.customer_id, "conversation_id": event.conversation_id,
        "message_id": event.message_id, "data": event.data, "rule": ctx.actor, "at": ctx.now.isoformat(),
    }
    # The exact bytes are fixed now, so the signature the job computes covers what we decided.
    payload = json.dumps(body, sort_keys=True, default=str, separators=(",", ":"))
    await outbox.add(ctx.session, KIND, {"v": 1, "url": params.url, "body": payload})
