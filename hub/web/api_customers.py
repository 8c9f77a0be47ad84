"""Customers: create, list/search, get, update, merge, timeline."""

from __future__ import annotations

from aiohttp import web
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col, or_, select

from hub.core import customers as customer_core
from hub.core.envelopes import AddressKind
from hub.core.identity import InvalidAddress, identity_key, normalise
from hub.core.timeline import BadCursor
from hub.keys import RUNTIME
from hub.store.models import AuditEvent, Customer, Identity, StageChange
from hub.store.types import utcnow
from hub.web import details, schemas, serialize
from hub.web.auth import current_agent, current_scope, requires
from hub.web.errors import ApiError, bad_request, conflict, not_found, parse_body
from hub.web.openapi import doc
from hub.web.params import parse_query, path_id
from hub.web.schemas import CustomerCreate, CustomerUpdate, MergeBody

STAFF = ("admin", "agent", "marketer")


async def _identities(session: AsyncSession, customer_ids: list[int]) -> dict[int, list[Identity]]:
    rows = await session.execute(select(Identity).where(col(Identity.customer_id).in_(customer_ids)))
    grouped: dict[int, list[Identity]] = {cid: [] for cid in customer_ids}
    for row in rows.scalars():
        grouped[row.customer_id].append(row)
    return grouped


async def _load(session: AsyncSession, customer_id: int) -> Customer:
    try:
        return await customer_core.get(session, customer_id)
    except customer_core.CustomerNotFound:
        raise not_found("customer") from None


@doc("Customers by id (keyset: pass `after`), optionally filtered by `q` on name or identity",
     query=schemas.CustomerListQuery, response=schemas.CustomerPage, tag="customers")
@requires(*STAFF)
async def list_customers(request: web.Request) -> web.Response:
    """Customers by id (keyset: pass `after`), optionally filtered by `q` on name or identity."""
    params = parse_query(request, schemas.CustomerListQuery)
    after, size, q = params.after, params.limit, (params.q or "").strip()
    query = select(Customer).where(col(Customer.merged_into_id).is_(None), col(Customer.id) > after)
    if q:
        pattern = f"%{q.lower()}%"
        matching = select(Identity.customer_id).where(col(Identity.value).like(pattern))
        query = query.where(or_(col(Customer.display_name).ilike(pattern), col(Customer.id).in_(matching)))
    query = query.order_by(col(Customer.id)).limit(size + 1)
    async with request.app[RUNTIME].factory() as session:
        rows = list((await session.execute(query)).scalars())
        page, more = rows[:size], len(rows) > size
        idents = await _identities(session, [r.id for r in page if r.id is not None])
    items = [serialize.customer(r, idents.get(r.id or 0, [])) for r in page]
    return web.json_response({"items": items, "next_after": page[-1].id if more and page else None})


def _normalised(kind: str, value: str, region: str) -> tuple[str, str]:
    try:
        return identity_key(normalise(AddressKind(kind), value, region))
    except InvalidAddress as exc:
        raise bad_request(str(exc), "identities") from None


@doc("Create a customer with identities", body=CustomerCreate, response=schemas.CustomerOut, status=201,
     errors=(400, 401, 403, 409), tag="customers")
@requires("admin", "agent")
async def create_customer(request: web.Request) -> web.Response:
    body = await parse_body(request, CustomerCreate)
    runtime = request.app[RUNTIME]
    keys = [_normalised(i.kind, i.value, runtime.settings.default_region) for i in body.identities]
    customer = Customer(**body.model_dump(exclude={"identities"}))
    try:
        async with runtime.factory() as session, session.begin():
            session.add(customer)
            await session.flush()
            assert customer.id is not None
            session.add_all([Identity(customer_id=customer.id, kind=k, value=v) for k, v in keys])
            session.add(StageChange(customer_id=customer.id, to_stage=customer.lifecycle_stage, cause="agent",
                                    actor=current_agent(request).email))
            session.add(AuditEvent(actor=current_agent(request).email, action="customer.created",
                                   entity="customer", entity_id=customer.id))
    except IntegrityError:
        raise conflict("one of these identities belongs to another customer already", field="identities") from None
    async with runtime.factory() as session:
        idents = await _identities(session, [customer.id or 0])
    return web.json_response(serialize.customer(customer, idents[customer.id or 0]), status=201)


