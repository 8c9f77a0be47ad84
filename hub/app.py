"""create_app(settings): the aiohttp application, one cleanup_ctx per resource."""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web

from hub import runtime as hub_runtime
from hub.keys import RUNTIME, SETTINGS
from hub.settings import Settings
from hub.web.auth import authenticate
from hub.web.errors import json_errors
from hub.web.routes import setup_routes

MAX_BODY = 10 * 1024 * 1024


async def runtime_ctx(app: web.Application) -> AsyncIterator[None]:
    """Database (migrated), queue and job context; the in-process dispatcher runs while the app does."""
    async with hub_runtime.running(app[SETTINGS]) as runtime:
        app[RUNTIME] = runtime
        yield


def create_app(settings: Settings) -> web.Application:
    """Build the hub's web application for these settings."""
    app = web.Application(middlewares=[json_errors, authenticate], client_max_size=MAX_BODY)
    app[SETTINGS] = settings
    app.cleanup_ctx.append(runtime_ctx)
    setup_routes(app)
    return app
