"""The one path every inbound message takes: dedupe, identity, thread, persist, publish.

`ingest()` runs inside the caller's transaction; `ingest_once()` owns the transaction and
retries when a concurrent ingest of the same message or address won the unique index.
"""

from __future__ import annotations

import hashlib
import traceback
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy import bindparam, insert, or_, update
from sqlalchemy import select as sa_select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

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
    publish_many,
)
from hub.core.identity import identity_key
from hub.store import ids
from hub.store.bulk import Binder, DriverStatement, Row, pairs_in, session_binder
from hub.store.engine import SessionFactory
from hub.store.models import (
    Attachment,
    Conversation,
    Customer,
    Inbox,
    Message,
    QuarantineItem,
    RawInput,
    TimelineEntry,
    table,
)
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


async def ingest(session: AsyncSession, item: Inbound, ctx: IngestContext) -> IngestResult:
    """Store one inbound message exactly once, thread it, and publish `message.received`."""
    return (await ingest_many(session, [item], ctx))[0]


async def ingest_many(session: AsyncSession, items: list[Inbound], ctx: IngestContext) -> list[IngestResult]:
    """The ingest path for a batch, in the caller's transaction: set-based reads and writes.

    Each step reads what it needs for the whole batch in one query, decides in memory in
    arrival order, then writes in one statement, so a batch of 200 costs a dozen round trips.
    """
    results: list[IngestResult | None] = [None] * len(items)
    fresh, repeats = await _dedupe(session, items, results)
    if fresh:
        latest: dict[tuple[str, str], datetime] = {}
        for _, item in fresh:
            key = identity_key(item.sender)
            latest[key] = max(latest.get(key, item.received_at), item.received_at)
        created: set[int] = set()
        owners = await customers.resolve_many(session, [item.sender for _, item in fresh], contact_at=latest,
                                              created=created)
        batch = [(owners[identity_key(item.sender)], idx, item) for idx, item in fresh]
        placed, reopened = await _thread(session, batch, ctx)
        stored = await _persist(session, placed, reopened, ctx, created)
        for idx, result in stored.items():
            results[idx] = result
    for idx, first in repeats.items():
        original = results[first]
        assert original is not None
        results[idx] = IngestResult(Outcome.DUPLICATE, original.message_id, original.customer_id,
                                    original.conversation_id)
    return [r for r in results if r is not None]


async def _dedupe(
    session: AsyncSession, items: list[Inbound], results: list[IngestResult | None]
) -> tuple[list[tuple[int, Inbound]], dict[int, int]]:
    """Split a batch into new messages, already-stored ones (results filled) and in-batch repeats."""
    keys = {(i.channel.value, i.external_id) for i in items}
    stored: dict[tuple[str, str | None], tuple[int | None, int, int]] = {}
    message = table(Message).c
    for where in pairs_in(message.channel, message.external_id, keys):
        found = await session.execute(
            sa_select(message.channel, message.external_id, message.id, message.customer_id, message.conversation_id)
            .where(where)
        )
        stored.update({(channel, ext): (mid, cid, conv) for channel, ext, mid, cid, conv in found.all()})
    fresh: list[tuple[int, Inbound]] = []
    first_seen: dict[tuple[str, str], int] = {}
    repeats: dict[int, int] = {}
    for idx, item in enumerate(items):
        key = (item.channel.value, item.external_id)
        if key in stored:
            results[idx] = IngestResult(Outcome.DUPLICATE, *stored[key])
        elif key in first_seen:
            repeats[idx] = first_seen[key]
        else:
            first_seen[key] = idx
            fresh.append((idx, item))
    return fresh, repeats


@dataclass(slots=True)
class _Placed:
    """A new message with the customer and conversation it goes to."""

    idx: int
    item: Inbound
    customer_id: int
    conversation: threading.Thread
    new_conversation: bool


Reopened = dict[threading.Thread, Conversation]


async def _thread(
    session: AsyncSession, batch: list[tuple[int, int, Inbound]], ctx: IngestContext
) -> tuple[list[_Placed], Reopened]:
    """Choose or open each message's conversation; reopen resolved or snoozed ones.

    Returns the placed messages and the reopened conversations, which the ORM holds.
    """
    index = await threading.ThreadIndex.load(session, [(cid, item) for cid, _, item in batch], ctx.thread_window)
    placed: list[_Placed] = []
    created: list[threading.Thread] = []
    reopened: Reopened = {}
    for customer_id, idx, item in batch:
        conversation = index.choose(customer_id, item)
        is_new = conversation is None
        if conversation is None:
            conversation = _new_conversation(customer_id, item)
            created.append(conversation)
        elif conversation.status in ("resolved", "snoozed"):
            reopened[conversation] = await _reopen(session, conversation, ctx)
        if item.received_at > conversation.last_message_at:
            conversation.last_message_at = item.received_at
        index.remember(conversation, item)
        placed.append(_Placed(idx, item, customer_id, conversation, is_new))
    if reopened:
        await session.flush()  # the status changes are written before this batch's rows, as they happened
    await _insert_conversations(session, created, ctx)
    return placed, reopened


