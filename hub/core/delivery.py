"""Sending an outbound message through its channel's Sender, and applying delivery news to it."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Protocol, runtime_checkable

from sqlalchemy import String, bindparam, func, literal_column, or_
from sqlalchemy import select as core_select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col, select

from hub.core.envelopes import Address, AddressKind, Channel, DeliveryState, DeliveryUpdate, Outbound, SendResult
from hub.core.events import DELIVERY_UPDATED, Event, EventHandler, publish
from hub.core.jobs import (
    FINISHED,
    Attempt,
    BatchScope,
    Job,
    JobContext,
    PermanentError,
    Sender,
    TransientError,
    batch_scope,
    finish_in,
    in_lanes,
)
from hub.store.bulk import DriverQuery, DriverStatement
from hub.store.models import Conversation, Message, Suppression, table
from hub.store.types import utcnow

log = logging.getLogger(__name__)

# Progress order of the non-terminal states. UNDELIVERED sits below DELIVERED on purpose: a late
# `sent` never undoes `undelivered`, but `delivered`/`read` do, because a handset receipt is proof
# and carriers report an interim failure before a successful retry. FAILED/BOUNCED (never sent) are
# final, except that they cannot take back a receipt already recorded.
_RANK = {
    DeliveryState.QUEUED: 0, DeliveryState.SENDING: 1, DeliveryState.SENT: 2, DeliveryState.UNDELIVERED: 3,
    DeliveryState.DELIVERED: 4, DeliveryState.READ: 5,
}
_HARD_FAILURES = frozenset({DeliveryState.FAILED, DeliveryState.BOUNCED})
_RECEIVED = frozenset({DeliveryState.DELIVERED, DeliveryState.READ})
# Suppression reasons: an unsubscribe stops marketing only; a STOP, a hard bounce or a complaint
# stops every message to the address.
UNSUBSCRIBED = "unsubscribed"
MARKETING_ONLY = frozenset({UNSUBSCRIBED})
# Outbound.message_id of a test send (`hub campaign send-test`): nothing is stored for it.
TEST_MESSAGE_ID = 0
DONE = {DeliveryState.SENT, DeliveryState.DELIVERED, DeliveryState.READ, DeliveryState.UNDELIVERED,
        DeliveryState.FAILED, DeliveryState.BOUNCED}
_DONE_VALUES = frozenset(s.value for s in DONE)


def advance(current: DeliveryState | None, new: DeliveryState) -> DeliveryState:
    """The state after a status callback; callbacks arrive out of order, so never move backwards."""
    if current is None or current == new:
        return new
    if current in _HARD_FAILURES:
        return current
    if new in _HARD_FAILURES:
        return current if current in _RECEIVED else new
    return new if _RANK[new] > _RANK[current] else current


def advances(current: str | None, new: DeliveryState) -> bool:
    """Whether `new` moves a message forward from `current` (never backwards)."""
    if current is None:
        return True
    return advance(DeliveryState(current), new) != DeliveryState(current)


_ADDRESS_KINDS = {"email": AddressKind.EMAIL, "whatsapp": AddressKind.WHATSAPP}
_CHANNELS = {channel.value: channel for channel in Channel}


# Addresses are immutable and repeat within a batch (the hotel's own, a guest's several replies).
@lru_cache(maxsize=4096)
def _address(channel: str, value: str) -> Address:
    return Address(_ADDRESS_KINDS.get(channel, AddressKind.PHONE), value)


def to_outbound(message: Message, conversation: Conversation) -> Outbound:
    """The envelope a Sender needs, built from the stored row."""
    assert message.id is not None
    return _envelope(message.id, message.channel, message.sender, message.recipient, message.body_text,
                     message.subject, message.body_html, message.headers, message.external_id,
                     conversation.thread_token)


def _envelope(
    message_id: int, channel: str, sender: str, recipient: str, body_text: str, subject: str | None,
    body_html: str | None, headers: dict[str, Any], external_id: str | None, thread_token: str | None,
) -> Outbound:
    return Outbound(
        channel=_CHANNELS.get(channel) or Channel(channel), message_id=message_id, sender=_address(channel, sender),
        recipient=_address(channel, recipient), body_text=body_text, subject=subject, body_html=body_html,
        headers=tuple((k, str(v)) for k, v in headers.items() if k != "meta"), external_id=external_id,
        meta={"thread_token": thread_token, **headers.get("meta", {})},
    )


@dataclass(frozen=True, slots=True)
class _Pending:
    """A message to send: its delivery state now, and its envelope."""

    delivery_status: str | None
    outbound: Outbound


_message = table(Message).c
_conversation = table(Conversation).c
# Core, not ORM objects: a batch of sends needs these columns of a hundred rows, nothing more.
_PENDING = DriverQuery(
    core_select(_message.id, _message.channel, _message.sender, _message.recipient, _message.body_text,
                _message.subject, _message.body_html, _message.headers, _message.external_id,
                _conversation.thread_token, _message.delivery_status)
    .join(table(Conversation), _conversation.id == _message.conversation_id)
    .where(_message.id.in_(bindparam("b_ids", expanding=True))),
    expanding="b_ids",
)
LOAD_KEY = "delivery.load"


async def _load(ctx: JobContext, message_id: int) -> _Pending:
    loaded = await _load_shared(ctx) if batch_scope() is not None else await _fetch(ctx, {message_id})
    found = loaded.get(message_id)
    if found is None:
        raise PermanentError(f"message {message_id} no longer exists")
    return found


async def _load_shared(ctx: JobContext) -> dict[int, _Pending]:
    """The messages of the calling batch's send_message items, by message id: read with the claim."""
    scope = batch_scope()
    assert scope is not None, "only inside a batch"
    return await scope.shared(LOAD_KEY, lambda items: _load_many(ctx, items), in_turn=True)


