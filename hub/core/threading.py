"""Conversation threading: which conversation an inbound message belongs to.

Order (first match wins): reply token, referenced message ids (In-Reply-To, References),
same normalised subject from the same customer within the window (email), the customer's
open conversation on the channel within the window, else a new conversation.
"""

from __future__ import annotations

import re
import secrets
from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col, select

from hub.core.envelopes import Channel, Inbound
from hub.store.models import Conversation, Message

TOKEN_PREFIX = "token:"

# Reply/forward prefixes of the mail clients our guests use (EN, IT, DE, FR, ES, NL, Nordic).
_PREFIX = re.compile(r"^\s*(?:(?:re|r|aw|sv|vs|antw|fwd?|i|wg|tr|rif|enc|rv)\s*(?:\[\d+\])?\s*:\s*)+", re.I)


def normalise_subject(subject: str | None) -> str:
    """Strip reply/forward prefixes and collapse spaces, for matching a reply to its thread."""
    if not subject:
        return ""
    stripped = _PREFIX.sub("", subject)
    return " ".join(stripped.split()).casefold()


def new_thread_token() -> str:
    """A random token for reply+TOKEN@domain addresses; unguessable so nobody can inject into a thread."""
    return secrets.token_hex(10)


def split_refs(refs: tuple[str, ...]) -> tuple[list[str], list[str]]:
    """Separate reply tokens from referenced message ids."""
    tokens = [r[len(TOKEN_PREFIX):] for r in refs if r.startswith(TOKEN_PREFIX)]
    ids = [r for r in refs if not r.startswith(TOKEN_PREFIX)]
    return tokens, ids


async def _by_token(session: AsyncSession, tokens: list[str]) -> Conversation | None:
    if not tokens:
        return None
    found = await session.execute(select(Conversation).where(col(Conversation.thread_token).in_(tokens)).limit(1))
    return found.scalar_one_or_none()


async def _by_reference(session: AsyncSession, channel: Channel, ids: list[str]) -> Conversation | None:
    if not ids:
        return None
    found = await session.execute(
        select(Conversation)
        .join(Message, col(Message.conversation_id) == col(Conversation.id))
        .where(col(Message.channel) == channel.value, col(Message.external_id).in_(ids[:50]))
        .order_by(col(Message.id).desc())
        .limit(1)
    )
    return found.scalar_one_or_none()


async def _by_subject(
    session: AsyncSession, customer_id: int, item: Inbound, window: timedelta
) -> Conversation | None:
    wanted = normalise_subject(item.subject)
    if item.channel is not Channel.EMAIL or not wanted:
        return None
    recent = await session.execute(
        select(Conversation)
        .where(
            col(Conversation.customer_id) == customer_id,
            col(Conversation.channel) == item.channel.value,
            col(Conversation.last_message_at) >= item.received_at - window,
        )
        .order_by(col(Conversation.last_message_at).desc())
        .limit(20)
    )
    for conversation in recent.scalars():
        if normalise_subject(conversation.subject) == wanted:
            return conversation
    return None


async def _open_on_channel(
    session: AsyncSession, customer_id: int, item: Inbound, window: timedelta
) -> Conversation | None:
    if item.channel is Channel.EMAIL and item.subject:
        return None  # a new email subject is a new topic; SMS and calls have no subjects
    found = await session.execute(
        select(Conversation)
        .where(
            col(Conversation.customer_id) == customer_id,
            col(Conversation.channel) == item.channel.value,
            col(Conversation.status) != "resolved",
            col(Conversation.last_message_at) >= item.received_at - window,
        )
        .order_by(col(Conversation.last_message_at).desc())
        .limit(1)
    )
    return found.scalar_one_or_none()


async def find(
    session: AsyncSession, customer_id: int, item: Inbound, window: timedelta
) -> Conversation | None:
    """The existing conversation this message continues, or None when it starts a new one."""
    tokens, ids = split_refs(item.thread_refs)
    return (
        await _by_token(session, tokens)
        or await _by_reference(session, item.channel, ids)
        or await _by_subject(session, customer_id, item, window)
        or await _open_on_channel(session, customer_id, item, window)
    )