async def _reopen(session: AsyncSession, thread: threading.Thread, ctx: IngestContext) -> Conversation:
    """A customer wrote to a resolved or snoozed conversation: it is open again, on the timeline too."""
    conversation = await session.get(Conversation, thread.id)
    assert conversation is not None
    await set_status(session, conversation, "open", actor="customer", handlers=ctx.handlers)
    thread.status = conversation.status
    return conversation


def _new_conversation(customer_id: int, item: Inbound) -> threading.Thread:
    return threading.Thread(
        customer_id=customer_id, channel=item.channel.value, subject=item.subject,
        thread_token=threading.new_thread_token(), created_at=item.received_at, last_message_at=item.received_at,
        recipient=item.recipient.value,
    )


async def _assign_inboxes(session: AsyncSession, created: list[threading.Thread]) -> None:
    """A new conversation belongs to the inbox (and its team) the customer wrote to."""
    recipients = {c.recipient for c in created}
    found = await session.execute(
        sa_select(col(Inbox.channel), col(Inbox.address), col(Inbox.id), col(Inbox.team_id))
        .where(col(Inbox.address).in_(recipients))
    )
    inboxes = {(channel, address): (inbox_id, team_id) for channel, address, inbox_id, team_id in found.all()}
    for conversation in created:
        if (inbox := inboxes.get((conversation.channel, conversation.recipient))) is not None:
            conversation.inbox_id, conversation.team_id = inbox


_CONVERSATION = DriverStatement.insert(table(Conversation), (
    "id", "customer_id", "channel", "subject", "status", "priority", "tags", "thread_token", "created_at",
    "last_message_at", "updated_at", "inbox_id", "team_id"))


async def _insert_conversations(session: AsyncSession, created: list[threading.Thread], ctx: IngestContext) -> None:
    if not created:
        return
    bind = session_binder(session)
    now, no_tags = bind.time(utcnow()), bind.json([])
    await _assign_inboxes(session, created)
    for new, conversation_id in zip(created, await ids.allocate(session, "conversation", len(created)), strict=True):
        new.id = conversation_id
    await _CONVERSATION.run(session, [
        (c.id, c.customer_id, c.channel, c.subject, "open", "normal", no_tags, c.thread_token, bind.time(c.created_at),
         bind.time(c.last_message_at), now, c.inbox_id, c.team_id)
        for c in created
    ])
    events = [Event(CONVERSATION_CREATED, customer_id=c.customer_id, conversation_id=c.id, team_id=c.team_id)
              for c in created]
    await publish_many(session, events, ctx.handlers)


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


_MESSAGE = DriverStatement.insert(table(Message), (
    "id", "conversation_id", "customer_id", "direction", "channel", "external_id", "sender", "recipient", "subject",
    "body_text", "body_html", "visible_text", "thread_refs", "flags", "headers", "raw_id", "created_at"))
_TIMELINE = DriverStatement.insert(table(TimelineEntry), (
    "customer_id", "conversation_id", "kind", "ref_id", "channel", "summary", "data", "occurred_at"))
_RAW = DriverStatement.insert(table(RawInput), ("id", "channel", "sha256", "data", "received_at", "content_type"))


async def _persist(
    session: AsyncSession, placed: list[_Placed], reopened: Reopened, ctx: IngestContext, new_customers: set[int],
) -> dict[int, IngestResult]:
    """Write raw inputs, messages, attachments and timeline entries in a few batched statements."""
    bind = session_binder(session)
    times = [bind.time(p.item.received_at) for p in placed]  # each message's time, converted once
    items = [p.item for p in placed]
    fresh = await ids.allocate_many(session, {"rawinput": sum(i.raw is not None for i in items),
                                              "message": len(placed)})
    raw_ids = await _keep_raw(session, items, times, fresh["rawinput"])
    message_ids = fresh["message"]
    await _MESSAGE.run(session, [_message_row(p, mid, raw_id, at, bind)
                                 for p, mid, raw_id, at in zip(placed, message_ids, raw_ids, times, strict=True)])
    await _add_attachments(session, placed, message_ids, ctx.blobs)
    await _TIMELINE.run(session, [_timeline_row(p, mid, at, bind)
                                  for p, mid, at in zip(placed, message_ids, times, strict=True)])
    await _touch_customers(session, [p for p in placed if p.customer_id not in new_customers])
    await _touch_conversations(session, placed, reopened)
    events = [_received(p, mid) for p, mid in zip(placed, message_ids, strict=True)]
    await publish_many(session, events, ctx.handlers)
    return {p.idx: IngestResult(Outcome.STORED, mid, p.customer_id, p.conversation.id, p.new_conversation)
            for p, mid in zip(placed, message_ids, strict=True)}


def _received(p: _Placed, message_id: int) -> Event:
    return Event(MESSAGE_RECEIVED, customer_id=p.customer_id, conversation_id=p.conversation.id,
                 message_id=message_id, team_id=p.conversation.team_id, data={"channel": p.item.channel.value})


