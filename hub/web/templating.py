"""Jinja2 set-up for the web inbox: autoescaping everywhere, and a few display filters."""

from __future__ import annotations

from datetime import datetime

import aiohttp_jinja2
import jinja2
from aiohttp import web

from hub.store.types import utcnow

# Plain Unicode symbols: colour emoji fonts are often missing on reception PCs (and in headless chromium).
CHANNEL_ICONS = {"email": "✉", "sms": "✆", "whatsapp": "✆", "phone": "☎"}


def clock(value: datetime | None) -> str:
    """HH:MM today, else the day and month (times shown in UTC until agents have a timezone)."""
    if value is None:
        return ""
    now = utcnow()
    if value.date() == now.date():
        return value.strftime("%H:%M")
    return value.strftime("%d/%m %H:%M") if value.year == now.year else value.strftime("%d/%m/%Y")


def duration(seconds: int | None) -> str:
    seconds = int(seconds or 0)
    return f"{seconds // 60}:{seconds % 60:02d}"


def icon(channel: str | None) -> str:
    return CHANNEL_ICONS.get(channel or "", "•")


def iso(value: datetime | str | None) -> str:
    if isinstance(value, datetime):
        return value.isoformat()
    return value or ""


def setup_templates(app: web.Application) -> None:
    """Templates from hub/web/templates, autoescaped: agents and customers never inject markup."""
    env = aiohttp_jinja2.setup(app, loader=jinja2.PackageLoader("hub.web", "templates"),
                               autoescape=jinja2.select_autoescape(default=True, default_for_string=True),
                               undefined=jinja2.StrictUndefined)
    env.filters.update(clock=clock, duration=duration, icon=icon, iso=iso)
