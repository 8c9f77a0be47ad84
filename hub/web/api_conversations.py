"""Conversations: inbox views and counts, detail with the customer's timeline, and every agent action."""

from __future__ import annotations

import time
from typing import Any

from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncSession

from hub.core import conversations as conv_core
from hub.core import outbox, replies
from hub.core.envelopes import Channel
from hub.core.events import Event, publish
from hub.core.timeline import BadCursor
from hub.keys import PRESENCE, RUNTIME
from hub.store.models import Agent, AuditEvent, Conversation, Customer, Team
from hub.store.types import utcnow
from hub.web import details, inbox, schemas, serialize
from hub.web.auth import current_agent, current_scope, requires
from hub.web.errors import bad_request, not_found, parse_body
from hub.web.openapi import doc
from hub.web.params import parse_query, path_id
from hub.web.presence import Notice
from hub.web.scope import Scope

AGENTS = ("admin", "agent")
CONVERSATION_UPDATED = "conversation.updated"
ERRORS = (400, 401, 403, 404)


async def _load(session: AsyncSession, scope: Scope, conversation_id: int) -> Conversation:
    conversation = await details.load_conversation(session, scope, conversation_id)
    if conversation is None:
        raise not_found("conversation")
    return conversation


def _dialect(request: web.Request) -> str:
    return request.app[RUNTIME].engine.dialect.name


def _json(model: schemas.Out, status: int = 200) -> web.Response:
    return web.json_response(model.model_dump(mode="json"), status=status)


@doc("Inbox view (mine, unassigned, team, all) with filters and full-text search, newest activity first",
     query=schemas.InboxQuery, response=schemas.ConversationPage)
@requires(*AGENTS)
async def list_conversations(request: web.Request) -> web.Response:
    """`before` is the previous page's `next_before`: pages stay stable while new messages arrive."""
    query, scope = parse_query(request, schemas.InboxQuery), await current_scope(request)
    async with request.app[RUNTIME].factory() as session:
        try:
            page = await inbox.list_page(session, _dialect(request), scope, query)
        except inbox.BadQuery as exc:
            raise bad_request(str(exc), exc.field) from None
    return _json(page)


@doc("Open conversations per inbox view", response=schemas.InboxCounts)
@requires(*AGENTS)
async def inbox_counts(request: web.Request) -> web.Response:
    scope = await current_scope(request)
    async with request.app[RUNTIME].factory() as session:
        return _json(await inbox.counts(session, scope))


@doc("A conversation with its messages, the customer panel, the first timeline page and who is here",
     response=schemas.ConversationDetail, errors=ERRORS)
@requires(*AGENTS)
async def get_conversation(request: web.Request) -> web.Response:
    scope, presence = await current_scope(request), request.app[PRESENCE]
    async with request.app[RUNTIME].factory() as session:
        conversation = await _load(session, scope, path_id(request))
        customer = await session.get(Customer, conversation.customer_id)
        assert customer is not None
        detail = schemas.ConversationDetail(
            **serialize.conversation(conversation),
            messages=[serialize.message_out(m)
                      for m in await details.conversation_messages(session, conversation.id or 0)],
            customer=await details.customer_panel(session, customer, scope.role),
            timeline=await details.timeline_page(session, customer.id or 0, before=None, limit=50, scope=scope),
            presence=[schemas.PresenceOut.model_validate(n) for n in await presence.who(conversation.id or 0)],
        )
    return _json(detail)


@doc("The customer's cross-channel timeline as seen from this conversation, newest first",
     query=schemas.TimelineQuery, response=schemas.TimelinePage, errors=ERRORS)
@requires(*AGENTS)
async def conversation_timeline(request: web.Request) -> web.Response:
    query, scope = parse_query(request, schemas.TimelineQuery), await current_scope(request)
    async with request.app[RUNTIME].factory() as session:
        conversation = await _load(session, scope, path_id(request))
        try:
            page = await details.timeline_page(session, conversation.customer_id, before=query.before,
                                               limit=query.limit, scope=scope)
        except BadCursor as exc:
            raise bad_request(str(exc), "before") from None
    return _json(page)


async def _apply_status(session: AsyncSession, request: web.Request, conversation: Conversation,
                        body: schemas.StatusBody) -> None:
    actor = current_agent(request).email
    await conv_core.set_status(session, conversation, body.status, actor=actor,
                               handlers=tuple(request.app[RUNTIME].handlers))
    if body.status == "snoozed":
        conversation.snoozed_until = body.snoozed_until
    session.add(AuditEvent(actor=actor, action="conversation.status", entity="conversation",
                           entity_id=conversation.id, data={"status": body.status}))


