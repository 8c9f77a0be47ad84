"""Answer from a template, never to auto-replies or bulk mail, at most once per conversation per period."""

from __future__ import annotations

from datetime import timedelta

from pydantic import Field
from sqlmodel import col, select

from hub.routing import outbound
from hub.routing.actions.base import ActionContext, Params, action, fail
from hub.store.models import AuditEvent

# Flags the email parser sets on machine-written mail; answering those starts mail loops.
NEVER_ANSWER = frozenset({"autoreply", "bulk", "bounce"})


class AutoReply(Params):
    template: str = Field(min_length=1, max_length=200)
    period_hours: float | None = Field(default=None, ge=0, le=24 * 365)


async def _replied_lately(ctx: ActionContext, conversation_id: int, hours: float) -> bool:
    found = await ctx.session.execute(
        select(col(AuditEvent.id)).where(
            col(AuditEvent.entity) == "conversation", col(AuditEvent.entity_id) == conversation_id,
            col(AuditEvent.action) == "rule.auto_reply", col(AuditEvent.at) >= ctx.now - timedelta(hours=hours),
        ).limit(1)
    )
    return found.first() is not None


@action("auto_reply", "reply from a template (not to auto-replies or bulk mail; once per period)", AutoReply)
async def run(ctx: ActionContext, params: AutoReply) -> None:
    conversation, message, customer = await ctx.conversation(), await ctx.message(), await ctx.customer()
    if conversation is None or conversation.id is None or customer is None:
        raise fail("this event has no conversation")
    if message is not None and NEVER_ANSWER & set(message.flags):
        return
    hours = params.period_hours if params.period_hours is not None else ctx.settings.auto_reply_period_hours
    if await _replied_lately(ctx, conversation.id, hours):
        return
    template = await outbound.find_template(ctx.session, params.template, conversation.channel, customer.language)
    if template is None:
        raise fail(f"no template {params.template!r} for {conversation.channel}", "template")
    values = {"name": customer.display_name, "subject": conversation.subject or ""}
    try:
        body = outbound.render(template.body_text, values)
        subject = outbound.render(template.subject, values) if template.subject else None
    except outbound.RenderError as exc:
        raise fail(str(exc), "template") from None
    sent = await outbound.send(ctx.session, conversation, body, settings=ctx.settings, subject=subject,
                               handlers=ctx.handlers)
    ctx.session.add(AuditEvent(actor=ctx.actor, action="rule.auto_reply", entity="conversation",
                               entity_id=conversation.id, data={"message_id": sent.id, "template": template.name},
                               at=ctx.now))