def _message_row(p: _Placed, message_id: int, raw_id: int | None, at: Any, bind: Binder) -> Row:
    item = p.item
    return (
        message_id, p.conversation.id, p.customer_id, "in", item.channel.value, item.external_id, item.sender.value,
        item.recipient.value, item.subject, item.body_text, item.body_html, item.visible_text,
        bind.json(list(item.thread_refs)), bind.json(sorted(f.value for f in item.flags)),
        bind.json(dict(item.headers)), raw_id, at,
    )


async def _keep_raw(
    session: AsyncSession, items: list[Inbound], times: list[Any], raw_ids: list[int]
) -> list[int | None]:
    """Store the raw bytes of the items that have them, under `raw_ids`; each item's raw id or None."""
    kept = [(i, at) for i, at in zip(items, times, strict=True) if i.raw is not None]
    await _RAW.run(session, [
        (rid, i.channel.value, hashlib.sha256(i.raw or b"").hexdigest(), i.raw, at,
         "message/rfc822" if i.channel == "email" else "application/x-www-form-urlencoded")
        for rid, (i, at) in zip(raw_ids, kept, strict=True)
    ])
    handed = iter(raw_ids)
    return [next(handed) if i.raw is not None else None for i in items]


async def _add_attachments(session: AsyncSession, placed: list[_Placed], message_ids: list[int],
                           blobs: BlobStore) -> None:
    rows = [
        {"message_id": mid, "filename": ref.filename, "content_type": ref.content_type, "size": ref.size,
         "sha256": ref.sha256, "storage_ref": blobs.put(ref.content) if ref.content is not None else None,
         "url": ref.url, "inline": ref.inline, "content_id": ref.content_id}
        for p, mid in zip(placed, message_ids, strict=True) for ref in p.item.attachments
    ]
    if rows:
        await session.execute(insert(table(Attachment)), rows)


_customer = table(Customer).c
_TOUCH_CUSTOMER = DriverStatement(
    update(table(Customer))
    .where(_customer.id == bindparam("cid"),
           or_(_customer.last_contact_at.is_(None), _customer.last_contact_at < bindparam("at")))
    .values(last_contact_at=bindparam("at")),
    ("cid", "at"),
)


async def _touch_customers(session: AsyncSession, placed: list[_Placed]) -> None:
    """Move each customer's last_contact_at forward (never back) in one executemany."""
    if not placed:
        return  # customers created by this batch were written with their last contact already
    latest: dict[int, datetime] = {}
    for p in placed:
        latest[p.customer_id] = max(latest.get(p.customer_id, p.item.received_at), p.item.received_at)
    bind = session_binder(session)
    await _TOUCH_CUSTOMER.run(session, [(cid, bind.time(at)) for cid, at in sorted(latest.items())])


_conversation = table(Conversation).c
_MOVE_CONVERSATION = DriverStatement(
    update(table(Conversation)).where(_conversation.id == bindparam("cid"))
    .values(last_message_at=bindparam("at"), updated_at=bindparam("now")),
    ("cid", "at", "now"),
)
_TOUCH_CONVERSATION = DriverStatement(
    update(table(Conversation)).where(_conversation.id == bindparam("cid")).values(updated_at=bindparam("now")),
    ("cid", "now"),
)


async def _touch_conversations(session: AsyncSession, placed: list[_Placed], reopened: Reopened) -> None:
    """Existing conversations get the newest message time of this batch (new ones were written with it).

    A conversation whose newest message is older than its stored time keeps that time: only
    `updated_at` is written, as the ORM wrote only the attributes that changed.
    """
    now = utcnow()
    moved: dict[int, datetime] = {}
    touched: set[int] = set()
    for p in placed:
        thread = p.conversation
        if thread.new or thread.id is None:
            continue
        if (orm := reopened.get(thread)) is not None:
            orm.last_message_at, orm.updated_at = thread.last_message_at, now
        elif thread.last_message_at != thread.loaded_last_message_at:
            moved[thread.id] = thread.last_message_at
        else:
            touched.add(thread.id)
    bind = session_binder(session)
    at_now = bind.time(now)
    await _MOVE_CONVERSATION.run(session, [(cid, bind.time(at), at_now) for cid, at in sorted(moved.items())])
    await _TOUCH_CONVERSATION.run(session, [(cid, at_now) for cid in sorted(touched)])
    if reopened:
        await session.flush()


def _timeline_row(p: _Placed, message_id: int, at: Any, bind: Binder) -> Row:
    item = p.item
    preview = (item.visible_text or item.body_text or "").strip().replace("\n", " ")
    return (p.customer_id, p.conversation.id, "message", message_id, item.channel.value,
            (item.subject or preview)[:200], bind.json({"direction": "in", "preview": preview[:300]}), at)


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


async def ingest_batch(factory: SessionFactory, items: list[Inbound], ctx: IngestContext) -> list[IngestResult]:
    """Ingest many messages in one transaction (bulk imports); on a unique-index race, one by one."""
    try:
        async with factory() as session, session.begin():
            return await ingest_many(session, items, ctx)
    except IntegrityError:
        return [await ingest_once(factory, item, ctx) for item in items]


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
