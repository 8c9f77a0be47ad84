"""Reply-time checks for SMS and WhatsApp, so an agent hears "too long" before anything is queued.

They run as a `message.sent` event handler: `create_reply` publishes it inside the reply's
transaction and the reply view turns a ReplyError into a 400 naming the field, rolling it all back.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col, select

from hub.channels.sms.segments import SmsBodyError, check_body
from hub.channels.sms.whatsapp import WINDOW_CLOSED, window_open
from hub.core.envelopes import Channel
from hub.core.events import MESSAGE_SENT, Event, handles
from hub.core.replies import ReplyError
from hub.store.models import Message
from hub.store.types import utcnow

CHANNELS = frozenset({Channel.SMS.value, Channel.WHATSAPP.value})


async def _last_whatsapp_inbound(session: AsyncSession, customer_id: int) -> datetime | None:
    found = await session.execute(
        select(func.max(col(Message.created_at))).where(
            col(Message.customer_id) == customer_id, col(Message.direction) == "in",
            col(Message.channel) == Channel.WHATSAPP.value,
        )
    )
    return found.scalar_one_or_none()


@handles(MESSAGE_SENT)
async def check_reply(session: AsyncSession, event: Event) -> None:
    """Refuse an agent's SMS/WhatsApp reply Twilio or WhatsApp would refuse; store its segment count."""
    if event.type != MESSAGE_SENT or event.message_id is None or "agent_id" not in event.data:
        return
    message = await session.get(Message, event.message_id)
    if message is None or message.direction != "out" or message.channel not in CHANNELS:
        return
    if message.headers.get("meta", {}).get("content_sid"):
        return  # an approved template: Twilio renders the body, and the window does not apply
    try:
        segments = check_body(message.body_text)
    except SmsBodyError as exc:
        raise ReplyError("body", str(exc)) from None
    message.headers = {**message.headers, "segments": segments}
    if message.channel == Channel.WHATSAPP.value:
        last_in = await _last_whatsapp_inbound(session, message.customer_id)
        if not window_open(last_in, utcnow()):
            raise ReplyError("body", f"{WINDOW_CLOSED} (free text refused)")