@doc("A customer with identities", response=schemas.CustomerOut, errors=(400, 401, 403, 404), tag="customers")
@requires(*STAFF)
async def get_customer(request: web.Request) -> web.Response:
    async with request.app[RUNTIME].factory() as session:
        customer = await _load(session, path_id(request))
        idents = await _identities(session, [customer.id or 0])
    return web.json_response(serialize.customer(customer, idents[customer.id or 0]))


@doc("Edit a customer's profile (stage changes are kept in the history)", body=CustomerUpdate,
     response=schemas.CustomerOut, errors=(400, 401, 403, 404), tag="customers")
@requires("admin", "agent")
async def update_customer(request: web.Request) -> web.Response:
    body = await parse_body(request, CustomerUpdate)
    changes = body.model_dump(exclude_unset=True)
    if nulls := sorted(k for k, v in changes.items() if v is None):
        raise bad_request(f"{nulls[0]} may not be null; leave it out to keep it", nulls[0])
    actor = current_agent(request).email
    async with request.app[RUNTIME].factory() as session, session.begin():
        customer = await _load(session, path_id(request))
        stage = changes.get("lifecycle_stage")
        if stage is not None and stage != customer.lifecycle_stage:
            session.add(StageChange(customer_id=customer.id or 0, from_stage=customer.lifecycle_stage, to_stage=stage,
                                    cause="agent", actor=actor))
        for name, value in changes.items():
            setattr(customer, name, value)
        customer.updated_at = utcnow()
        session.add(AuditEvent(actor=actor, action="customer.updated", entity="customer", entity_id=customer.id,
                               data={"fields": sorted(changes)}))
        idents = await _identities(session, [customer.id or 0])
    return web.json_response(serialize.customer(customer, idents[customer.id or 0]))


@doc("Merge source_id into this customer; the source becomes a tombstone", body=MergeBody,
     response=schemas.CustomerOut, errors=(400, 401, 403, 404), tag="customers")
@requires("admin", "agent")
async def merge_customer(request: web.Request) -> web.Response:
    """Merge `source_id` into the customer in the path; the source becomes a tombstone."""
    body = await parse_body(request, MergeBody)
    target_id = path_id(request)
    if body.source_id == target_id:
        raise bad_request("cannot merge a customer into itself", "source_id")
    async with request.app[RUNTIME].factory() as session, session.begin():
        await _load(session, target_id)
        try:
            await customer_core.get(session, body.source_id)
        except customer_core.CustomerNotFound:
            raise ApiError(404, "not_found", "source customer not found", "source_id") from None
        merged = await customer_core.merge(session, body.source_id, target_id, current_agent(request).email)
        idents = await _identities(session, [target_id])
    return web.json_response(serialize.customer(merged, idents[target_id]))


@doc("The customer's cross-channel timeline, newest first", query=schemas.TimelineQuery,
     response=schemas.TimelinePage, errors=(400, 401, 403, 404), tag="customers")
@requires("admin", "agent")
async def customer_timeline(request: web.Request) -> web.Response:
    query, scope = parse_query(request, schemas.TimelineQuery), await current_scope(request)
    async with request.app[RUNTIME].factory() as session:
        customer = await _load(session, path_id(request))
        try:
            page = await details.timeline_page(session, customer.id or 0, before=query.before, limit=query.limit,
                                               scope=scope)
        except BadCursor as exc:
            raise bad_request(str(exc), "before") from None
    return web.json_response(page.model_dump(mode="json"))


@doc("The customer panel: identities, stage history, open case with next states, complaints, interventions",
     response=schemas.CustomerPanel, errors=(400, 401, 403, 404), tag="customers")
@requires("admin", "agent")
async def customer_panel(request: web.Request) -> web.Response:
    async with request.app[RUNTIME].factory() as session:
        customer = await _load(session, path_id(request))
        panel = await details.customer_panel(session, customer, current_agent(request).role)
    return web.json_response(panel.model_dump(mode="json"))
