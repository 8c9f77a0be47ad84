"""Twilio messaging webhooks: incoming SMS/WhatsApp and message status callbacks."""

from __future__ import annotations

import dataclasses
import logging

from aiohttp import web
from twilio.twiml.messaging_response import MessagingResponse

from hub.channels.sms import consent
from hub.channels.sms.parse import WebhookFormError, parse_inbound, parse_status
from hub.channels.sms.spool import Spool
from hub.channels.sms.wiring import SPOOL_KEY
from hub.core.delivery import apply_update
from hub.core.envelopes import DeliveryUpdate, Flag
from hub.core.ingest import quarantine
from hub.keys import RUNTIME
from hub.runtime import Runtime
from hub.web.errors import bad_request
from hub.web.twilio_signature import signed_form

log = logging.getLogger(__name__)

# Error codes that say the number itself is unusable; anything else (30003 handset off, carrier
# trouble) may work next time, so it must not suppress the customer for good.
DEAD_NUMBER_CODES = frozenset({"21211", "21612", "21614", "30005", "30006", "63024"})


# Rendered once: nearly every webhook has nothing to say back, and building TwiML is not free.
EMPTY_TWIML = str(MessagingResponse())


def twiml(reply: str | None = None) -> web.Response:
    """Empty TwiML (nothing to say back), or one <Message> reply."""
    if not reply:
        return web.Response(text=EMPTY_TWIML, content_type="text/xml")
    response = MessagingResponse()
    response.message(reply)
    return web.Response(text=str(response), content_type="text/xml")


async def _refuse(
    runtime: Runtime, request: web.Request, body: bytes, exc: WebhookFormError
) -> web.HTTPException:
    # Signed by Twilio but unparseable: keep it for replay, and tell Twilio's debugger why.
    log.info("unparseable Twilio webhook on %s: %s", request.path, exc)
    await quarantine(runtime.factory, stage=f"webhook:{request.path}", error=exc, raw=body, channel="sms",
                     source=request.path, payload={"field": exc.field})
    return bad_request(str(exc), exc.field)


async def sms_webhook(request: web.Request) -> web.Response:
    """Incoming SMS/MMS/WhatsApp: verify, parse, keep and queue (retries skipped), answer TwiML."""
    runtime = request.app[RUNTIME]
    body, form = await signed_form(request, runtime.settings)
    try:
        item = parse_inbound(form, region=runtime.settings.default_region)
    except WebhookFormError as exc:
        raise await _refuse(runtime, request, body, exc) from None
    spool: Spool = runtime.extras[SPOOL_KEY]
    await spool.keep(item, body)
    return twiml(runtime.settings.sms_help_reply if Flag.HELP in item.flags else None)


def _final(update: DeliveryUpdate, body: bytes) -> DeliveryUpdate:
    # Only a dead number suppresses; parse_status marks every failure permanent for the message.
    return dataclasses.replace(update, raw=body, permanent=update.code in DEAD_NUMBER_CODES)


async def status_webhook(request: web.Request) -> web.Response:
    """Message status callback: move the outbound message forward, never backwards."""
    runtime = request.app[RUNTIME]
    body, form = await signed_form(request, runtime.settings)
    try:
        update = _final(parse_status(form), body)
    except WebhookFormError as exc:
        raise await _refuse(runtime, request, body, exc) from None
    async with runtime.factory() as session, session.begin():
        message = await apply_update(session, update, tuple(runtime.handlers))
        if update.code == "21610" and message is not None and update.recipient:
            await consent.opt_out(session, customer_id=message.customer_id, channel=update.channel.value,
                                  address=update.recipient, source="twilio_error_21610", detail=update.detail)
    return web.Response(status=204)
