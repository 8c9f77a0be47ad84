"""Complaints and their interventions: opening, lifecycles, and resolving when the work is done."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col, select

from hub.core.events import Event, EventHandler, publish
from hub.routing import events
from hub.routing.errors import TransitionError
from hub.store.models import AuditEvent, Case, Complaint, Intervention, TimelineEntry
from hub.store.types import utcnow

SEVERITIES = ("low", "normal", "high", "critical")
COMPLAINT_FLOW: dict[str, tuple[str, ...]] = {
    "open": ("in_progress", "resolved", "rejected"),
    "in_progress": ("resolved", "rejected"),
    "resolved": (),
    "rejected": (),
}
INTERVENTION_FLOW: dict[str, tuple[str, ...]] = {
    "todo": ("doing", "done", "cancelled"),
    "doing": ("todo", "done", "cancelled"),
    "done": (),
    "cancelled": (),
}
OPEN_COMPLAINT = ("open", "in_progress")
FINISHED_WORK = ("done", "cancelled")


async def open_case_of(session: AsyncSession, customer_id: int) -> Case | None:
    """The customer's newest case that is not closed."""
    found = await session.execute(
        select(Case).where(col(Case.customer_id) == customer_id, col(Case.closed_at).is_(None))
        .order_by(col(Case.id).desc()).limit(1)
    )
    return found.scalar_one_or_none()


async def open_complaint(
    session: AsyncSession, *, customer_id: int, title: str, opened_by: str, severity: str = "normal",
    category: str | None = None, conversation_id: int | None = None, message_id: int | None = None,
    sla_due_at: datetime | None = None, handlers: tuple[EventHandler, ...] = (),
) -> Complaint:
    """Open a complaint linked to the customer's open case, audited, and publish `complaint.opened`."""
    case = await open_case_of(session, customer_id)
    complaint = Complaint(
        customer_id=customer_id, case_id=case.id if case else None, conversation_id=conversation_id,
        message_id=message_id, title=title[:300], category=category, severity=severity, opened_by=opened_by,
        sla_due_at=sla_due_at,
    )
    session.add(complaint)
    await session.flush()
    data = {"complaint_id": complaint.id, "severity": severity, "category": category,
            "case_id": complaint.case_id}
    session.add(AuditEvent(actor=opened_by, action="complaint.opened", entity="complaint",
                           entity_id=complaint.id, data=data))
    session.add(TimelineEntry(customer_id=customer_id, conversation_id=conversation_id, kind="complaint",
                              ref_id=complaint.id, summary=f"complaint opened: {complaint.title}"[:200], data=data))
    await publish(session, Event(events.COMPLAINT_OPENED, customer_id, conversation_id, message_id,
                                 data=data), handlers)
    return complaint


async def add_intervention(
    session: AsyncSession, *, complaint: Complaint | None, customer_id: int | None, description: str,
    actor: str, team_id: int | None = None, agent_id: int | None = None, due_at: datetime | None = None,
    handlers: tuple[EventHandler, ...] = (),
) -> Intervention:
    """A task for one agent or team, usually under a complaint."""
    item = Intervention(
        complaint_id=complaint.id if complaint else None, customer_id=customer_id, team_id=team_id,
        assignee_agent_id=agent_id, description=description, due_at=due_at,
    )
    session.add(item)
    await session.flush()
    data = {"intervention_id": item.id, "complaint_id": item.complaint_id, "team_id": team_id, "agent_id": agent_id}
    session.add(AuditEvent(actor=actor, action="intervention.created", entity="intervention",
                           entity_id=item.id, data=data))
    conversation_id = complaint.conversation_id if complaint else None
    await publish(session, Event(events.INTERVENTION_CREATED, customer_id, conversation_id, team_id=team_id,
                                 data=data), handlers)
    return item


async def interventions_of(session: AsyncSession, complaint_id: int) -> list[Intervention]:
    found = await session.execute(
        select(Intervention).where(col(Intervention.complaint_id) == complaint_id).order_by(col(Intervention.id))
    )
    return list(found.scalars())


