"""Tell people by email (the assignee, the team, or listed addresses); sent later via the outbox."""

from __future__ import annotations

from pydantic import Field
from sqlmodel import col, select

from hub.core import outbox
from hub.routing import outbound
from hub.routing.actions.base import ActionContext, Params, action, fail
from hub.store.models import Agent, TeamMember

KIND = "notify_email"


class NotifyEmail(Params):
    to: list[str] = Field(min_length=1, max_length=20, description="addresses, 'assignee' or 'team'")
    subject: str = Field(min_length=1, max_length=300)
    body: str = Field(default="{{ event }} for customer {{ customer_id }}", max_length=10_000)


async def _recipients(ctx: ActionContext, wanted: list[str]) -> list[str]:
    conversation = await ctx.conversation()
    found: list[str] = []
    for entry in wanted:
        if entry == "assignee" and conversation and conversation.assignee_id:
            agent = await ctx.session.get(Agent, conversation.assignee_id)
            found += [agent.email] if agent else []
        elif entry == "team" and (team := ctx.event.team_id or (conversation.team_id if conversation else None)):
            rows = await ctx.session.execute(
                select(col(Agent.email)).join(TeamMember, col(TeamMember.agent_id) == col(Agent.id))
                .where(col(TeamMember.team_id) == team, col(Agent.active).is_(True)))
            found += list(rows.scalars())
        elif "@" in entry:
            found.append(entry)
    return list(dict.fromkeys(found))


@action("notify_email", "email the assignee, the team or listed addresses about the event", NotifyEmail)
async def run(ctx: ActionContext, params: NotifyEmail) -> None:
    recipients = await _recipients(ctx, params.to)
    if not recipients:
        return
    values = {"event": ctx.event.type, "customer_id": ctx.event.customer_id,
              "conversation_id": ctx.event.conversation_id, "data": ctx.event.data}
    try:
        subject, body = outbound.render(params.subject, values), outbound.render(params.body, values)
    except outbound.RenderError as exc:
        raise fail(str(exc), "body") from None
    for to in recipients:  # one row each, so a retry never mails someone twice
        await outbox.add(ctx.session, KIND, {"v": 1, "to": [to], "subject": subject, "body": body})
