"""create_app(settings): the aiohttp application, one cleanup_ctx per resource."""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web

from hub import runtime as hub_runtime
from hub.keys import BROKER, PRESENCE, RUNTIME, SETTINGS
from hub.settings import Settings
from hub.web import search
from hub.web.auth import authenticate
from hub.web.errors import json_errors
from hub.web.hardening import limiter_ctx, make_hardening
from hub.web.metrics import observe_requests
from hub.web.presence import make_presence
from hub.web.priority import webhooks_first
from hub.web.routes import setup_routes
from hub.web.security import security_headers
from hub.web.sse import EventBroker
from hub.web.templating import setup_templates

MAX_BODY = 10 * 1024 * 1024


async def runtime_ctx(app: web.Application) -> AsyncIterator[None]:
    """Database (migrated), queue and job context; the in-process dispatcher runs while the app does."""
    async with hub_runtime.running(app[SETTINGS], background=app[SETTINGS].redis_url is None) as runtime:
        app[RUNTIME] = runtime
        yield


async def live_ctx(app: web.Application) -> AsyncIterator[None]:
    """The search index, the event poller behind SSE, and presence (Redis-backed when configured)."""
    runtime = app[RUNTIME]
    await search.ensure_index(runtime.engine)
    app[BROKER] = EventBroker(runtime.factory)
    app[PRESENCE] = make_presence(runtime.settings.redis_url)
    await app[PRESENCE].start()
    yield
    await app[BROKER].close()
    await app[PRESENCE].close()


async def _end_streams(app: web.Application) -> None:
    # Open SSE responses would otherwise hold the shutdown until its timeout.
    if BROKER in app:
        await app[BROKER].close()


def create_app(settings: Settings) -> web.Application:
    """Build the hub's web application for these settings."""
    app = web.Application(middlewares=[observe_requests, security_headers, json_errors, make_hardening(settings),
                                       authenticate, webhooks_first], client_max_size=MAX_BODY)
    app[SETTINGS] = settings
    app.cleanup_ctx.append(runtime_ctx)
    app.cleanup_ctx.append(live_ctx)
    app.cleanup_ctx.append(limiter_ctx)
    app.on_shutdown.append(_end_streams)
    setup_templates(app)
    setup_routes(app)
    return app