@doc("Set the status (snoozed needs snoozed_until with a timezone)", body=schemas.StatusBody,
     response=schemas.ConversationOut, errors=ERRORS)
@requires(*AGENTS)
async def set_status(request: web.Request) -> web.Response:
    body = await parse_body(request, schemas.StatusBody)
    if body.status == "snoozed" and (body.snoozed_until is None or body.snoozed_until.tzinfo is None):
        raise bad_request("snoozing needs snoozed_until with a timezone", "snoozed_until")
    scope = await current_scope(request)
    async with request.app[RUNTIME].factory() as session, session.begin():
        conversation = await _load(session, scope, path_id(request))
        await _apply_status(session, request, conversation, body)
    return web.json_response(serialize.conversation(conversation))


async def _check_assignees(session: AsyncSession, agent_id: int | None, team_id: int | None) -> None:
    if agent_id is not None and await session.get(Agent, agent_id) is None:
        raise bad_request(f"no agent with id {agent_id}", "agent_id")
    if team_id is not None and await session.get(Team, team_id) is None:
        raise bad_request(f"no team with id {team_id}", "team_id")


@doc("Assign to an agent and/or a team (agent_id null unassigns)", body=schemas.AssignBody,
     response=schemas.ConversationOut, errors=ERRORS)
@requires(*AGENTS)
async def assign(request: web.Request) -> web.Response:
    body = await parse_body(request, schemas.AssignBody)
    runtime, scope = request.app[RUNTIME], await current_scope(request)
    async with runtime.factory() as session, session.begin():
        conversation = await _load(session, scope, path_id(request))
        await _check_assignees(session, body.agent_id, body.team_id)
        await conv_core.assign(session, conversation, agent_id=body.agent_id, team_id=body.team_id,
                               actor=current_agent(request).email, handlers=tuple(runtime.handlers))
    return web.json_response(serialize.conversation(conversation))


@doc("Add an internal note; @name or @email mentions are recorded", body=schemas.NoteBody,
     response=schemas.MessageOut, status=201, errors=ERRORS)
@requires(*AGENTS)
async def add_note(request: web.Request) -> web.Response:
    body = await parse_body(request, schemas.NoteBody)
    runtime, scope, agent = request.app[RUNTIME], await current_scope(request), current_agent(request)
    async with runtime.factory() as session, session.begin():
        conversation = await _load(session, scope, path_id(request))
        try:
            note = await replies.add_note(session, conversation, agent, body.body, handlers=tuple(runtime.handlers))
        except replies.ReplyError as exc:
            raise bad_request(str(exc), exc.field) from None
        session.add(AuditEvent(actor=agent.email, action="conversation.note", entity="conversation",
                               entity_id=conversation.id, data={"message_id": note.id,
                                                                "mentions": replies.mentions(body.body)}))
    return web.json_response(serialize.message(note), status=201)


@doc("Reply to the customer on a channel and identity of theirs; a job sends it (202)",
     body=schemas.ReplyBody, response=schemas.MessageOut, status=202, errors=ERRORS)
@requires(*AGENTS)
async def reply(request: web.Request) -> web.Response:
    """Write the outbound message and its outbox row in one transaction; a job sends it."""
    body = await parse_body(request, schemas.ReplyBody)
    runtime, scope, agent = request.app[RUNTIME], await current_scope(request), current_agent(request)
    ask = replies.ReplyRequest(body=body.body, channel=Channel(body.channel) if body.channel else None,
                               to=body.to, subject=body.subject)
    async with outbox.unit_of_work(runtime.factory, runtime.queue) as session:
        conversation = await _load(session, scope, path_id(request))
        try:
            message = await replies.create_reply(
                session, conversation, agent, ask, mail_domain=runtime.settings.mail_domain,
                hub_address=runtime.settings.smtp_from, handlers=tuple(runtime.handlers))
        except replies.ReplyError as exc:
            raise bad_request(str(exc), exc.field) from None
        session.add(AuditEvent(actor=agent.email, action="conversation.reply", entity="conversation",
                               entity_id=conversation.id, data={"message_id": message.id, "channel": message.channel}))
    return web.json_response(serialize.message(message), status=202)