async def _load_many(ctx: JobContext, items: list[Job]) -> dict[int, _Pending]:
    """The messages of a batch of send_message items, by message id (in a session of their own)."""
    return await _fetch(ctx, _message_ids(items))


async def load_pending(session: AsyncSession, items: list[Job]) -> dict[int, _Pending]:
    """The messages of send_message items, by message id (a ClaimLoad: read in the claim's transaction)."""
    return await _pending(session, _message_ids(items))


def _message_ids(items: list[Job]) -> set[int]:
    return {mid for item in items if (mid := _message_id(item)) is not None}


async def _fetch(ctx: JobContext, ids: set[int]) -> dict[int, _Pending]:
    async with ctx.factory() as session:
        return await _pending(session, ids)


async def _pending(session: AsyncSession, ids: set[int]) -> dict[int, _Pending]:
    if not ids:
        return {}
    rows = await _PENDING.rows(session, {"b_ids": sorted(ids)})
    return {row[0]: _Pending(row[-1], _envelope(*row[:-1])) for row in rows}


# A send result moves a message only forward (see advance()); the allowed prior states per new state.
# Driver-level executemany (hub.store.bulk); the states are constants of ours, written as literals.
_MARK_MANY = {
    state: DriverStatement(
        table(Message).update()
        .where(_message.id == bindparam("b_id"),
               or_(_message.delivery_status.is_(None),
                   _message.delivery_status.in_([literal_column(f"'{s.value}'")
                                                 for s in DeliveryState if advances(s.value, state)])))
        .values(delivery_status=literal_column(f"'{state.value}'"), delivery_detail=bindparam("b_detail"),
                provider_id=func.coalesce(bindparam("b_provider", type_=String()), _message.provider_id)),
        ("b_id", "b_detail", "b_provider"),
    )
    for state in (DeliveryState.SENT, DeliveryState.FAILED)
}


async def _write_marks(session: AsyncSession, marks: list[tuple[int, DeliveryState, SendResult]]) -> None:
    """A batch's send results, one executemany per state."""
    for state, statement in _MARK_MANY.items():
        await statement.run(session, [(mid, r.detail or None, r.provider_id or None)
                                      for mid, s, r in marks if s is state])


_MARKS = "delivery.marks"  # BatchScope key of the deferred message marks


