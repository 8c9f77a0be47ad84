"""Opens, clicks, replies and late delivery news recorded against the campaign recipient they belong to."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from hub.core.delivery import suppress
from hub.core.events import DELIVERY_UPDATED, MESSAGE_RECEIVED, Event, handles
from hub.store.models import CampaignEvent, CampaignRecipient, Message
from hub.store.types import utcnow

REPLY_WINDOW = timedelta(days=14)
# Delivery state of a sent message -> recipient status and the event the stats count.
_LATE_FAILURES = {"bounced": "bounced", "failed": "failed", "undelivered": "failed"}
_RECEIVED = frozenset({"delivered", "read"})
# Rows whose send result is recorded already; a `sending` row gets it from the sender in a moment.
_RECORDED = frozenset({"sent", "failed", "bounced"})


async def record(session: AsyncSession, recipient: CampaignRecipient, kind: str, detail: str | None = None) -> bool:
    """Add an event once per recipient and kind (opens repeat; the first one counts)."""
    assert recipient.id is not None
    seen = await session.execute(select(col(CampaignEvent.id)).where(
        col(CampaignEvent.recipient_id) == recipient.id, col(CampaignEvent.kind) == kind).limit(1))
    if seen.scalar_one_or_none() is not None:
        return False
    session.add(CampaignEvent(campaign_id=recipient.campaign_id, recipient_id=recipient.id, variant=recipient.variant,
                              kind=kind, detail=detail))
    if kind == "clicked":
        # A click proves an open even when images were blocked.
        await record(session, recipient, "opened", "implied by click")
    return True


async def _replied_to(session: AsyncSession, message: Message) -> CampaignRecipient | None:
    refs = [r for r in message.thread_refs if not r.startswith("token:")]
    if refs:
        found = await session.execute(
            select(CampaignRecipient).join(Message, col(Message.id) == col(CampaignRecipient.message_id))
            .where(col(Message.external_id).in_(refs[:50]), col(Message.direction) == "out").limit(1))
        if (hit := found.scalar_one_or_none()) is not None:
            return hit
    # SMS has no references: the customer's latest campaign message on that channel, if recent.
    found = await session.execute(
        select(CampaignRecipient).where(col(CampaignRecipient.customer_id) == message.customer_id,
                                        col(CampaignRecipient.channel) == message.channel,
                                        col(CampaignRecipient.status) == "sent",
                                        col(CampaignRecipient.sent_at) >= utcnow() - REPLY_WINDOW)
        .order_by(col(CampaignRecipient.sent_at).desc()).limit(1))
    return found.scalar_one_or_none()


@handles(MESSAGE_RECEIVED)
async def on_reply(session: AsyncSession, event: Event) -> None:
    """Event handler: an inbound message answering a campaign message counts as its reply."""
    if event.type != MESSAGE_RECEIVED or event.message_id is None:
        return
    message = await session.get(Message, event.message_id)
    if message is None or message.direction != "in":
        return
    recipient = await _replied_to(session, message)
    if recipient is not None:
        await record(session, recipient, "replied", f"message {message.id}")


async def _recipient_of(session: AsyncSession, message_id: int) -> CampaignRecipient | None:
    """The campaign recipient a message was sent for (its headers name it), or None."""
    message = await session.get(Message, message_id)
    recipient_id = message.headers.get("recipient_id") if message is not None else None
    if recipient_id is None:
        return None
    recipient = await session.get(CampaignRecipient, int(recipient_id))
    return recipient if recipient is not None and recipient.message_id == message_id else None


@handles(DELIVERY_UPDATED)
async def on_delivery(session: AsyncSession, event: Event) -> None:
    """Event handler: a receipt, bounce or failure of a campaign message counts, however late it arrives."""
    if event.type != DELIVERY_UPDATED or event.message_id is None:
        return
    recipient = await _recipient_of(session, event.message_id)
    if recipient is None:
        return
    new, reason = str(event.data.get("new")), event.data.get("reason")
    if new in _RECEIVED:
        if recipient.status == "failed" and recipient.sent_at is not None:
            recipient.status = "sent"  # a handset receipt beats a carrier's interim failure
        await record(session, recipient, "delivered")
        return
    status = _LATE_FAILURES.get(new)
    if status is None:
        return
    if recipient.status in _RECORDED:
        recipient.status, recipient.error = status, reason
    if status == "bounced":
        await suppress(session, recipient.channel, recipient.address, reason="hard_bounce", detail=reason)
    await record(session, recipient, status, reason)
