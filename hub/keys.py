"""Typed aiohttp application and request keys (string keys warn since aiohttp 3.9)."""

from __future__ import annotations

from aiohttp import web

from hub.runtime import Runtime
from hub.settings import Settings
from hub.store.models import Agent

SETTINGS = web.AppKey("settings", Settings)
RUNTIME = web.AppKey("runtime", Runtime)
AGENT = web.RequestKey("agent", Agent)
