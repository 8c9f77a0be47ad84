"""Rows to JSON-ready dicts, built through the response models of schemas.py (one definition)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from hub.store.models import Agent, CallLog, Conversation, Customer, Identity, Message, TimelineEntry
from hub.web import schemas


def when(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def agent(row: Agent) -> dict[str, Any]:
    return schemas.AgentOut.model_validate(row).model_dump(mode="json")


def customer(row: Customer, identities: list[Identity] | None = None) -> dict[str, Any]:
    out = schemas.CustomerOut.model_validate(row)
    if identities is not None:
        out.identities = [schemas.IdentityOut.model_validate(i) for i in identities]
    return out.model_dump(mode="json", exclude={"identities"} if identities is None else None)


def conversation(row: Conversation) -> dict[str, Any]:
    return schemas.ConversationOut.model_validate(row).model_dump(mode="json")


def message_out(row: Message) -> schemas.MessageOut:
    out = schemas.MessageOut.model_validate(row)
    out.has_html = bool(row.body_html)
    return out


def message(row: Message) -> dict[str, Any]:
    return message_out(row).model_dump(mode="json")


def call_data(row: CallLog) -> dict[str, Any]:
    return {"id": row.id, "direction": row.direction, "from": row.from_number, "to": row.to_number,
            "duration_s": row.duration_s, "disposition": row.disposition, "recording_url": row.recording_url,
            "started_at": when(row.started_at)}


def timeline_out(row: TimelineEntry, msg: Message | None = None, call: CallLog | None = None
                 ) -> schemas.TimelineEntryOut:
    out = schemas.TimelineEntryOut.model_validate(row)
    out.message = message_out(msg) if msg is not None else None
    out.call = call_data(call) if call is not None else None
    return out


def timeline_entry(row: TimelineEntry) -> dict[str, Any]:
    return timeline_out(row).model_dump(mode="json")
