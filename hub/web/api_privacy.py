"""GDPR endpoints: export a customer as a zip, erase a customer, read the consent ledger; session revocation."""

from __future__ import annotations

from aiohttp import web
from pydantic import BaseModel, Field
from sqlalchemy import update
from sqlmodel import col

from hub import accounts
from hub.keys import RUNTIME
from hub.ops import privacy
from hub.store.models import ApiToken, AuditEvent
from hub.store.types import utcnow
from hub.web.auth import current_agent, requires
from hub.web.errors import ApiError, not_found, parse_body
from hub.web.params import path_id

ID = r"{id:\d+}"


class EraseBody(BaseModel):
    confirm: int = Field(description="The customer id again: erasing cannot be undone.")
    reason: str = Field(default="", max_length=500)


@requires("admin")
async def export_customer(request: web.Request) -> web.Response:
    """Everything held about a customer: customer.json, attachments/ and raw/ in a zip."""
    customer_id = path_id(request)
    try:
        data = await privacy.export_customer(request.app[RUNTIME], customer_id)
    except privacy.NotFound:
        raise not_found(f"customer {customer_id}") from None
    async with request.app[RUNTIME].factory() as session, session.begin():
        session.add(AuditEvent(actor=current_agent(request).email, action="customer.exported", entity="customer",
                               entity_id=customer_id))
    return web.Response(body=data, content_type="application/zip", headers={
        "Content-Disposition": f'attachment; filename="customer-{customer_id}.zip"', "Cache-Control": "no-store"})


@requires("admin")
async def erase_customer(request: web.Request) -> web.Response:
    """Erase a customer's personal data for good (the body must repeat the id)."""
    customer_id = path_id(request)
    body = await parse_body(request, EraseBody)
    if body.confirm != customer_id:
        raise ApiError(400, "invalid_field", "confirm must repeat the customer id", "confirm")
    try:
        report = await privacy.erase_customer(request.app[RUNTIME], customer_id,
                                              actor=current_agent(request).email, reason=body.reason)
    except privacy.NotFound:
        raise not_found(f"customer {customer_id}") from None
    return web.json_response({"customer_id": customer_id, "counts": report.counts,
                              "blobs_deleted": report.blobs_deleted})


@requires("admin", "agent", "marketer")
async def consent_ledger(request: web.Request) -> web.Response:
    """Every consent change of a customer, and what is in force per channel and purpose."""
    customer_id = path_id(request)
    async with request.app[RUNTIME].factory() as session:
        return web.json_response(await privacy.consent_ledger(session, customer_id))


async def logout(request: web.Request) -> web.Response:
    """Revoke the token this request came with."""
    token = request.headers.get("Authorization", "").partition(" ")[2].strip() or request.cookies.get("hub_session")
    async with request.app[RUNTIME].factory() as session, session.begin():
        await session.execute(update(ApiToken).where(col(ApiToken.token_hash) == accounts.token_hash(token or ""))
                              .values(revoked_at=utcnow()))
    return web.json_response({"revoked": 1})


@requires("admin")
async def revoke_sessions(request: web.Request) -> web.Response:
    """Revoke every live token of an agent (a lost laptop, a leaver)."""
    agent_id = path_id(request)
    async with request.app[RUNTIME].factory() as session, session.begin():
        result = await session.execute(
            update(ApiToken).where(col(ApiToken.agent_id) == agent_id, col(ApiToken.revoked_at).is_(None))
            .values(revoked_at=utcnow()))
        session.add(AuditEvent(actor=current_agent(request).email, action="tokens.revoked", entity="agent",
                               entity_id=agent_id, data={"count": int(getattr(result, "rowcount", 0) or 0)}))
    return web.json_response({"revoked": int(getattr(result, "rowcount", 0) or 0)})


def setup_routes(app: web.Application) -> None:
    r = app.router
    r.add_get(f"/api/v1/customers/{ID}/export", export_customer, name="customer_export")
    r.add_post(f"/api/v1/customers/{ID}/erase", erase_customer, name="customer_erase")
    r.add_get(f"/api/v1/customers/{ID}/consents", consent_ledger, name="customer_consents")
    r.add_post("/api/v1/auth/logout", logout, name="logout")
    r.add_post(f"/api/v1/agents/{ID}/sessions/revoke", revoke_sessions, name="agent_sessions_revoke")
