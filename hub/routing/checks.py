"""The periodic checks the cron runs: overdue interventions and SLA breaches, each raised once."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col, select

from hub.core import outbox
from hub.core.events import Event, EventHandler, publish
from hub.routing import events
from hub.routing.hours import BusinessHours
from hub.runtime import Runtime
from hub.settings import Settings
from hub.store.models import AuditEvent, Complaint, Conversation, Intervention, Message
from hub.store.types import utcnow

BATCH = 500


async def check_overdue(runtime: Runtime, now: datetime | None = None) -> int:
    """Raise `intervention.overdue` once for each unfinished intervention past its due time."""
    now = now or utcnow()
    async with outbox.unit_of_work(runtime.factory, runtime.queue) as session:
        query = (select(Intervention).where(
            col(Intervention.status).in_(("todo", "doing")), col(Intervention.due_at) < now,
            col(Intervention.overdue_notified_at).is_(None),
        ).order_by(col(Intervention.id)).limit(BATCH))
        if not runtime.settings.is_sqlite:
            query = query.with_for_update(skip_locked=True)  # two cron runs never raise the same one
        items = list((await session.execute(query)).scalars())
        for item in items:
            item.overdue_notified_at = now
            complaint = await session.get(Complaint, item.complaint_id) if item.complaint_id else None
            data = {"intervention_id": item.id, "complaint_id": item.complaint_id, "team_id": item.team_id,
                    "agent_id": item.assignee_agent_id, "due_at": item.due_at.isoformat() if item.due_at else None}
            session.add(AuditEvent(actor="system", action="intervention.overdue", entity="intervention",
                                   entity_id=item.id, data=data))
            await publish(session, Event(events.INTERVENTION_OVERDUE, item.customer_id,
                                         complaint.conversation_id if complaint else None, team_id=item.team_id,
                                         data=data), tuple(runtime.handlers))
    return len(items)


def targets(settings: Settings, priority: str) -> tuple[int, int]:
    """Minutes of business time for (first response, resolution) at this priority."""
    pair = settings.sla_targets.get(priority) or settings.sla_targets.get("normal") or [240, 1440]
    return int(pair[0]), int(pair[1])


def due_times(conversation: Conversation, settings: Settings, hours: BusinessHours) -> tuple[datetime, datetime]:
    """When the first response and the resolution are due for this conversation."""
    first, resolution = targets(settings, conversation.priority)
    return hours.add(conversation.created_at, first), hours.add(conversation.created_at, resolution)


async def sla_status(session: AsyncSession, conversation: Conversation, settings: Settings,
                     now: datetime) -> dict[str, object]:
    """Due times and whether each target is met, breached or still running (for the inbox)."""
    hours = BusinessHours.parse(settings.business_hours, settings.business_timezone)
    first_due, resolution_due = due_times(conversation, settings, hours)
    replied = (await session.execute(select(func.min(col(Message.created_at))).where(
        col(Message.conversation_id) == conversation.id, col(Message.direction) == "out"))).scalar_one_or_none()

    def state(done_at: datetime | None, due: datetime) -> str:
        if done_at is not None:
            return "met" if done_at <= due else "breached"
        return "breached" if now > due else "running"

    resolved_at = conversation.updated_at if conversation.status == "resolved" else None
    return {"priority": conversation.priority,
            "first_response": {"due_at": first_due.isoformat(), "state": state(replied, first_due)},
            "resolution": {"due_at": resolution_due.isoformat(), "state": state(resolved_at, resolution_due)}}


async def _raised(session: AsyncSession, entity: str, ids: list[int]) -> set[tuple[int, str]]:
    rows = await session.execute(select(col(AuditEvent.entity_id), col(AuditEvent.data)).where(
        col(AuditEvent.entity) == entity, col(AuditEvent.entity_id).in_(ids), col(AuditEvent.action) == "sla.breached"))
    return {(int(entity_id), str(data.get("kind"))) for entity_id, data in rows.all()}


async def _breach(session: AsyncSession, handlers: tuple[EventHandler, ...], conversation: Conversation,
                  kind: str, due: datetime) -> None:
    data = {"kind": kind, "due_at": due.isoformat(), "priority": conversation.priority}
    session.add(AuditEvent(actor="system", action="sla.breached", entity="conversation",
                           entity_id=conversation.id, data=data))
    await publish(session, Event(events.SLA_BREACHED, conversation.customer_id, conversation.id,
                                 team_id=conversation.team_id, data=data), handlers)


async def _check_batch(session: AsyncSession, runtime: Runtime, batch: list[Conversation], now: datetime,
                       hours: BusinessHours) -> None:
    ids = [c.id for c in batch if c.id is not None]
    replied = dict((await session.execute(select(col(Message.conversation_id), func.min(col(Message.created_at))).where(
        col(Message.conversation_id).in_(ids), col(Message.direction) == "out")
        .group_by(col(Message.conversation_id)))).all())
    raised = await _raised(session, "conversation", ids)
    handlers = tuple(runtime.handlers)
    for conversation in batch:
        assert conversation.id is not None
        first_due, resolution_due = due_times(conversation, runtime.settings, hours)
        if conversation.id not in replied and now > first_due and (conversation.id, "first_response") not in raised:
            await _breach(session, handlers, conversation, "first_response", first_due)
        if now > resolution_due and (conversation.id, "resolution") not in raised:
            await _breach(session, handlers, conversation, "resolution", resolution_due)


async def check_sla(runtime: Runtime, now: datetime | None = None) -> None:
    """Raise `sla.breached` once per conversation and target missed (keyset batches of open ones)."""
    now = now or utcnow()
    hours = BusinessHours.parse(runtime.settings.business_hours, runtime.settings.business_timezone)
    after = 0
    while True:
        async with outbox.unit_of_work(runtime.factory, runtime.queue) as session:
            batch = list((await session.execute(select(Conversation).where(
                col(Conversation.status).in_(("open", "pending")), col(Conversation.id) > after)
                .order_by(col(Conversation.id)).limit(BATCH))).scalars())
            if not batch:
                return
            await _check_batch(session, runtime, batch, now, hours)
            after = batch[-1].id or after
