"""What the conversation view shows: the customer's cross-channel timeline and the customer panel."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col, select

from hub.core.timeline import timeline
from hub.routing.workflows import WORKFLOWS
from hub.store.models import (
    CallLog,
    Case,
    Complaint,
    Conversation,
    Customer,
    Identity,
    Intervention,
    Message,
    StageChange,
)
from hub.web import schemas, serialize
from hub.web.scope import Scope

OPEN_WORK = ("todo", "doing")
OPEN_COMPLAINTS = ("open", "in_progress")


async def load_conversation(session: AsyncSession, scope: Scope, conversation_id: int) -> Conversation | None:
    """The conversation when it exists and this agent may see it (others get the same None: no probing)."""
    conversation = await session.get(Conversation, conversation_id)
    if conversation is None or not scope.sees(conversation):
        return None
    return conversation


async def timeline_page(session: AsyncSession, customer_id: int, *, before: str | None,
                        limit: int, scope: Scope) -> schemas.TimelinePage:
    """A page of the customer's timeline (newest first), only what `scope` may see, with its messages and calls."""
    page = await timeline(session, customer_id, before=before, limit=limit, visible=scope.conversation_clause())
    message_ids = [e.ref_id for e in page.items if e.kind in ("message", "note") and e.ref_id is not None]
    call_ids = [e.ref_id for e in page.items if e.kind == "call" and e.ref_id is not None]
    messages = {m.id: m for m in (await session.execute(
        select(Message).where(col(Message.id).in_(message_ids)))).scalars()} if message_ids else {}
    calls = {c.id: c for c in (await session.execute(
        select(CallLog).where(col(CallLog.id).in_(call_ids)))).scalars()} if call_ids else {}
    items = [serialize.timeline_out(e, messages.get(e.ref_id) if e.kind in ("message", "note") else None,
                                    calls.get(e.ref_id) if e.kind == "call" else None) for e in page.items]
    return schemas.TimelinePage(items=items, next_before=page.next_cursor)


async def customer_panel(session: AsyncSession, customer: Customer, role: str) -> schemas.CustomerPanel:
    """Identities, lifecycle stage with its history, the open case and its next states, complaints, work."""
    assert customer.id is not None
    cid = customer.id
    panel = schemas.CustomerPanel.model_validate(customer)
    panel.identities = [schemas.IdentityOut.model_validate(i) for i in (await session.execute(
        select(Identity).where(Identity.customer_id == cid).order_by(col(Identity.id)))).scalars()]
    panel.stage_history = [schemas.StageChangeOut.model_validate(s) for s in (await session.execute(
        select(StageChange).where(StageChange.customer_id == cid)
        .order_by(col(StageChange.changed_at).desc(), col(StageChange.id).desc()).limit(20))).scalars()]
    case = (await session.execute(select(Case).where(Case.customer_id == cid, col(Case.closed_at).is_(None))
                                  .order_by(col(Case.opened_at).desc()).limit(1))).scalar_one_or_none()
    if case is not None:
        panel.open_case = schemas.CaseOut.model_validate(case)
        flow = WORKFLOWS.get(case.workflow)
        panel.open_case.next_states = flow.allowed(case.state, role) if flow else []
    panel.complaints = [schemas.ComplaintOut.model_validate(c) for c in (await session.execute(
        select(Complaint).where(Complaint.customer_id == cid, col(Complaint.status).in_(OPEN_COMPLAINTS))
        .order_by(col(Complaint.opened_at).desc()).limit(20))).scalars()]
    panel.interventions = [schemas.InterventionOut.model_validate(i) for i in (await session.execute(
        select(Intervention).where(Intervention.customer_id == cid)
        .order_by(col(Intervention.status).in_(OPEN_WORK).desc(), col(Intervention.due_at)).limit(20))).scalars()]
    return panel


async def conversation_messages(session: AsyncSession, conversation_id: int, limit: int = 500) -> list[Message]:
    return list((await session.execute(
        select(Message).where(Message.conversation_id == conversation_id)
        .order_by(col(Message.created_at), col(Message.id)).limit(limit))).scalars())
