"""Webhooks first: in-process jobs hold back while a provider waits for a webhook's answer.

Twilio gives a webhook 15 s and then retries it, so the answer is the work someone is waiting
for; the jobs it queued (ingest, sends) may lag behind it. With Redis the jobs run in other
processes and there is nothing to hold back.
"""

from __future__ import annotations

from aiohttp import web

from hub.keys import RUNTIME
from hub.runtime import inprocess
from hub.web.errors import Handler

WEBHOOK_PREFIX = "/webhooks/"


@web.middleware
async def webhooks_first(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Mark a webhook request as foreground work for the in-process dispatcher while it runs."""
    queue = inprocess(request.app[RUNTIME]) if request.path.startswith(WEBHOOK_PREFIX) else None
    if queue is None:
        return await handler(request)
    with queue.foreground():
        return await handler(request)
