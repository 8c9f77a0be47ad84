"""WhatsApp's 24-hour customer service window, as a pure rule."""

from __future__ import annotations

from datetime import datetime, timedelta

WINDOW = timedelta(hours=24)
WINDOW_CLOSED = "WhatsApp 24-hour customer service window closed: only approved templates may be sent"


class WhatsAppWindowError(ValueError):
    """A free-form WhatsApp message outside the customer service window."""


def _aware(value: datetime, name: str) -> None:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware")


def window_open(last_inbound_at: datetime | None, now: datetime) -> bool:
    """True while fewer than 24 hours have passed since the customer's last message."""
    _aware(now, "now")
    if last_inbound_at is None:
        return False
    _aware(last_inbound_at, "last_inbound_at")
    return now - last_inbound_at < WINDOW


def check_whatsapp_send(last_inbound_at: datetime | None, now: datetime, is_template: bool) -> None:
    """Raise WhatsAppWindowError when a free-form message would be sent outside the window."""
    if not is_template and not window_open(last_inbound_at, now):
        raise WhatsAppWindowError(WINDOW_CLOSED)
