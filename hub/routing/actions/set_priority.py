"""Set the conversation's priority, which also picks its SLA targets."""

from __future__ import annotations

from typing import Literal

from hub.routing.actions.base import ActionContext, Params, action, fail
from hub.store.models import AuditEvent
from hub.store.types import utcnow


class SetPriority(Params):
    priority: Literal["low", "normal", "high", "urgent"]


@action("set_priority", "set the conversation's priority (low, normal, high, urgent)", SetPriority)
async def run(ctx: ActionContext, params: SetPriority) -> None:
    conversation = await ctx.conversation()
    if conversation is None:
        raise fail("this event has no conversation")
    before, conversation.priority, conversation.updated_at = conversation.priority, params.priority, utcnow()
    ctx.session.add(AuditEvent(actor=ctx.actor, action="conversation.priority", entity="conversation",
                               entity_id=conversation.id, data={"from": before, "to": params.priority}))
