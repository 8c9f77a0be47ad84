"""Conversations: list by status/assignee (keyset), detail, status, assignment, notes, replies."""

from __future__ import annotations

from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import and_, col, or_, select

from hub.core import conversations as conv_core
from hub.core import outbox, replies
from hub.core.envelopes import Channel
from hub.core.timeline import BadCursor, decode_cursor, encode_cursor
from hub.keys import RUNTIME
from hub.store.models import CONVERSATION_STATUSES, Agent, AuditEvent, Conversation, Message, Team
from hub.web import serialize
from hub.web.auth import current_agent, requires
from hub.web.errors import bad_request, not_found, parse_body
from hub.web.params import choice, int_param, limit, path_id
from hub.web.schemas import AssignBody, NoteBody, ReplyBody, StatusBody

AGENTS = ("admin", "agent")


async def _load(session: AsyncSession, conversation_id: int) -> Conversation:
    conversation = await session.get(Conversation, conversation_id)
    if conversation is None:
        raise not_found("conversation")
    return conversation


def _filters(request: web.Request) -> list[object]:
    clauses: list[object] = []
    if status := choice(request, "status", CONVERSATION_STATUSES):
        clauses.append(col(Conversation.status) == status)
    assignee = request.query.get("assignee")
    if assignee == "me":
        clauses.append(col(Conversation.assignee_id) == current_agent(request).id)
    elif assignee == "none":
        clauses.append(col(Conversation.assignee_id).is_(None))
    elif assignee:
        clauses.append(col(Conversation.assignee_id) == int_param(request, "assignee"))
    if customer_id := int_param(request, "customer_id"):
        clauses.append(col(Conversation.customer_id) == customer_id)
    return clauses


def _after_cursor(request: web.Request) -> object | None:
    raw = request.query.get("before")
    if not raw:
        return None
    try:
        at, row_id = decode_cursor(raw)
    except BadCursor as exc:
        raise bad_request(str(exc), "before") from None
    return or_(col(Conversation.last_message_at) < at,
               and_(col(Conversation.last_message_at) == at, col(Conversation.id) < row_id))


@requires(*AGENTS)
async def list_conversations(request: web.Request) -> web.Response:
    """Newest activity first; `before` is the previous page's `next_before`, stable under new arrivals."""
    size = limit(request)
    query = select(Conversation).where(*_filters(request))  # type: ignore[arg-type]
    if (cursor := _after_cursor(request)) is not None:
        query = query.where(cursor)  # type: ignore[arg-type]
    query = query.order_by(col(Conversation.last_message_at).desc(), col(Conversation.id).desc()).limit(size + 1)
    async with request.app[RUNTIME].factory() as session:
        rows = list((await session.execute(query)).scalars())
    page = rows[:size]
    last = page[-1] if page else None
    more = len(rows) > size and last is not None and last.id is not None
    next_before = encode_cursor(last.last_message_at, last.id) if more and last and last.id else None
    return web.json_response({"items": [serialize.conversation(c) for c in page], "next_before": next_before})


@requires(*AGENTS)
async def get_conversation(request: web.Request) -> web.Response:
    async with request.app[RUNTIME].factory() as session:
        conversation = await _load(session, path_id(request))
        messages = (await session.execute(
            select(Message).where(Message.conversation_id == conversation.id)
            .order_by(col(Message.created_at), col(Message.id)).limit(500)
        )).scalars().all()
    return web.json_response({**serialize.conversation(conversation),
                              "messages": [serialize.message(m) for m in messages]})


@requires(*AGENTS)
async def set_status(request: web.Request) -> web.Response:
    body = await parse_body(request, StatusBody)
    if body.status == "snoozed" and (body.snoozed_until is None or body.snoozed_until.tzinfo is None):
        raise bad_request("snoozing needs snoozed_until with a timezone", "snoozed_until")
    runtime, actor = request.app[RUNTIME], current_agent(request).email
    async with runtime.factory() as session, session.begin():
        conversation = await _load(session, path_id(request))
        await conv_core.set_status(session, conversation, body.status, actor=actor, handlers=tuple(runtime.handlers))
        if body.status == "snoozed":
            conversation.snoozed_until = body.snoozed_until
        session.add(AuditEvent(actor=actor, action="conversation.status", entity="conversation",
                               entity_id=conversation.id, data={"status": body.status}))
    return web.json_response(serialize.conversation(conversation))


async def _check_assignees(session: AsyncSession, body: AssignBody) -> None:
    if body.agent_id is not None and await session.get(Agent, body.agent_id) is None:
        raise bad_request(f"no agent with id {body.agent_id}", "agent_id")
    if body.team_id is not None and await session.get(Team, body.team_id) is None:
        raise bad_request(f"no team with id {body.team_id}", "team_id")


@requires(*AGENTS)
async def assign(request: web.Request) -> web.Response:
    body = await parse_body(request, AssignBody)
    runtime = request.app[RUNTIME]
    async with runtime.factory() as session, session.begin():
        conversation = await _load(session, path_id(request))
        await _check_assignees(session, body)
        await conv_core.assign(session, conversation, agent_id=body.agent_id, team_id=body.team_id,
                               actor=current_agent(request).email, handlers=tuple(runtime.handlers))
    return web.json_response(serialize.conversation(conversation))


@requires(*AGENTS)
async def add_note(request: web.Request) -> web.Response:
    body = await parse_body(request, NoteBody)
    runtime = request.app[RUNTIME]
    async with runtime.factory() as session, session.begin():
        conversation = await _load(session, path_id(request))
        note = await replies.add_note(session, conversation, current_agent(request), body.body,
                                      handlers=tuple(runtime.handlers))
    return web.json_response(serialize.message(note), status=201)


@requires(*AGENTS)
async def reply(request: web.Request) -> web.Response:
    """Write the outbound message and its outbox row in one transaction; a job sends it."""
    body = await parse_body(request, ReplyBody)
    runtime = request.app[RUNTIME]
    settings = runtime.settings
    ask = replies.ReplyRequest(body=body.body, channel=Channel(body.channel) if body.channel else None,
                               to=body.to, subject=body.subject)
    async with outbox.unit_of_work(runtime.factory, runtime.queue) as session:
        conversation = await _load(session, path_id(request))
        try:
            message = await replies.create_reply(
                session, conversation, current_agent(request), ask, mail_domain=settings.mail_domain,
                hub_address=settings.smtp_from, handlers=tuple(runtime.handlers),
            )
        except replies.ReplyError as exc:
            raise bad_request(str(exc), exc.field) from None
    return web.json_response(serialize.message(message), status=202)