async def _mark(
    ctx: JobContext, message_id: int, state: DeliveryState, result: SendResult, done: Job | None = None
) -> bool:
    """Record the send on the message and, when given, finish its outbox row in the same transaction."""
    async with ctx.factory() as session, session.begin():
        message = await session.get(Message, message_id)
        if message is not None and advances(message.delivery_status, state):
            message.delivery_status = state.value
            message.delivery_detail = result.detail or None
            message.provider_id = result.provider_id or message.provider_id
        if done is not None:
            await finish_in(session, done, {"provider_id": result.provider_id, "detail": result.detail})
    return done is not None


async def send_message(ctx: JobContext, item: Job) -> dict[str, Any]:
    """Outbox handler `send_message`: send once, record the provider's answer."""
    message_id = _message_id(item)
    if message_id is None:
        raise PermanentError(f"outbox payload has no message id: {item.payload.get('message_id')!r}")
    pending = await _load(ctx, message_id)
    if pending.delivery_status in _DONE_VALUES:
        return {"skipped": pending.delivery_status}
    channel = pending.outbound.channel.value
    sender = ctx.senders.get(channel)
    if sender is None:
        raise _no_sender(channel)
    attempt = await _recorded(ctx, item, message_id, await sender.send(pending.outbound))
    if attempt.error is not None:
        raise attempt.error
    return attempt.result


_NO_SENDER_RETRY = 60.0  # seconds: a channel configured later (settings reload) picks its messages up


def _no_sender(channel: str) -> TransientError:
    return TransientError(f"no sender configured for channel {channel}", retry_after=_NO_SENDER_RETRY)


def _marked_state(result: SendResult) -> DeliveryState | None:
    """The message's state after a send: sent, failed (refused for good), or None (retried later)."""
    return DeliveryState.SENT if result.ok else DeliveryState.FAILED if result.permanent else None


def _attempt_of(item: Job, result: SendResult, finished: bool) -> Attempt:
    """The item's outcome for a send result: done, failed (5xx...) or retry."""
    if result.ok:
        return Attempt(item, "done", result={FINISHED: True} if finished
                       else {"provider_id": result.provider_id, "detail": result.detail})
    if result.permanent:
        return Attempt(item, "failed", error=PermanentError(f"{result.code or ''} {result.detail}".strip()))
    error = TransientError(result.detail or "transient send failure", retry_after=result.retry_after)
    return Attempt(item, "retry", error=error, delay=result.retry_after)


async def _recorded(ctx: JobContext, item: Job, message_id: int, result: SendResult) -> Attempt:
    """Record a send result on the message (and finish the row when sent); the item's outcome.

    In a batch the mark is deferred to the batch's recording transaction (see `_deferred`).
    """
    if (scope := batch_scope()) is not None:
        return _deferred(scope, item, message_id, result)
    finished = False
    if (state := _marked_state(result)) is not None:
        finished = await _mark(ctx, message_id, state, result, done=item if result.ok else None)
    return _attempt_of(item, result, finished)


def _deferred(scope: BatchScope, item: Job, message_id: int, result: SendResult) -> Attempt:
    """`_recorded` in a batch: the mark waits for the batch's recording transaction, which finishes the row."""
    if (state := _marked_state(result)) is not None:
        scope.defer(_MARKS, (message_id, state, result), _write_marks)
    return _attempt_of(item, result, False)


@runtime_checkable
class BatchSender(Protocol):
    """A Sender that can send a list at once (SMTP: each pooled connection takes a run of them)."""

    async def send_many(self, items: Sequence[Outbound]) -> list[SendResult]: ...


async def send_messages(ctx: JobContext, items: list[Job]) -> list[Attempt]:
    """Batch runner for `send_message`: one load, each channel's messages sent together, marks deferred.

    Same outcomes as `send_message` per item, without a handler call, a load lookup and a pool
    checkout per message; the marks are written with the batch's outcomes (one transaction).
    """
    attempts, by_channel = _triage(items, await _load_shared(ctx))
    for channel, sends in by_channel.items():
        attempts.update(await _send_channel(ctx, channel, sends))
    return [attempts[index] for index in range(len(items))]


_Send = tuple[int, Job, Outbound]  # an item to send: its place in the batch, the item, its envelope


