"""The one path every inbound message takes: dedupe, identity, thread, persist, publish.

`ingest()` runs inside the caller's transaction; `ingest_once()` owns the transaction and
retries when a concurrent ingest of the same message or address won the unique index.
"""

from __future__ import annotations

import hashlib
import traceback
from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col, select

from hub.core import customers, threading
from hub.core.blobs import BlobStore
from hub.core.envelopes import Inbound
from hub.core.events import (
    CONVERSATION_CREATED,
    CONVERSATION_STATUS_CHANGED,
    MESSAGE_RECEIVED,
    Event,
    EventHandler,
    publish,
)
from hub.store.engine import SessionFactory
from hub.store.models import Attachment, Conversation, Customer, Message, QuarantineItem, RawInput, TimelineEntry
from hub.store.types import utcnow

RACE_RETRIES = 5


class Outcome(StrEnum):
    STORED = "stored"
    DUPLICATE = "duplicate"
    QUARANTINED = "quarantined"


@dataclass(frozen=True, slots=True)
class IngestResult:
    outcome: Outcome
    message_id: int | None = None
    customer_id: int | None = None
    conversation_id: int | None = None
    new_conversation: bool = False
    quarantine_id: int | None = None
    error: str | None = None


@dataclass(frozen=True)
class IngestContext:
    """What ingest needs besides the session: where bytes go and who hears about new messages."""

    blobs: BlobStore
    handlers: tuple[EventHandler, ...] = ()
    thread_window: timedelta = timedelta(days=30)


async def existing_message(session: AsyncSession, item: Inbound) -> Message | None:
    """The message already stored under this idempotency key, if any."""
    found = await session.execute(
        select(Message).where(col(Message.channel) == item.channel.value, col(Message.external_id) == item.external_id)
    )
    return found.scalar_one_or_none()


async def ingest(session: AsyncSession, item: Inbound, ctx: IngestContext) -> IngestResult:
    """Store one inbound message exactly once, thread it, and publish `message.received`."""
    if (existing := await existing_message(session, item)) is not None:
        return IngestResult(Outcome.DUPLICATE, existing.id, existing.customer_id, existing.conversation_id)
    customer, _ = await customers.resolve(session, item.sender)
    conversation = await threading.find(session, _id(customer), item, ctx.thread_window)
    is_new = conversation is None
    conversation = await _open_or_reopen(session, conversation, customer, item, ctx)
    message = await _persist(session, conversation, customer, item, ctx)
    await publish(session, _received(message, conversation), ctx.handlers)
    return IngestResult(Outcome.STORED, message.id, customer.id, conversation.id, new_conversation=is_new)


def _id(row: Customer | Conversation | Message) -> int:
    assert row.id is not None, "row must be flushed before use"
    return row.id


def _received(message: Message, conversation: Conversation) -> Event:
    return Event(
        MESSAGE_RECEIVED, customer_id=message.customer_id, conversation_id=conversation.id,
        message_id=message.id, team_id=conversation.team_id, data={"channel": message.channel},
    )


async def _open_or_reopen(
    session: AsyncSession, conversation: Conversation | None, customer: Customer, item: Inbound, ctx: IngestContext
) -> Conversation:
    if conversation is None:
        conversation = Conversation(
            customer_id=_id(customer), channel=item.channel.value, subject=item.subject,
            thread_token=threading.new_thread_token(), created_at=item.received_at,
            last_message_at=item.received_at,
        )
        session.add(conversation)
        await session.flush()
        event = Event(CONVERSATION_CREATED, customer_id=customer.id, conversation_id=conversation.id)
        await publish(session, event, ctx.handlers)
    elif conversation.status in ("resolved", "snoozed"):
        await set_status(session, conversation, "open", actor="customer", handlers=ctx.handlers)
    return conversation


