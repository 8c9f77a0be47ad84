"""Canned responses: list, create (audited) and render for a conversation."""

from __future__ import annotations

from aiohttp import web
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select

from hub.keys import RUNTIME
from hub.store.models import AuditEvent, CannedResponse, Customer
from hub.web import canned, details, schemas
from hub.web.auth import current_agent, current_scope, requires
from hub.web.errors import conflict, not_found, parse_body
from hub.web.openapi import doc
from hub.web.params import path_id

AGENTS = ("admin", "agent")


@doc("Canned responses, by shortcut", response=schemas.CannedList, tag="canned")
@requires(*AGENTS)
async def list_canned(request: web.Request) -> web.Response:
    async with request.app[RUNTIME].factory() as session:
        rows = (await session.execute(select(CannedResponse).order_by(
            col(CannedResponse.shortcut), col(CannedResponse.language)))).scalars().all()
    out = schemas.CannedList(items=[schemas.CannedOut.model_validate(r) for r in rows])
    return web.json_response(out.model_dump(mode="json"))


@doc("Save a canned response", body=schemas.CannedCreate, response=schemas.CannedOut, status=201,
     errors=(400, 401, 403, 409), tag="canned")
@requires(*AGENTS)
async def create_canned(request: web.Request) -> web.Response:
    body = await parse_body(request, schemas.CannedCreate)
    actor = current_agent(request).email
    row = CannedResponse(**body.model_dump(), created_by=actor)
    try:
        async with request.app[RUNTIME].factory() as session, session.begin():
            session.add(row)
            await session.flush()
            session.add(AuditEvent(actor=actor, action="canned.created", entity="canned", entity_id=row.id,
                                   data={"shortcut": row.shortcut, "language": row.language}))
    except IntegrityError:
        raise conflict(f"/{body.shortcut} exists already in {body.language}", field="shortcut") from None
    return web.json_response(schemas.CannedOut.model_validate(row).model_dump(mode="json"), status=201)


@doc("Fill a canned response's variables for a conversation", body=schemas.CannedRenderBody,
     response=schemas.CannedRendered, errors=(400, 401, 403, 404), tag="canned")
@requires(*AGENTS)
async def render_canned(request: web.Request) -> web.Response:
    body = await parse_body(request, schemas.CannedRenderBody)
    scope, agent = await current_scope(request), current_agent(request)
    async with request.app[RUNTIME].factory() as session:
        row = await session.get(CannedResponse, path_id(request))
        conversation = await details.load_conversation(session, scope, body.conversation_id)
        if row is None or conversation is None:
            raise not_found("canned response" if row is None else "conversation")
        customer = await session.get(Customer, conversation.customer_id)
        assert customer is not None
    text, missing = canned.render(row.body, canned.variables(customer, conversation, agent))
    return web.json_response(schemas.CannedRendered(text=text, missing=missing).model_dump(mode="json"))
