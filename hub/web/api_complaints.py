"""Complaints, interventions ("my interventions"), cases with their transitions, surveys and SLA."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from aiohttp import web
from pydantic import Field
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col, or_, select

from hub.keys import RUNTIME
from hub.routing import checks, complaints, workflows
from hub.routing.errors import NotAllowed, TransitionError
from hub.store.models import (
    Agent,
    Case,
    CaseTransition,
    Complaint,
    Conversation,
    Customer,
    Intervention,
    Survey,
    TeamMember,
)
from hub.store.types import utcnow
from hub.web.auth import current_agent, requires
from hub.web.errors import ApiError, bad_request, conflict, not_found, parse_body
from hub.web.params import choice, int_param, limit, path_id
from hub.web.schemas import Body

STAFF = ("admin", "agent")


class ComplaintCreate(Body):
    customer_id: int = Field(gt=0)
    title: str = Field(min_length=1, max_length=300)
    severity: Literal["low", "normal", "high", "critical"] = "normal"
    category: str | None = Field(default=None, max_length=60)
    conversation_id: int | None = Field(default=None, gt=0)
    sla_due_at: datetime | None = None


class ComplaintStatus(Body):
    status: Literal["open", "in_progress", "resolved", "rejected"]
    reason: str | None = Field(default=None, max_length=2000)


class InterventionCreate(Body):
    description: str = Field(min_length=1, max_length=2000)
    team_id: int | None = Field(default=None, gt=0)
    agent_id: int | None = Field(default=None, gt=0)
    due_at: datetime | None = None


class InterventionStatus(Body):
    status: Literal["todo", "doing", "done", "cancelled"]
    note: str | None = Field(default=None, max_length=5000)


class NoteBody(Body):
    text: str = Field(min_length=1, max_length=5000)


class CaseCreate(Body):
    customer_id: int = Field(gt=0)
    workflow: str = Field(default="hotel_stay", max_length=60)


class CaseMove(Body):
    to: str = Field(min_length=1, max_length=60)
    reason: str | None = Field(default=None, max_length=2000)


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def complaint_json(c: Complaint) -> dict[str, Any]:
    return {"id": c.id, "customer_id": c.customer_id, "case_id": c.case_id, "conversation_id": c.conversation_id,
            "message_id": c.message_id, "title": c.title, "category": c.category, "severity": c.severity,
            "status": c.status, "opened_by": c.opened_by, "resolution": c.resolution,
            "sla_due_at": _iso(c.sla_due_at), "opened_at": _iso(c.opened_at), "resolved_at": _iso(c.resolved_at),
            "allowed": list(complaints.COMPLAINT_FLOW.get(c.status, ()))}


def intervention_json(i: Intervention, now: datetime | None = None) -> dict[str, Any]:
    now = now or utcnow()
    return {"id": i.id, "complaint_id": i.complaint_id, "customer_id": i.customer_id, "team_id": i.team_id,
            "assignee_agent_id": i.assignee_agent_id, "description": i.description, "status": i.status,
            "due_at": _iso(i.due_at), "overdue": bool(i.due_at and i.due_at < now and i.status in ("todo", "doing")),
            "notes": i.notes, "created_at": _iso(i.created_at), "done_at": _iso(i.done_at),
            "allowed": list(complaints.INTERVENTION_FLOW.get(i.status, ()))}


def _transition_error(exc: TransitionError) -> ApiError:
    return conflict(str(exc), current=exc.current, target=exc.target, allowed=exc.allowed)


async def _get(session: AsyncSession, model: type[Any], item_id: int, what: str) -> Any:
    row = await session.get(model, item_id)
    if row is None:
        raise not_found(what)
    return row


@requires(*STAFF)
async def list_complaints(request: web.Request) -> web.Response:
    """Newest first, keyset on id: pass `before` = the last id of the previous page."""
    size = limit(request)
    query = select(Complaint).order_by(col(Complaint.id).desc()).limit(size + 1)
    if status := choice(request, "status", tuple(complaints.COMPLAINT_FLOW)):
        query = query.where(col(Complaint.status) == status)
    if customer_id := int_param(request, "customer_id"):
        query = query.where(col(Complaint.customer_id) == customer_id)
    if before := int_param(request, "before"):
        query = query.where(col(Complaint.id) < before)
    async with request.app[RUNTIME].factory() as session:
        rows = list((await session.execute(query)).scalars())
    page = rows[:size]
    more = len(rows) > size and page
    return web.json_response({"items": [complaint_json(c) for c in page],
                              "next_before": page[-1].id if more else None})


@requires(*STAFF)
async def create_complaint(request: web.Request) -> web.Response:
    body = await parse_body(request, ComplaintCreate)
    runtime = request.app[RUNTIME]
    async with runtime.factory() as session, session.begin():
        if await session.get(Customer, body.customer_id) is None:
            raise bad_request(f"no customer with id {body.customer_id}", "customer_id")
        if body.conversation_id is not None and await session.get(Conversation, body.conversation_id) is None:
            raise bad_request(f"no conversation with id {body.conversation_id}", "conversation_id")
        complaint = await complaints.open_complaint(
            session, customer_id=body.customer_id, title=body.title, opened_by=current_agent(request).email,
            severity=body.severity, category=body.category, conversation_id=body.conversation_id,
            sla_due_at=body.sla_due_at, handlers=tuple(runtime.handlers))
    return web.json_response(complaint_json(complaint), status=201)


@requires(*STAFF)
async def get_complaint(request: web.Request) -> web.Response:
    async with request.app[RUNTIME].factory() as session:
        complaint = await _get(session, Complaint, path_id(request), "complaint")
        work = await complaints.interventions_of(session, complaint.id)
    return web.json_response({**complaint_json(complaint), "interventions": [intervention_json(i) for i in work]})


@requires(*STAFF)
async def set_complaint_status(request: web.Request) -> web.Response:
    """409 lists the allowed statuses; resolving with open work needs an admin and a reason."""
    body = await parse_body(request, ComplaintStatus)
    runtime, agent = request.app[RUNTIME], current_agent(request)
    async with runtime.factory() as session, session.begin():
        complaint = await _get(session, Complaint, path_id(request), "complaint")
        try:
            await complaints.set_complaint_status(session, complaint, body.status, actor=agent.email, role=agent.role,
                                                  reason=body.reason, handlers=tuple(runtime.handlers))
        except TransitionError as exc:
            raise _transition_error(exc) from None
    return web.json_response(complaint_json(complaint))


@requires(*STAFF)
async def add_intervention(request: web.Request) -> web.Response:
    body = await parse_body(request, InterventionCreate)
    if body.team_id is None and body.agent_id is None:
        raise bad_request("give a team_id or an agent_id", "team_id")
    runtime = request.app[RUNTIME]
    async with runtime.factory() as session, session.begin():
        complaint = await _get(session, Complaint, path_id(request), "complaint")
        if body.agent_id is not None and await session.get(Agent, body.agent_id) is None:
            raise bad_request(f"no agent with id {body.agent_id}", "agent_id")
        item = await complaints.add_intervention(
            session, complaint=complaint, customer_id=complaint.customer_id, description=body.description,
            actor=current_agent(request).email, team_id=body.team_id, agent_id=body.agent_id, due_at=body.due_at,
            handlers=tuple(runtime.handlers))
    return web.json_response(intervention_json(item), status=201)


async def _my_teams(session: AsyncSession, agent_id: int | None) -> list[int]:
    rows = await session.execute(select(TeamMember.team_id).where(TeamMember.agent_id == agent_id))
    return list(rows.scalars())


@requires(*STAFF)
async def list_interventions(request: web.Request) -> web.Response:
    """My interventions (mine or my teams'), unfinished first by due time; `status` filters."""
    agent = current_agent(request)
    status = choice(request, "status", tuple(complaints.INTERVENTION_FLOW))
    async with request.app[RUNTIME].factory() as session:
        rows = await my_interventions(session, agent, status, limit(request))
        now = utcnow()
        return web.json_response({"items": [intervention_json(i, now) for i in rows]})


async def my_interventions(session: AsyncSession, agent: Agent, status: str | None, size: int) -> list[Intervention]:
    """The agent's and their teams' interventions, unfinished ones (or `status`) first by due time."""
    teams = await _my_teams(session, agent.id)
    query = select(Intervention).where(or_(col(Intervention.assignee_agent_id) == agent.id,
                                           col(Intervention.team_id).in_(teams)))
    query = query.where(col(Intervention.status) == status) if status else \
        query.where(col(Intervention.status).in_(("todo", "doing")))
    return list((await session.execute(query.order_by(col(Intervention.due_at), col(Intervention.id))
                                       .limit(size))).scalars())


async def _my_intervention(request: web.Request, session: AsyncSession) -> Intervention:
    agent = current_agent(request)
    item: Intervention = await _get(session, Intervention, path_id(request), "intervention")
    if agent.role != "admin" and item.assignee_agent_id != agent.id and \
            item.team_id not in await _my_teams(session, agent.id):
        raise ApiError(403, "forbidden", "this intervention is not yours or your team's")
    return item


@requires(*STAFF)
async def set_intervention_status(request: web.Request) -> web.Response:
    body = await parse_body(request, InterventionStatus)
    runtime = request.app[RUNTIME]
    async with runtime.factory() as session, session.begin():
        item = await _my_intervention(request, session)
        try:
            await complaints.set_intervention_status(session, item, body.status, actor=current_agent(request).email,
                                                     note=body.note, handlers=tuple(runtime.handlers))
        except TransitionError as exc:
            raise _transition_error(exc) from None
    return web.json_response(intervention_json(item))


@requires(*STAFF)
async def add_intervention_note(request: web.Request) -> web.Response:
    body = await parse_body(request, NoteBody)
    async with request.app[RUNTIME].factory() as session, session.begin():
        item = await _my_intervention(request, session)
        note = complaints.add_note(item, current_agent(request).email, body.text)
    return web.json_response(note, status=201)


async def case_json(session: AsyncSession, case: Case, role: str) -> dict[str, Any]:
    moves = (await session.execute(select(CaseTransition).where(CaseTransition.case_id == case.id)
                                   .order_by(col(CaseTransition.id)))).scalars()
    return {"id": case.id, "customer_id": case.customer_id, "workflow": case.workflow, "state": case.state,
            "opened_at": _iso(case.opened_at), "closed_at": _iso(case.closed_at),
            "allowed": workflows.workflow_of(case).allowed(case.state, role),
            "transitions": [{"from": t.from_state, "to": t.to_state, "actor": t.actor, "reason": t.reason,
                             "at": _iso(t.at)} for t in moves]}


@requires(*STAFF)
async def create_case(request: web.Request) -> web.Response:
    body = await parse_body(request, CaseCreate)
    if body.workflow not in workflows.WORKFLOWS:
        raise bad_request(f"unknown workflow; one of {', '.join(workflows.WORKFLOWS)}", "workflow")
    agent = current_agent(request)
    async with request.app[RUNTIME].factory() as session, session.begin():
        if await session.get(Customer, body.customer_id) is None:
            raise bad_request(f"no customer with id {body.customer_id}", "customer_id")
        case = await workflows.open_case(session, body.customer_id, body.workflow, actor=agent.email)
        data = await case_json(session, case, agent.role)
    return web.json_response(data, status=201)


@requires(*STAFF)
async def get_case(request: web.Request) -> web.Response:
    async with request.app[RUNTIME].factory() as session:
        case = await _get(session, Case, path_id(request), "case")
        return web.json_response(await case_json(session, case, current_agent(request).role))


@requires(*STAFF)
async def move_case(request: web.Request) -> web.Response:
    """Take a transition: 409 with the allowed ones when there is no such move, 403 when not for your role."""
    body = await parse_body(request, CaseMove)
    runtime, agent = request.app[RUNTIME], current_agent(request)
    async with runtime.factory() as session, session.begin():
        case = await _get(session, Case, path_id(request), "case")
        try:
            await workflows.move_case(session, case, body.to, actor=agent.email, role=agent.role,
                                      reason=body.reason, handlers=tuple(runtime.handlers))
        except TransitionError as exc:
            raise _transition_error(exc) from None
        except NotAllowed as exc:
            raise ApiError(403, "forbidden", str(exc)) from None
        data = await case_json(session, case, agent.role)
    return web.json_response(data)


@requires(*STAFF)
async def get_survey(request: web.Request) -> web.Response:
    async with request.app[RUNTIME].factory() as session:
        s = await _get(session, Survey, path_id(request), "survey")
    return web.json_response({"id": s.id, "case_id": s.case_id, "customer_id": s.customer_id, "channel": s.channel,
                              "questions": s.questions, "answers": s.answers, "score": s.score, "status": s.status,
                              "sent_at": _iso(s.sent_at), "answered_at": _iso(s.answered_at)})


@requires(*STAFF)
async def conversation_sla(request: web.Request) -> web.Response:
    runtime = request.app[RUNTIME]
    async with runtime.factory() as session:
        conversation = await _get(session, Conversation, path_id(request), "conversation")
        return web.json_response(await checks.sla_status(session, conversation, runtime.settings, utcnow()))
