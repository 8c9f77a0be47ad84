"""Messages the hub writes on its own (auto-replies, surveys) through the agents' reply path."""

from __future__ import annotations

from typing import Any

from jinja2 import StrictUndefined, TemplateError
from jinja2.sandbox import SandboxedEnvironment
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col, select

from hub.core import replies, threading
from hub.core.envelopes import Channel
from hub.core.events import EventHandler
from hub.settings import Settings
from hub.store.models import Agent, Conversation, Customer, Message, Template

# Templates are written by admins, so they render sandboxed: no attribute walks into Python.
_JINJA = SandboxedEnvironment(undefined=StrictUndefined, autoescape=False)


class RenderError(ValueError):
    """A template that does not render with the values at hand."""


def render(text: str, values: dict[str, Any]) -> str:
    try:
        return _JINJA.from_string(text).render(**values)
    except TemplateError as exc:
        raise RenderError(f"template does not render: {exc}") from None


def system_agent(settings: Settings) -> Agent:
    """A stand-in author that is never stored: replies it writes carry no agent id."""
    return Agent(email=settings.smtp_from, name="hub", role="agent")


async def find_template(session: AsyncSession, name: str, channel: str, language: str) -> Template | None:
    """The template in the customer's language, else in any language, for this channel."""
    found = await session.execute(
        select(Template).where(col(Template.name) == name, col(Template.channel) == channel).order_by(col(Template.id))
    )
    rows = list(found.scalars())
    return next((t for t in rows if t.language == language), rows[0] if rows else None)


async def conversation_for(session: AsyncSession, customer: Customer, channel: str) -> Conversation:
    """The customer's newest conversation on this channel, or a new one."""
    found = await session.execute(
        select(Conversation).where(col(Conversation.customer_id) == customer.id, col(Conversation.channel) == channel)
        .order_by(col(Conversation.last_message_at).desc()).limit(1)
    )
    conversation = found.scalar_one_or_none()
    if conversation is None:
        assert customer.id is not None
        conversation = Conversation(customer_id=customer.id, channel=channel,
                                    thread_token=threading.new_thread_token())
        session.add(conversation)
        await session.flush()
    return conversation


async def send(
    session: AsyncSession, conversation: Conversation, body: str, *, settings: Settings,
    subject: str | None = None, flags: tuple[str, ...] = ("autoreply",), handlers: tuple[EventHandler, ...] = (),
) -> Message:
    """Write an outbound message and its outbox row in the caller's transaction."""
    request = replies.ReplyRequest(body=body, channel=Channel(conversation.channel), subject=subject)
    message = await replies.create_reply(
        session, conversation, system_agent(settings), request, mail_domain=settings.mail_domain,
        hub_address=settings.smtp_from, handlers=handlers,
    )
    message.flags = sorted({*message.flags, *flags})
    return message