def _triage(items: list[Job], loaded: dict[int, _Pending]) -> tuple[dict[int, Attempt], dict[str, list[_Send]]]:
    """Outcomes known without sending (message gone, already sent), and the rest to send by channel."""
    settled: dict[int, Attempt] = {}
    by_channel: dict[str, list[_Send]] = {}
    for index, item in enumerate(items):
        message_id = _message_id(item)
        pending = loaded.get(message_id) if message_id is not None else None
        if pending is None:
            settled[index] = Attempt(item, "failed", error=PermanentError(f"message {message_id} no longer exists"))
        elif pending.delivery_status in _DONE_VALUES:
            settled[index] = Attempt(item, "done", result={"skipped": pending.delivery_status})
        else:
            by_channel.setdefault(pending.outbound.channel.value, []).append((index, item, pending.outbound))
    return settled, by_channel


async def _send_channel(ctx: JobContext, channel: str, sends: list[_Send]) -> dict[int, Attempt]:
    """Send one channel's messages of a batch and record each result; by place in the batch."""
    sender = ctx.senders.get(channel)
    if sender is None:
        return {index: Attempt(item, "retry", error=_no_sender(channel), delay=_NO_SENDER_RETRY)
                for index, item, _ in sends}
    results = await _send_all(ctx, sender, [outbound for _, _, outbound in sends])
    scope = batch_scope()
    assert scope is not None, "a batch runner runs in its batch's scope"
    return {index: Attempt(item, "retry", error=result) if isinstance(result, Exception)
            else _deferred(scope, item, outbound.message_id, result)
            for (index, item, outbound), result in zip(sends, results, strict=True)}


async def _send_all(ctx: JobContext, sender: Sender, outbounds: list[Outbound]) -> Sequence[SendResult | Exception]:
    """The results in order: send_many when the sender has it, else sends batch_concurrency at a time."""
    if isinstance(sender, BatchSender):
        return await sender.send_many(outbounds)
    return await in_lanes(ctx.batch_concurrency, outbounds, lambda outbound: _send_guarded(sender, outbound))


async def _send_guarded(sender: Sender, outbound: Outbound) -> SendResult | Exception:
    try:
        return await sender.send(outbound)
    except Exception as exc:  # one catch point per message, as for a handler: retried, then shunted
        log.exception("sending message %s crashed", outbound.message_id)
        return exc


def _message_id(item: Job) -> int | None:
    value = item.payload.get("message_id")
    if value.__class__ is int and value >= 0:  # as replies write it; a digit string is taken too
        return value
    text = str(value if value is not None else "")
    return int(text) if text.isdigit() else None


async def apply_update(
    session: AsyncSession, update: DeliveryUpdate, handlers: Sequence[EventHandler] = ()
) -> Message | None:
    """Apply a status callback or bounce to the outbound message it concerns; hard bounces suppress.

    A change of state is published as `delivery.updated` (message id, old and new state, reason),
    so campaigns can count a bounce that arrives days after the send.
    """
    found = await session.execute(
        select(Message).where(
            col(Message.direction) == "out",
            or_(col(Message.provider_id) == update.original_ref, col(Message.external_id) == update.original_ref),
        ).limit(1)
    )
    message = found.scalar_one_or_none()
    if update.permanent and update.recipient:
        await suppress(session, update.channel.value, update.recipient, reason="hard_bounce", detail=update.detail)
    if message is not None and advances(message.delivery_status, update.state):
        old = message.delivery_status
        message.delivery_status = update.state.value
        message.delivery_detail = " ".join(filter(None, [update.code, update.detail])) or None
        await publish(session, Event(DELIVERY_UPDATED, message.customer_id, message.conversation_id, message.id, data={
            "old": old, "new": update.state.value, "reason": message.delivery_detail, "code": update.code,
            "permanent": update.permanent, "channel": update.channel.value}), handlers)
    return message


async def suppress(
    session: AsyncSession, channel: str, address: str, *, reason: str, detail: str | None = None
) -> None:
    """Never send to this address on this channel again (idempotent)."""
    exists = await session.execute(
        select(col(Suppression.id)).where(col(Suppression.channel) == channel, col(Suppression.address) == address)
    )
    if exists.scalar_one_or_none() is None:
        session.add(Suppression(channel=channel, address=address, reason=reason, detail=detail, created_at=utcnow()))
        await session.flush()
