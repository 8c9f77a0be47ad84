"""Agent actions on a conversation: status (see ingest.set_status) and assignment."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from hub.core.events import CONVERSATION_ASSIGNED, Event, EventHandler, publish
from hub.core.ingest import set_status
from hub.store.models import AuditEvent, Conversation, TimelineEntry
from hub.store.types import utcnow

__all__ = ["assign", "set_status"]


async def assign(
    session: AsyncSession, conversation: Conversation, *, agent_id: int | None, team_id: int | None,
    actor: str, handlers: tuple[EventHandler, ...] = (),
) -> None:
    """Give the conversation to an agent and/or team (None unassigns), audited and on the timeline."""
    before = {"agent_id": conversation.assignee_id, "team_id": conversation.team_id}
    conversation.assignee_id = agent_id
    conversation.team_id = team_id if team_id is not None else conversation.team_id
    conversation.updated_at = utcnow()
    after = {"agent_id": conversation.assignee_id, "team_id": conversation.team_id}
    session.add(TimelineEntry(
        customer_id=conversation.customer_id, conversation_id=conversation.id, kind="assignment",
        channel=conversation.channel, summary=f"assigned to agent {agent_id} team {conversation.team_id}",
        data={"from": before, "to": after, "actor": actor},
    ))
    session.add(AuditEvent(actor=actor, action="conversation.assigned", entity="conversation",
                           entity_id=conversation.id, data={"from": before, "to": after}))
    await publish(session, Event(CONVERSATION_ASSIGNED, conversation.customer_id, conversation.id,
                                 team_id=conversation.team_id, data={**after, "previous": before, "actor": actor}),
                  handlers)
