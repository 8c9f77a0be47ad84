"""Typed aiohttp application and request keys (string keys warn since aiohttp 3.9)."""

from __future__ import annotations

from aiohttp import web

from hub.runtime import Runtime
from hub.settings import Settings
from hub.store.models import Agent
from hub.web.presence import Presence
from hub.web.scope import Scope
from hub.web.sse import EventBroker

SETTINGS = web.AppKey("settings", Settings)
RUNTIME = web.AppKey("runtime", Runtime)
AGENT = web.RequestKey("agent", Agent)
SCOPE = web.RequestKey("scope", Scope)
VIA_COOKIE = web.RequestKey("via_cookie", bool)
BROKER = web.AppKey("event_broker", EventBroker)
PRESENCE = web.AppKey("presence", Presence)
