"""Recording a chunk's send results on its recipient rows and messages, never moving a delivery state back.

A status callback or a DSN can reach a message before its worker records the send (the relay
took it, the bounce came straight back, the worker was slow): the messages' states are read
under a row lock, a send result only moves a state forward (`hub.core.delivery.advance`), and
the recipient row follows where its message ends up.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import String, bindparam, func, null, select, update
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession

from hub.campaigns import consent
from hub.core.delivery import advance
from hub.core.envelopes import DeliveryState, Outbound, SendResult
from hub.core.jobs import backoff_seconds
from hub.store.bulk import Binder, DriverStatement, session_binder
from hub.store.engine import SessionFactory
from hub.store.models import CampaignEvent, CampaignRecipient, Message, table
from hub.store.types import UTCDateTime, utcnow

# Where a message's delivery state leaves its recipient row (as hub.campaigns.tracking counts it).
_ROW = {DeliveryState.SENT: "sent", DeliveryState.DELIVERED: "sent", DeliveryState.READ: "sent",
        DeliveryState.UNDELIVERED: "failed", DeliveryState.FAILED: "failed", DeliveryState.BOUNCED: "bounced"}
_PENDING = frozenset({None, DeliveryState.QUEUED, DeliveryState.SENDING})
ATTEMPTS = 3  # a record lost to a dropped connection or a deadlock would mean a resend after the lease

_recipient = table(CampaignRecipient).c
_message = table(Message).c
_ROWS = DriverStatement(
    update(table(CampaignRecipient)).where(_recipient.id == bindparam("rid")).values(
        status=bindparam("status"), error=bindparam("error", type_=String()),
        sent_at=func.coalesce(bindparam("sent_at", type_=UTCDateTime()), _recipient.sent_at),
        send_after=func.coalesce(bindparam("due", type_=UTCDateTime()), _recipient.send_after),
        enqueued_at=func.coalesce(bindparam("due2", type_=UTCDateTime()), _recipient.enqueued_at),
        claimed_at=null(), worker=null()),
    ("rid", "status", "error", "sent_at", "due", "due2"))
_MESSAGES = DriverStatement(
    update(table(Message)).where(_message.id == bindparam("mid")).values(
        delivery_status=bindparam("state"), delivery_detail=bindparam("detail", type_=String()),
        provider_id=func.coalesce(bindparam("provider", type_=String()), _message.provider_id)),
    ("mid", "state", "detail", "provider"))
EVENTS = DriverStatement.insert(table(CampaignEvent),
                                ("campaign_id", "recipient_id", "variant", "kind", "detail", "at"))


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one send result does: the row's status, the message's new state (None: keep), whose failure."""

    row: str
    message: DeliveryState | None = None
    own_failure: bool = False


def settle(result: SendResult, current: str | None, *, attempts: int, max_attempts: int) -> Outcome:
    """The outcome of a send given its message's state now (pure): forward only, retries while nothing is known."""
    state = DeliveryState(current) if current else None
    wanted: DeliveryState | None
    if result.ok:
        wanted = DeliveryState.SENT
    elif result.permanent or attempts >= max_attempts:
        wanted = DeliveryState.FAILED
    elif state in _PENDING:
        return Outcome("queued")
    else:
        wanted = None  # a failed retry of a message the provider already reported on: its news stands
    new = advance(state, wanted) if wanted is not None else state
    assert new is not None
    return Outcome(_ROW[new], new if new != state else None,
                   own_failure=new == DeliveryState.FAILED and new != state)


@dataclass(frozen=True, slots=True)
class Sent:
    """One send of the chunk: which row, which attempt, what went out, what came back."""

    recipient_id: int
    attempts: int
    outbound: Outbound
    result: SendResult


@dataclass
class Recorded:
    """Counts of a recorded chunk and the rows to retry: (id, attempts, due)."""

    sent: int = 0
    failed: int = 0
    retry: list[tuple[int, int, datetime]] = field(default_factory=list)


def _hard_bounce(item: Outbound, result: SendResult) -> bool:
    """An SMTP 5xx for the recipient means the address is dead: suppress it everywhere."""
    return item.channel.value == "email" and (result.code or "").startswith("5")


def _row(s: Sent, outcome: Outcome, detail: str | None, now: datetime, due: datetime | None,
         bind: Binder) -> tuple[Any, ...]:
    """The recipient row's new values: (id, status, error, sent_at, send_after, enqueued_at)."""
    result = s.result
    if outcome.row == "queued":
        return (s.recipient_id, "queued", result.detail[:2000], None, bind.time(due), bind.time(due))
    if outcome.own_failure:
        return (s.recipient_id, "failed", f"{result.code or ''} {result.detail}".strip()[:2000], None, None, None)
    # Sent, or sent and then reported on by the provider: a failed row keeps the provider's reason.
    return (s.recipient_id, outcome.row, None if outcome.row == "sent" else detail, bind.time(now), None, None)


async def _states(session: AsyncSession, message_ids: Sequence[int]) -> dict[int, tuple[str | None, str | None]]:
    # FOR UPDATE: a callback applied meanwhile waits for this commit (SQLite's BEGIN IMMEDIATE already does).
    rows = await session.execute(
        select(_message.id, _message.delivery_status, _message.delivery_detail)
        .where(_message.id.in_(sorted(message_ids))).order_by(_message.id).with_for_update())
    return {int(r.id): (r.delivery_status, r.delivery_detail) for r in rows}


async def _write(session: AsyncSession, campaign_id: int, sends: Sequence[Sent], max_attempts: int) -> Recorded:
    now = utcnow()
    bind = session_binder(session)
    states = await _states(session, [s.outbound.message_id for s in sends])
    done = Recorded()
    rows, messages, events, bounced = [], [], [], []
    for s in sends:
        current, detail = states.get(s.outbound.message_id, (None, None))
        outcome = settle(s.result, current, attempts=s.attempts, max_attempts=max_attempts)
        due = None
        if outcome.row == "queued":
            due = now + timedelta(seconds=s.result.retry_after or backoff_seconds(s.attempts))
            done.retry.append((s.recipient_id, s.attempts, due))
        rows.append(_row(s, outcome, detail or current, now, due, bind))
        done.sent += s.result.ok
        if outcome.message is not None:
            messages.append((s.outbound.message_id, outcome.message.value, s.result.detail[:2000] or None,
                             s.result.provider_id or None))
        if outcome.own_failure:
            done.failed += 1
            events.append((campaign_id, s.recipient_id, s.outbound.meta.get("variant"), "failed", rows[-1][2],
                           bind.time(now)))
            if s.result.permanent and _hard_bounce(s.outbound, s.result):
                bounced.append(s.recipient_id)
    await _ROWS.run(session, rows)
    await _MESSAGES.run(session, messages)
    await EVENTS.run(session, events)
    for rid in bounced:
        recipient = await session.get(CampaignRecipient, rid)
        if recipient is not None:
            await consent.record_bounce(session, recipient, "permanent failure at send")
    return done


async def record(factory: SessionFactory, campaign_id: int, sends: Sequence[Sent], *, max_attempts: int) -> Recorded:
    """Write a chunk's results in one transaction, retried a few times: a lost record means a resend later."""
    if not sends:
        return Recorded()
    for attempt in range(1, ATTEMPTS + 1):
        try:
            async with factory() as session, session.begin():
                return await _write(session, campaign_id, sends, max_attempts)
        except DBAPIError:
            if attempt == ATTEMPTS:
                raise
            await asyncio.sleep(0.2 * attempt)
    raise AssertionError("unreachable")
