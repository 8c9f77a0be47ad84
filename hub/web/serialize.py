"""Rows to JSON-ready dicts: the API's response shapes in one place."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from hub.store.models import Agent, Conversation, Customer, Identity, Message, TimelineEntry


def when(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def agent(row: Agent) -> dict[str, Any]:
    return {"id": row.id, "email": row.email, "name": row.name, "role": row.role, "language": row.language,
            "active": row.active}


def customer(row: Customer, identities: list[Identity] | None = None) -> dict[str, Any]:
    data: dict[str, Any] = {
        "id": row.id, "display_name": row.display_name, "language": row.language, "timezone": row.timezone,
        "lifecycle_stage": row.lifecycle_stage, "tags": row.tags, "attributes": row.attributes,
        "last_contact_at": when(row.last_contact_at), "created_at": when(row.created_at),
    }
    if identities is not None:
        data["identities"] = [{"kind": i.kind, "value": i.value} for i in identities]
    return data


def conversation(row: Conversation) -> dict[str, Any]:
    return {
        "id": row.id, "customer_id": row.customer_id, "channel": row.channel, "subject": row.subject,
        "status": row.status, "assignee_id": row.assignee_id, "team_id": row.team_id, "priority": row.priority,
        "tags": row.tags, "snoozed_until": when(row.snoozed_until), "created_at": when(row.created_at),
        "last_message_at": when(row.last_message_at),
    }


def message(row: Message) -> dict[str, Any]:
    return {
        "id": row.id, "conversation_id": row.conversation_id, "direction": row.direction, "channel": row.channel,
        "sender": row.sender, "recipient": row.recipient, "subject": row.subject, "body_text": row.body_text,
        "visible_text": row.visible_text, "flags": row.flags, "delivery_status": row.delivery_status,
        "delivery_detail": row.delivery_detail, "author_agent_id": row.author_agent_id,
        "created_at": when(row.created_at),
    }


def timeline_entry(row: TimelineEntry) -> dict[str, Any]:
    return {
        "id": row.id, "kind": row.kind, "channel": row.channel, "conversation_id": row.conversation_id,
        "ref_id": row.ref_id, "summary": row.summary, "data": row.data, "occurred_at": when(row.occurred_at),
    }
