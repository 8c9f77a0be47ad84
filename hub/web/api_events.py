"""`GET /api/v1/events`: the agent's Server-Sent Events stream (stored events + collision notices)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from aiohttp import web

from hub.keys import BROKER, PRESENCE, RUNTIME
from hub.web import schemas
from hub.web.auth import current_scope, requires
from hub.web.errors import bad_request
from hub.web.openapi import doc
from hub.web.params import parse_query
from hub.web.presence import Notice
from hub.web.scope import Scope
from hub.web.sse import CLOSED, LiveEvent, replay

KEEPALIVE_SECONDS = 15.0
QUEUE_SIZE = 2000


def _resume_from(request: web.Request) -> int | None:
    """Last-Event-ID (sent by EventSource on reconnect) or the last_event_id parameter."""
    query = parse_query(request, schemas.EventsQuery)
    header = request.headers.get("Last-Event-ID", "").strip()
    if not header:
        return query.last_event_id
    if not header.isdigit() or int(header) > schemas.MAX_ID:
        raise bad_request("Last-Event-ID must be an event id", "Last-Event-ID")
    return int(header)


def _frame(item: Any, scope: Scope) -> bytes | None:
    """The bytes to send for a queued item, or None when it is not for this agent."""
    if isinstance(item, LiveEvent):
        # A hand-over goes to everyone who may have had the conversation on screen, so it leaves their lists.
        handover = item.type == "conversation.assigned" and scope.sees_conversations
        return item.frame() if handover or scope.sees_event(item.team_id, item.assignee_id) else None
    if isinstance(item, Notice) and item.agent_id != scope.agent_id and scope.sees_event(item.team_id,
                                                                                        item.assignee_id):
        return f"event: presence\ndata: {json.dumps(item.as_json())}\n\n".encode()
    return None


async def _pump(response: web.StreamResponse, queue: asyncio.Queue[Any], scope: Scope, sent: set[int]) -> None:
    while True:
        try:
            item = await asyncio.wait_for(queue.get(), KEEPALIVE_SECONDS)
        except TimeoutError:
            await response.write(b": keep-alive\n\n")
            continue
        if item is CLOSED:
            return
        if isinstance(item, LiveEvent) and item.id in sent:
            continue  # already sent by the Last-Event-ID replay
        if (frame := _frame(item, scope)) is not None:
            await response.write(frame)


@doc("Server-Sent Events: stored events (id = DomainEvent id; resume with Last-Event-ID) and presence",
     query=schemas.EventsQuery, content_type="text/event-stream", tag="live")
@requires("admin", "agent")
async def events(request: web.Request) -> web.StreamResponse:
    scope, after = await current_scope(request), _resume_from(request)
    broker, presence = request.app[BROKER], request.app[PRESENCE]
    queue: asyncio.Queue[Any] = asyncio.Queue(QUEUE_SIZE)
    await broker.subscribe(queue)  # first, so nothing stored after the replay's read is missed
    presence.listen(queue)
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache",
                                           "X-Accel-Buffering": "no"})
    try:
        await response.prepare(request)
        await response.write(b"retry: 2000\n\n")
        sent: set[int] = set()
        for event in await replay(request.app[RUNTIME].factory, after) if after is not None else []:
            sent.add(event.id)
            if (frame := _frame(event, scope)) is not None:
                await response.write(frame)
        await _pump(response, queue, scope, sent)
        await response.write_eof()
    except ConnectionResetError:
        pass  # the agent closed the tab; nothing to clean but our subscriptions
    finally:
        broker.unsubscribe(queue)
        presence.unlisten(queue)
    return response
