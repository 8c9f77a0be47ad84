"""Set the conversation's status (open, pending, snoozed, resolved)."""

from __future__ import annotations

from typing import Literal

from hub.core import conversations
from hub.routing.actions.base import ActionContext, Params, action, fail


class SetStatus(Params):
    status: Literal["open", "pending", "snoozed", "resolved"]


@action("set_status", "set the conversation's status", SetStatus)
async def run(ctx: ActionContext, params: SetStatus) -> None:
    conversation = await ctx.conversation()
    if conversation is None:
        raise fail("this event has no conversation")
    await conversations.set_status(ctx.session, conversation, params.status, actor=ctx.actor,
                                   handlers=ctx.handlers)