async def set_status(
    session: AsyncSession, conversation: Conversation, status: str, *, actor: str,
    handlers: tuple[EventHandler, ...] = (),
) -> None:
    """Change a conversation's status, put the change on the timeline and publish it."""
    previous = conversation.status
    if previous == status:
        return
    conversation.status = status
    conversation.updated_at = utcnow()
    if status != "snoozed":
        conversation.snoozed_until = None
    session.add(TimelineEntry(
        customer_id=conversation.customer_id, conversation_id=conversation.id, kind="status",
        channel=conversation.channel, summary=f"{previous} → {status}",
        data={"from": previous, "to": status, "actor": actor},
    ))
    event = Event(
        CONVERSATION_STATUS_CHANGED, customer_id=conversation.customer_id, conversation_id=conversation.id,
        team_id=conversation.team_id, data={"from": previous, "to": status, "actor": actor},
    )
    await publish(session, event, handlers)


async def _persist(
    session: AsyncSession, conversation: Conversation, customer: Customer, item: Inbound, ctx: IngestContext
) -> Message:
    raw_id = await _keep_raw(session, item)
    message = Message(
        conversation_id=_id(conversation), customer_id=_id(customer), direction="in",
        channel=item.channel.value, external_id=item.external_id, sender=item.sender.value,
        recipient=item.recipient.value, subject=item.subject, body_text=item.body_text,
        body_html=item.body_html, visible_text=item.visible_text, thread_refs=list(item.thread_refs),
        flags=sorted(f.value for f in item.flags), headers=dict(item.headers),
        raw_id=raw_id, created_at=item.received_at,
    )
    session.add(message)
    await session.flush()
    _add_attachments(session, message, item, ctx.blobs)
    _touch(conversation, customer, item)
    session.add(_timeline_entry(message, item))
    return message


async def _keep_raw(session: AsyncSession, item: Inbound) -> int | None:
    if item.raw is None:
        return None
    raw = RawInput(
        channel=item.channel.value, sha256=hashlib.sha256(item.raw).hexdigest(), data=item.raw,
        content_type="message/rfc822" if item.channel == "email" else "application/x-www-form-urlencoded",
    )
    session.add(raw)
    await session.flush()
    return raw.id


def _add_attachments(session: AsyncSession, message: Message, item: Inbound, blobs: BlobStore) -> None:
    for ref in item.attachments:
        storage = blobs.put(ref.content) if ref.content is not None else None
        session.add(Attachment(
            message_id=_id(message), filename=ref.filename, content_type=ref.content_type, size=ref.size,
            sha256=ref.sha256, storage_ref=storage, url=ref.url, inline=ref.inline, content_id=ref.content_id,
        ))


def _touch(conversation: Conversation, customer: Customer, item: Inbound) -> None:
    if item.received_at > conversation.last_message_at:
        conversation.last_message_at = item.received_at
    conversation.updated_at = utcnow()
    if customer.last_contact_at is None or item.received_at > customer.last_contact_at:
        customer.last_contact_at = item.received_at


def _timeline_entry(message: Message, item: Inbound) -> TimelineEntry:
    preview = (item.visible_text or item.body_text or "").strip().replace("\n", " ")
    return TimelineEntry(
        customer_id=message.customer_id, conversation_id=message.conversation_id, kind="message",
        ref_id=message.id, channel=message.channel, summary=(item.subject or preview)[:200],
        data={"direction": "in", "preview": preview[:300]}, occurred_at=item.received_at,
    )


async def ingest_once(factory: SessionFactory, item: Inbound, ctx: IngestContext) -> IngestResult:
    """Ingest in its own transaction, retrying when a concurrent writer won a unique index."""
    for attempt in range(RACE_RETRIES):
        try:
            async with factory() as session, session.begin():
                return await ingest(session, item, ctx)
        except IntegrityError:
            if attempt == RACE_RETRIES - 1:
                raise
    raise AssertionError("unreachable")


async def quarantine(
    factory: SessionFactory, *, stage: str, error: BaseException, raw: bytes | None = None,
    channel: str | None = None, source: str | None = None, payload: dict[str, object] | None = None,
) -> IngestResult:
    """Keep input we could not handle, with its raw bytes and the error, so it can be replayed."""
    async with factory() as session, session.begin():
        item = QuarantineItem(
            stage=stage, channel=channel, source=source, raw=raw, payload=dict(payload or {}),
            error=f"{type(error).__name__}: {error}",
            traceback="".join(traceback.format_exception(error)),
        )
        session.add(item)
        await session.flush()
        return IngestResult(Outcome.QUARANTINED, quarantine_id=item.id, error=item.error)
