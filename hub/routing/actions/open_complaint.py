"""Open a complaint for the customer (once per conversation while one is open), with an SLA due time."""

from __future__ import annotations

from datetime import timedelta
from typing import Literal

from pydantic import Field
from sqlmodel import col, select

from hub.routing import complaints
from hub.routing.actions.base import ActionContext, Params, action, fail
from hub.store.models import Complaint

# Hours to resolve by severity, unless the rule says otherwise.
SLA_HOURS = {"low": 72.0, "normal": 24.0, "high": 4.0, "critical": 1.0}


class OpenComplaint(Params):
    severity: Literal["low", "normal", "high", "critical"] = "normal"
    category: str | None = Field(default=None, max_length=60)
    title: str | None = Field(default=None, max_length=300)
    sla_hours: float | None = Field(default=None, gt=0, le=24 * 90)


async def _already_open(ctx: ActionContext, conversation_id: int | None) -> Complaint | None:
    if conversation_id is None:
        return None
    found = await ctx.session.execute(
        select(Complaint).where(col(Complaint.conversation_id) == conversation_id,
                                col(Complaint.status).in_(complaints.OPEN_COMPLAINT))
        .order_by(col(Complaint.id).desc()).limit(1)
    )
    return found.scalar_one_or_none()


@action("open_complaint", "open a complaint with a severity and an SLA due time", OpenComplaint)
async def run(ctx: ActionContext, params: OpenComplaint) -> None:
    if ctx.event.customer_id is None:
        raise fail("this event has no customer")
    if (existing := await _already_open(ctx, ctx.event.conversation_id)) is not None:
        # A follow-up message in the same thread belongs to the complaint already open.
        ctx.state["complaint_id"] = existing.id
        return
    message = await ctx.message()
    title = params.title or (message.subject if message and message.subject else None) or \
        (message.body_text[:120] if message else "complaint")
    hours = params.sla_hours or SLA_HOURS[params.severity]
    complaint = await complaints.open_complaint(
        ctx.session, customer_id=ctx.event.customer_id, title=title, opened_by=ctx.actor, severity=params.severity,
        category=params.category, conversation_id=ctx.event.conversation_id, message_id=ctx.event.message_id,
        sla_due_at=ctx.now + timedelta(hours=hours), handlers=ctx.handlers,
    )
    ctx.state["complaint_id"] = complaint.id
    ctx.state["complaint_new"] = True
