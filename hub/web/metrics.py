"""GET /metrics, and the outermost middleware: trace id per request, timings, webhook rejects."""

from __future__ import annotations

import hmac
import time

from aiohttp import web

from hub.keys import RUNTIME, SETTINGS
from hub.ops import metrics, status
from hub.ops.context import clean_trace_id, traced
from hub.web.errors import Handler

TRACE_HEADER = "X-Request-ID"
_REASONS = {400: "bad_form", 401: "unauthorized", 403: "signature", 413: "too_large", 429: "rate_limited"}


def _route_name(request: web.Request) -> str:
    route = request.match_info.route
    if route.name:
        return route.name
    resource = route.resource
    return resource.canonical if resource is not None else "unmatched"


def _record(request: web.Request, status_code: int, seconds: float) -> None:
    route = _route_name(request)
    metrics.HTTP_SECONDS.labels(route, request.method, metrics.status_class(status_code)).observe(seconds)
    if request.path.startswith("/webhooks/") and status_code >= 400:
        metrics.WEBHOOK_REJECTS.labels(route, _REASONS.get(status_code, f"http_{status_code}")).inc()


@web.middleware
async def observe_requests(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Run the request under a trace id (the caller's X-Request-ID when sane), echo it, time it."""
    with traced(clean_trace_id(request.headers.get(TRACE_HEADER)), time.time()) as trace_id:
        started = time.perf_counter()
        try:
            response = await handler(request)
        except web.HTTPException as exc:
            exc.headers[TRACE_HEADER] = trace_id
            _record(request, exc.status, time.perf_counter() - started)
            raise
        except Exception:  # recorded as a 500 and re-raised for aiohttp to log
            _record(request, 500, time.perf_counter() - started)
            raise
        if not response.prepared:  # a stream (SSE) has sent its headers already
            response.headers[TRACE_HEADER] = trace_id
        _record(request, response.status, time.perf_counter() - started)
        return response


async def metrics_view(request: web.Request) -> web.Response:
    """Prometheus text format; shared-state gauges are read from the database on each scrape."""
    wanted = request.app[SETTINGS].metrics_token
    if wanted:
        offered = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
        if not hmac.compare_digest(offered.encode(), wanted.encode()):
            raise web.HTTPUnauthorized(text="metrics need the HUB_METRICS_TOKEN bearer token")
    metrics.apply_snapshot(await status.snapshot(request.app[RUNTIME]))
    return web.Response(body=metrics.exposition(), headers={"Content-Type": metrics.CONTENT_TYPE})