async def update_fields(session: AsyncSession, conversation: Conversation, changes: dict[str, Any], *,
                        actor: str, handlers: tuple[Any, ...]) -> None:
    """Apply tag and priority changes, audited, and tell live clients."""
    before = {"tags": conversation.tags, "priority": conversation.priority}
    tags = list(changes["tags"]) if changes.get("tags") is not None else list(conversation.tags)
    tags = [t for t in dict.fromkeys([*tags, *changes.get("add_tags", [])]) if t not in changes.get("remove_tags", [])]
    conversation.tags = tags
    conversation.priority = changes.get("priority") or conversation.priority
    conversation.updated_at = utcnow()
    after = {"tags": conversation.tags, "priority": conversation.priority}
    session.add(AuditEvent(actor=actor, action="conversation.updated", entity="conversation",
                           entity_id=conversation.id, data={"from": before, "to": after}))
    await publish(session, Event(CONVERSATION_UPDATED, conversation.customer_id, conversation.id,
                                 team_id=conversation.team_id, data={**after, "actor": actor}), handlers)


@doc("Change tags (set, add, remove) and priority", body=schemas.ConversationUpdate,
     response=schemas.ConversationOut, errors=ERRORS)
@requires(*AGENTS)
async def update_conversation(request: web.Request) -> web.Response:
    body = await parse_body(request, schemas.ConversationUpdate)
    runtime, scope = request.app[RUNTIME], await current_scope(request)
    async with runtime.factory() as session, session.begin():
        conversation = await _load(session, scope, path_id(request))
        await update_fields(session, conversation, body.model_dump(exclude_unset=True),
                            actor=current_agent(request).email, handlers=tuple(runtime.handlers))
    return web.json_response(serialize.conversation(conversation))


def _bulk_change(body: schemas.BulkBody) -> dict[str, Any]:
    """Check that the action has what it needs; a missing field is a 400 naming it."""
    needs = {"assign": None, "status": "status", "tag": "tag", "untag": "tag", "priority": "priority"}
    field = needs[body.action]
    if field is not None and getattr(body, field) is None:
        raise bad_request(f"the {body.action} action needs {field}", field)
    if body.action == "tag":
        return {"add_tags": [body.tag]}
    if body.action == "untag":
        return {"remove_tags": [body.tag]}
    return {"priority": body.priority} if body.action == "priority" else {}


async def _bulk_one(session: AsyncSession, request: web.Request, conversation: Conversation,
                    body: schemas.BulkBody, change: dict[str, Any]) -> None:
    actor, handlers = current_agent(request).email, tuple(request.app[RUNTIME].handlers)
    if body.action == "assign":
        await conv_core.assign(session, conversation, agent_id=body.agent_id, team_id=body.team_id,
                               actor=actor, handlers=handlers)
    elif body.action == "status":
        assert body.status is not None
        await _apply_status(session, request, conversation, schemas.StatusBody(status=body.status))
    else:
        await update_fields(session, conversation, change, actor=actor, handlers=handlers)


@doc("Apply one action to many conversations; ids you cannot see are skipped", body=schemas.BulkBody,
     response=schemas.BulkResult)
@requires(*AGENTS)
async def bulk(request: web.Request) -> web.Response:
    body = await parse_body(request, schemas.BulkBody)
    change, scope = _bulk_change(body), await current_scope(request)
    updated, skipped = [], []
    async with request.app[RUNTIME].factory() as session, session.begin():
        if body.action == "assign":
            await _check_assignees(session, body.agent_id, body.team_id)
        for conversation_id in dict.fromkeys(body.ids):
            conversation = await details.load_conversation(session, scope, conversation_id)
            if conversation is None:
                skipped.append(conversation_id)
                continue
            await _bulk_one(session, request, conversation, body, change)
            updated.append(conversation_id)
    return _json(schemas.BulkResult(updated=updated, skipped=skipped))


@doc("Say you are viewing or typing in (or left) a conversation; others see it live",
     body=schemas.PresenceBody, response=schemas.PresenceList, errors=ERRORS)
@requires(*AGENTS)
async def presence(request: web.Request) -> web.Response:
    body = await parse_body(request, schemas.PresenceBody)
    scope, hub_presence = await current_scope(request), request.app[PRESENCE]
    async with request.app[RUNTIME].factory() as session:
        conversation = await _load(session, scope, path_id(request))
    await hub_presence.announce(Notice(conversation.id or 0, conversation.team_id, conversation.assignee_id,
                                       scope.agent_id, scope.name, body.state, time.time()))
    here = await hub_presence.who(conversation.id or 0)
    return _json(schemas.PresenceList(items=[schemas.PresenceOut.model_validate(n) for n in here]))


