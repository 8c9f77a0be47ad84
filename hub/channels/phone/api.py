"""`POST /api/v1/calls`: an agent logs a call by hand (a call on a mobile, a walk-in callback)."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Literal

from aiohttp import web
from pydantic import Field, field_validator

from hub.core.calls import log_call
from hub.core.envelopes import Address, AddressKind, CallLog, Direction
from hub.core.identity import InvalidAddress, normalise_phone
from hub.keys import RUNTIME
from hub.web.auth import current_agent, requires
from hub.web.errors import bad_request, parse_body
from hub.web.schemas import Body

SOURCE = "manual"


class CallBody(Body):
    """A call as an agent remembers it; `external_id` makes a retried POST a no-op."""

    number: str = Field(min_length=3, max_length=64)
    direction: Literal["in", "out"]
    started_at: datetime
    duration_s: int = Field(default=0, ge=0, le=86400)
    disposition: Literal["answered", "no-answer", "busy", "failed", "canceled", "missed"] = "answered"
    hub_number: str | None = Field(default=None, max_length=64)
    external_id: str | None = Field(default=None, min_length=1, max_length=200)

    @field_validator("started_at")
    @classmethod
    def _aware(cls, value: datetime) -> datetime:
        if value.tzinfo is None:
            raise ValueError("needs a timezone, e.g. 2026-11-01T09:00:00+01:00")
        return value


def _call(body: CallBody, region: str, default_hub: str | None) -> CallLog:
    try:
        customer = Address(AddressKind.PHONE, normalise_phone(body.number, region))
    except InvalidAddress as exc:
        raise bad_request(str(exc), "number") from None
    hub = Address(AddressKind.PHONE, body.hub_number or default_hub or "hub")
    inbound = body.direction == "in"
    answered = body.disposition == "answered"
    return CallLog(
        external_id=body.external_id or uuid.uuid4().hex,
        direction=Direction.IN if inbound else Direction.OUT,
        caller=customer if inbound else hub, callee=hub if inbound else customer, started_at=body.started_at,
        source=SOURCE, answered_at=body.started_at if answered else None,
        ended_at=body.started_at + timedelta(seconds=body.duration_s), duration_s=body.duration_s,
        disposition=body.disposition,
    )


@requires("admin", "agent")
async def log_call_by_hand(request: web.Request) -> web.Response:
    """Put a call on the customer's timeline; 201 when new, 200 when `external_id` was seen."""
    body = await parse_body(request, CallBody)
    runtime = request.app[RUNTIME]
    call = _call(body, runtime.settings.default_region, runtime.settings.twilio_from)
    async with runtime.factory() as session, session.begin():
        result = await log_call(session, call, tuple(runtime.handlers), agent_id=current_agent(request).id)
    payload = {"id": result.call_id, "customer_id": result.customer_id, "created": result.created,
               "external_id": call.external_id, "disposition": call.disposition}
    return web.json_response(payload, status=201 if result.created else 200)