def _check(what: str, flow: dict[str, tuple[str, ...]], current: str, target: str) -> None:
    if target not in flow.get(current, ()):
        raise TransitionError(what, current, target, flow.get(current, ()))


async def set_complaint_status(
    session: AsyncSession, complaint: Complaint, status: str, *, actor: str, role: str = "system",
    reason: str | None = None, handlers: tuple[EventHandler, ...] = (),
) -> None:
    """Move a complaint; it resolves only when its interventions are done, or an admin says why not."""
    _check("complaint", COMPLAINT_FLOW, complaint.status, status)
    assert complaint.id is not None
    if status == "resolved":
        pending = [i.id for i in await interventions_of(session, complaint.id) if i.status not in FINISHED_WORK]
        if pending and not (role == "admin" and reason):
            raise TransitionError(
                "complaint", complaint.status, status, COMPLAINT_FLOW[complaint.status],
                why=f"interventions {pending} are not done; an admin may resolve anyway with a reason",
            )
    previous, complaint.status = complaint.status, status
    if status in ("resolved", "rejected"):
        complaint.resolved_at = utcnow()
        complaint.resolution = reason or complaint.resolution
    data: dict[str, Any] = {"complaint_id": complaint.id, "from": previous, "to": status, "reason": reason,
                            "case_id": complaint.case_id}
    session.add(AuditEvent(actor=actor, action="complaint.status", entity="complaint", entity_id=complaint.id,
                           data=data))
    await publish(session, Event(events.COMPLAINT_STATUS_CHANGED, complaint.customer_id,
                                 complaint.conversation_id, data=data), handlers)
    if status in ("resolved", "rejected"):
        await publish(session, Event(events.COMPLAINT_RESOLVED, complaint.customer_id,
                                     complaint.conversation_id, data=data), handlers)


async def set_intervention_status(
    session: AsyncSession, item: Intervention, status: str, *, actor: str, note: str | None = None,
    handlers: tuple[EventHandler, ...] = (),
) -> None:
    """Move an intervention; the last one done resolves its complaint."""
    _check("intervention", INTERVENTION_FLOW, item.status, status)
    previous, item.status = item.status, status
    item.done_at = utcnow() if status in FINISHED_WORK else None
    if note:
        add_note(item, actor, note)
    data = {"intervention_id": item.id, "complaint_id": item.complaint_id, "from": previous, "to": status}
    session.add(AuditEvent(actor=actor, action="intervention.status", entity="intervention", entity_id=item.id,
                           data=data))
    await publish(session, Event(events.INTERVENTION_STATUS_CHANGED, item.customer_id, team_id=item.team_id,
                                 data=data), handlers)
    if item.complaint_id is not None:
        complaint = await session.get(Complaint, item.complaint_id)
        if complaint is not None:
            await _follow(session, complaint, status, actor, handlers)


async def _follow(
    session: AsyncSession, complaint: Complaint, status: str, actor: str, handlers: tuple[EventHandler, ...]
) -> None:
    """Keep the complaint in step with its work: started when work starts, resolved when all is done."""
    if status == "doing" and complaint.status == "open":
        await set_complaint_status(session, complaint, "in_progress", actor=actor, handlers=handlers)
        return
    if status not in FINISHED_WORK or complaint.status not in OPEN_COMPLAINT:
        return
    assert complaint.id is not None
    work = await interventions_of(session, complaint.id)
    if all(i.status in FINISHED_WORK for i in work) and any(i.status == "done" for i in work):
        await set_complaint_status(session, complaint, "resolved", actor=actor, handlers=handlers,
                                   reason="all interventions done")


def add_note(item: Intervention, author: str, text: str) -> dict[str, Any]:
    """Append a note (the JSON list is replaced, so the ORM sees the change)."""
    note = {"author": author, "text": text, "at": utcnow().isoformat()}
    item.notes = [*item.notes, note]
    return note


def allowed_statuses(flow: dict[str, tuple[str, ...]], current: str) -> Sequence[str]:
    return flow.get(current, ())
