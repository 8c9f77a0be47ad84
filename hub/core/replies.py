"""Agents' replies and internal notes: a message row, a timeline entry and (for replies) an outbox row."""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col, select

from hub.core import outbox
from hub.core.envelopes import Channel, DeliveryState
from hub.core.events import MESSAGE_SENT, NOTE_ADDED, Event, EventHandler, publish
from hub.store.models import Agent, Conversation, Identity, Message, TimelineEntry
from hub.store.types import utcnow

SEND_MESSAGE = "send_message"
_MENTION = re.compile(r"(?<![\w.])@([\w.+-]+(?:@[\w-]+(?:\.[\w-]+)+)?)")


class ReplyError(ValueError):
    """A reply that cannot be sent as asked (no address on that channel, empty body...)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


@dataclass(frozen=True, slots=True)
class ReplyRequest:
    body: str
    channel: Channel | None = None
    to: str | None = None
    subject: str | None = None
    body_html: str | None = None


def email_message_id(domain: str) -> str:
    """A fresh RFC 5322 Message-ID (without angle brackets) in the hub's mail domain."""
    return f"{secrets.token_hex(12)}@{domain}"


async def _last_inbound(session: AsyncSession, conversation_id: int) -> Message | None:
    found = await session.execute(
        select(Message).where(col(Message.conversation_id) == conversation_id, col(Message.direction) == "in")
        .order_by(col(Message.created_at).desc(), col(Message.id).desc()).limit(1)
    )
    return found.scalar_one_or_none()


async def _recipient(session: AsyncSession, conversation: Conversation, channel: Channel, to: str | None) -> str:
    kind = "email" if channel is Channel.EMAIL else "phone"
    query = select(Identity.value).where(
        col(Identity.customer_id) == conversation.customer_id, col(Identity.kind) == kind
    )
    known = list((await session.execute(query)).scalars())
    if to is not None:
        if to not in known:
            raise ReplyError("to", f"{to!r} is not one of this customer's {kind} identities")
        return to
    if not known:
        raise ReplyError("channel", f"the customer has no {kind} identity to reply to on {channel.value}")
    return known[0]


def _threading_headers(last_in: Message | None) -> dict[str, str]:
    if last_in is None or last_in.channel != Channel.EMAIL or not last_in.external_id:
        return {}
    # thread_refs are newest first; References lists the thread oldest first, ending with the parent.
    older = [r for r in last_in.thread_refs if not r.startswith("token:")][::-1]
    refs = list(dict.fromkeys([*older, last_in.external_id]))
    return {"In-Reply-To": last_in.external_id, "References": " ".join(f"<{r}>" for r in refs[-20:])}


def _hub_side(channel: Channel, last_in: Message | None, hub_address: str) -> str:
    """Reply from the address the customer wrote to (the hotel number they texted), else the default."""
    if channel is not Channel.EMAIL and last_in is not None and last_in.channel == channel.value:
        return last_in.recipient
    return hub_address


def _reply_subject(conversation: Conversation, requested: str | None) -> str | None:
    if requested is not None:
        return requested
    subject = conversation.subject or ""
    return subject if subject.lower().startswith("re:") or not subject else f"Re: {subject}"


async def create_reply(
    session: AsyncSession, conversation: Conversation, agent: Agent, request: ReplyRequest, *,
    mail_domain: str, hub_address: str, handlers: tuple[EventHandler, ...] = (),
) -> Message:
    """Write the outbound message and its outbox row in the caller's transaction."""
    if not request.body.strip():
        raise ReplyError("body", "a reply needs some text")
    assert conversation.id is not None
    channel = request.channel or Channel(conversation.channel)
    last_in = await _last_inbound(session, conversation.id)
    recipient = await _recipient(session, conversation, channel, request.to)
    is_email = channel is Channel.EMAIL
    message = Message(
        conversation_id=conversation.id, customer_id=conversation.customer_id, direction="out",
        channel=channel.value, sender=_hub_side(channel, last_in, hub_address), recipient=recipient,
        subject=_reply_subject(conversation, request.subject) if is_email else None,
        body_text=request.body, body_html=request.body_html, author_agent_id=agent.id,
        external_id=email_message_id(mail_domain) if is_email else None,
        headers=_threading_headers(last_in) if is_email else {},
        delivery_status=DeliveryState.QUEUED.value,
    )
    session.add(message)
    await session.flush()
    # The channel lets a channel's sends be claimed in batches (JobContext.batch_channels).
    await outbox.add(session, SEND_MESSAGE, {"message_id": message.id, "channel": channel.value})
    _record(session, conversation, message, kind="message", summary=request.body)
    conversation.last_message_at = max(conversation.last_message_at, message.created_at)
    await publish(session, Event(MESSAGE_SENT, conversation.customer_id, conversation.id, message.id,
                                 conversation.team_id, {"agent_id": agent.id}), handlers)
    return message


def mentions(body: str) -> list[str]:
    """Handles mentioned with @name or @email in a note, in order, without repeats."""
    return list(dict.fromkeys(_MENTION.findall(body)))


async def add_note(
    session: AsyncSession, conversation: Conversation, agent: Agent, body: str,
    handlers: tuple[EventHandler, ...] = (),
) -> Message:
    """An internal note: on the timeline for agents, never sent to the customer."""
    if not body.strip():
        raise ReplyError("body", "a note needs some text")
    assert conversation.id is not None
    note = Message(
        conversation_id=conversation.id, customer_id=conversation.customer_id, direction="note",
        channel=conversation.channel, sender=agent.email, body_text=body, author_agent_id=agent.id,
        headers={"mentions": ",".join(mentions(body))},
    )
    session.add(note)
    await session.flush()
    _record(session, conversation, note, kind="note", summary=body)
    await publish(session, Event(NOTE_ADDED, conversation.customer_id, conversation.id, note.id,
                                 conversation.team_id, {"agent_id": agent.id, "mentions": mentions(body)}), handlers)
    return note


def _record(session: AsyncSession, conversation: Conversation, message: Message, *, kind: str, summary: str) -> None:
    conversation.updated_at = utcnow()
    session.add(TimelineEntry(
        customer_id=conversation.customer_id, conversation_id=conversation.id, kind=kind, ref_id=message.id,
        channel=message.channel, summary=" ".join(summary.split())[:200],
        data={"direction": message.direction, "agent_id": message.author_agent_id},
        occurred_at=message.created_at,
    ))
