"""Twilio voice webhooks: an incoming call, its Dial outcome, status and recording callbacks."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping

from aiohttp import web
from multidict import MultiDict
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col, select
from twilio.twiml.voice_response import VoiceResponse

from hub.channels.phone.voice import WebhookFormError, parse_call, parse_recording, twiml_answer
from hub.core.calls import log_call
from hub.core.envelopes import CallLog
from hub.core.ingest import quarantine
from hub.keys import RUNTIME
from hub.runtime import Runtime
from hub.store.models import CallLog as CallRow
from hub.store.models import TimelineEntry
from hub.web.errors import bad_request
from hub.web.twilio_signature import signed_form

log = logging.getLogger(__name__)

DIAL_PATH = "/webhooks/twilio/voice/dial"
MISSED = frozenset({"no-answer", "busy", "failed", "missed", "canceled"})


def _xml(twiml: str) -> web.Response:
    return web.Response(text=twiml, content_type="text/xml")


async def _find(session: AsyncSession, source: str, external_id: str) -> CallRow | None:
    found = await session.execute(
        select(CallRow).where(col(CallRow.source) == source, col(CallRow.external_id) == external_id)
    )
    return found.scalars().first()


async def _refresh_timeline(session: AsyncSession, row: CallRow) -> None:
    """log_call writes the timeline line once; later callbacks change what it must say."""
    entry = (await session.execute(
        select(TimelineEntry).where(col(TimelineEntry.kind) == "call", col(TimelineEntry.ref_id) == row.id)
    )).scalars().first()
    if entry is not None:
        entry.summary = f"{row.direction} call, {row.disposition}, {row.duration_s}s"
        entry.data = {"direction": row.direction, "disposition": row.disposition,
                      "duration_s": row.duration_s}


async def record(runtime: Runtime, call: CallLog) -> None:
    """Log or update the call; a forward nobody answered stays missed when the caller's leg completes."""
    async with runtime.factory() as session, session.begin():
        row = await _find(session, call.source, call.external_id)
        if row is not None and row.disposition in MISSED and not call.missed:
            # The parent leg reports `completed` even when the Dial to the staff went unanswered.
            call = dataclasses.replace(call, disposition=row.disposition, answered_at=None)
        result = await log_call(session, call, tuple(runtime.handlers))
        if not result.created and result.changed:
            updated = await session.get(CallRow, result.call_id)
            if updated is not None:
                await _refresh_timeline(session, updated)


async def _keep(runtime: Runtime, request: web.Request, body: bytes, exc: WebhookFormError) -> None:
    """Signed by Twilio but unparseable: quarantined with its raw form for replay."""
    log.info("unparseable Twilio voice webhook on %s: %s", request.path, exc)
    await quarantine(runtime.factory, stage=f"webhook:{request.path}", error=exc, raw=body,
                     channel="phone", source=request.path, payload={"field": exc.field})


async def _parse(
    runtime: Runtime, request: web.Request, body: bytes, form: Mapping[str, str]
) -> CallLog | None:
    try:
        return dataclasses.replace(parse_call(form, region=runtime.settings.default_region), raw=body)
    except WebhookFormError as exc:
        await _keep(runtime, request, body, exc)
        return None


async def voice_webhook(request: web.Request) -> web.Response:
    """An incoming call: log it, then answer (forward to HUB_VOICE_FORWARD_TO when set)."""
    runtime = request.app[RUNTIME]
    settings = runtime.settings
    body, form = await signed_form(request, settings)
    call = await _parse(runtime, request, body, form)
    if call is not None:
        await record(runtime, call)
    # Answer even when the form was odd: a 4xx here makes Twilio hang up on a real caller.
    action = settings.public_url.rstrip("/") + DIAL_PATH if settings.voice_forward_to else None
    return _xml(twiml_answer(settings.voice_forward_to, settings.voice_greeting, action=action))


def _dial_form(form: MultiDict[str]) -> dict[str, str]:
    """The Dial outcome as a status callback: DialCallStatus is what happened to the forward."""
    fields = dict(form)
    if form.get("DialCallStatus"):
        fields["CallStatus"] = form["DialCallStatus"]
        fields["CallDuration"] = form.get("DialCallDuration") or "0"
    return fields


async def dial_webhook(request: web.Request) -> web.Response:
    """The Dial verb's action URL: record whether the forward was answered, then hang up."""
    runtime = request.app[RUNTIME]
    body, form = await signed_form(request, runtime.settings)
    call = await _parse(runtime, request, body, _dial_form(form))
    if call is not None:
        await record(runtime, call)
    response = VoiceResponse()
    response.hangup()
    return _xml(str(response))


async def voice_status_webhook(request: web.Request) -> web.Response:
    """Call status callback (CallStatus, CallDuration, RecordingUrl) updating the call log."""
    runtime = request.app[RUNTIME]
    body, form = await signed_form(request, runtime.settings)
    try:
        call = dataclasses.replace(parse_call(form, region=runtime.settings.default_region), raw=body)
    except WebhookFormError as exc:
        await _keep(runtime, request, body, exc)
        raise bad_request(str(exc), exc.field) from None
    await record(runtime, call)
    return web.Response(status=204)


async def recording_webhook(request: web.Request) -> web.Response:
    """Recording status callback: attach the recording URL to the call it belongs to."""
    runtime = request.app[RUNTIME]
    _, form = await signed_form(request, runtime.settings)
    try:
        update = parse_recording(form)
    except WebhookFormError as exc:
        raise bad_request(str(exc), exc.field) from None
    async with runtime.factory() as session, session.begin():
        row = await _find(session, "twilio", update.call_sid)
        if row is not None and update.status == "completed":
            row.recording_url = update.url
    return web.Response(status=204)
