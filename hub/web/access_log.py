"""aiohttp's access log, minus the lines of answered webhooks.

Each kept webhook form logs its ingest job's line under the request's trace id, and /metrics
counts every webhook by route and status; a burst of Twilio callbacks would otherwise pay for
one JSON line each (a fifth of a webhook's CPU). Refused webhooks (403 signature, 413, 400)
and every other request are still logged.
"""

from __future__ import annotations

from aiohttp import web
from aiohttp.web_log import AccessLogger

from hub.web.priority import WEBHOOK_PREFIX


class AccessLog(AccessLogger):
    """The access log `hub serve` uses (web.run_app's access_log_class)."""

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        if response.status < 400 and request.path.startswith(WEBHOOK_PREFIX):
            return
        super().log(request, response, time)
