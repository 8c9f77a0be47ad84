"""The facts a rule condition sees: message, conversation, customer, case, time and the event."""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime
from typing import Any

from sqlalchemy import func
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col, select

from hub.core.events import Event
from hub.routing.complaints import OPEN_COMPLAINT, open_case_of
from hub.routing.conditions import NOW
from hub.routing.hours import BusinessHours
from hub.store.models import Agent, Case, Complaint, Conversation, Customer, Intervention, Message, Team

MACHINE_FLAGS = frozenset({"autoreply", "bulk", "bounce"})


def message_facts(message: Message) -> dict[str, Any]:
    return {
        "message.channel": message.channel,
        "message.direction": {"in": "inbound", "out": "outbound"}.get(message.direction, message.direction),
        "message.from": message.sender, "message.to": message.recipient, "message.subject": message.subject,
        "message.body": message.body_text, "message.visible_text": message.visible_text or message.body_text,
        "message.language": message.headers.get("language"),
        "message.has_attachment": bool(message.headers.get("attachments")) or "attachment" in message.flags,
        "message.is_autoreply": bool(MACHINE_FLAGS & set(message.flags)),
    }


def conversation_facts(conversation: Conversation, now: datetime, assignee: str | None,
                       team: str | None) -> dict[str, Any]:
    return {
        "conversation.status": conversation.status, "conversation.assignee": assignee,
        "conversation.team": team, "conversation.tags": list(conversation.tags),
        "conversation.priority": conversation.priority,
        "conversation.age": (now - conversation.created_at).total_seconds(),
        "conversation.waiting_time": (now - conversation.last_message_at).total_seconds(),
    }


def customer_facts(customer: Customer, open_complaints: int | None) -> dict[str, Any]:
    return {
        "customer.lifecycle_stage": customer.lifecycle_stage, "customer.tags": list(customer.tags),
        "customer.attributes": dict(customer.attributes), "customer.open_complaints": open_complaints,
        "customer.language": customer.language, "customer.last_contact_at": customer.last_contact_at,
        "customer.timezone": customer.timezone,
    }


def time_facts(now: datetime, hours: BusinessHours) -> dict[str, Any]:
    local = now.astimezone(hours.tz)
    return {"time.business_hours": hours.is_open(now), "time.weekday": local.weekday(), "time.hour": local.hour,
            NOW: now}


def event_facts(event: Event) -> dict[str, Any]:
    data = event.data
    return {
        "event.type": event.type, "event.depth": event.depth,
        "event.data": {k: v if isinstance(v, str) else str(v) for k, v in data.items() if v is not None},
        "case.previous_state": data.get("from") if event.type == "case.state_changed" else None,
        "survey.score": data.get("score"), "sla.kind": data.get("kind"),
    }


def _wants(needed: Collection[str] | None, prefix: str) -> bool:
    return needed is None or any(name.startswith(prefix) for name in needed)


async def _conversation(session: AsyncSession, conversation: Conversation, now: datetime,
                        needed: Collection[str] | None) -> dict[str, Any]:
    assignee = team = None
    if conversation.assignee_id and _wants(needed, "conversation.assignee"):
        agent = await session.get(Agent, conversation.assignee_id)
        assignee = agent.email if agent else None
    if conversation.team_id and _wants(needed, "conversation.team"):
        row = await session.get(Team, conversation.team_id)
        team = row.name if row else None
    return conversation_facts(conversation, now, assignee, team)


async def _customer(session: AsyncSession, customer: Customer, needed: Collection[str] | None) -> dict[str, Any]:
    count = None
    if _wants(needed, "customer.open_complaints"):
        count = int((await session.execute(
            select(func.count()).select_from(Complaint)
            .where(col(Complaint.customer_id) == customer.id, col(Complaint.status).in_(OPEN_COMPLAINT))
        )).scalar_one())
    facts = customer_facts(customer, count)
    if _wants(needed, "case."):
        case = await open_case_of(session, customer.id) if customer.id is not None else None
        facts.update(case_facts(case))
    return facts


def case_facts(case: Case | None) -> dict[str, Any]:
    return {"case.workflow": case.workflow if case else None, "case.state": case.state if case else None}


async def _subject(session: AsyncSession, event: Event) -> dict[str, Any]:
    """Facts about the complaint or intervention the event is about."""
    facts: dict[str, Any] = {}
    if (item_id := event.data.get("intervention_id")) is not None:
        item = await session.get(Intervention, item_id)
        if item is not None:
            team = await session.get(Team, item.team_id) if item.team_id else None
            facts.update({"intervention.status": item.status, "intervention.team": team.name if team else None})
    if (complaint_id := event.data.get("complaint_id")) is not None:
        complaint = await session.get(Complaint, complaint_id)
        if complaint is not None:
            facts.update({"complaint.severity": complaint.severity, "complaint.category": complaint.category,
                          "complaint.status": complaint.status})
    return facts


async def load_facts(
    session: AsyncSession, event: Event, *, now: datetime, hours: BusinessHours,
    needed: Collection[str] | None = None,
) -> dict[str, Any]:
    """Everything the rules for this event may test; `needed` (field names) skips unused queries."""
    facts = {**time_facts(now, hours), **event_facts(event)}
    if event.message_id is not None and (message := await session.get(Message, event.message_id)):
        facts.update(message_facts(message))
    if event.conversation_id is not None and (conversation := await session.get(Conversation, event.conversation_id)):
        facts.update(await _conversation(session, conversation, now, needed))
    if event.customer_id is not None and (customer := await session.get(Customer, event.customer_id)):
        facts.update(await _customer(session, customer, needed))
        if facts.get("message.language") is None and "message.channel" in facts:
            facts["message.language"] = customer.language
    if _wants(needed, "complaint.") or _wants(needed, "intervention."):
        facts.update(await _subject(session, event))
    return facts
