"""Inbound SMS/WhatsApp ingest job: the webhook kept the raw form (see spool.py); this stores it.

The job runs ingest, files the conversation under its inbox and records consent, in one
transaction, and is idempotent on the MessageSid because Twilio retries and arq re-runs jobs.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from multidict import MultiDict
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col, select

from hub.channels.sms import consent
from hub.channels.sms.parse import WebhookFormError, parse_inbound
from hub.channels.sms.signature import form_fields
from hub.core import outbox
from hub.core.envelopes import Flag, Inbound
from hub.core.events import CONVERSATION_CREATED, Event, EventHandler
from hub.core.ingest import RACE_RETRIES, IngestResult, Outcome, ingest
from hub.core.jobs import Handler, JobContext, PermanentError
from hub.runtime import Runtime
from hub.store.models import Conversation, Inbox, Message, OutboxItem, RawInput

INGEST_JOB = "twilio_inbound"


async def inbox_for(session: AsyncSession, item: Inbound) -> Inbox | None:
    """The hub inbox whose number the customer wrote to (channel + To address)."""
    found = await session.execute(
        select(Inbox).where(col(Inbox.channel) == item.channel.value,
                            col(Inbox.address) == item.recipient.value)
    )
    return found.scalars().first()


def _place(conversation: Conversation, inbox: Inbox | None) -> None:
    if inbox is not None and conversation.inbox_id is None:
        conversation.inbox_id = inbox.id
        conversation.team_id = conversation.team_id or inbox.team_id


def _placer(inbox: Inbox | None) -> EventHandler:
    """An event handler that files a new conversation under the inbox before routing hears of it."""

    async def place(session: AsyncSession, event: Event) -> None:
        if event.type == CONVERSATION_CREATED and event.conversation_id is not None:
            conversation = await session.get(Conversation, event.conversation_id)
            if conversation is not None:
                _place(conversation, inbox)

    return place


async def _consent(session: AsyncSession, item: Inbound, result: IngestResult, source: str) -> None:
    if Flag.OPT_OUT in item.flags:
        record = consent.opt_out
    elif Flag.OPT_IN in item.flags:
        record = consent.opt_in
    else:
        return
    assert result.customer_id is not None
    await record(session, customer_id=result.customer_id, channel=item.channel.value,
                 address=item.sender.value, source=source, detail=item.body_text[:200], at=item.received_at)


def consent_source(form: MultiDict[str]) -> str:
    """Where an opt-out/in came from: Twilio's Advanced Opt-Out field, or our keyword match."""
    return "twilio_opt_out_type" if (form.get("OptOutType") or "").strip() else "sms_keyword"


def with_segments(item: Inbound) -> Inbound:
    """NumSegments moved to the message headers, where the inbox shows it."""
    segments = item.meta.get("segments")
    if not segments:
        return item
    return dataclasses.replace(item, headers=(*item.headers, ("segments", str(segments))))


async def _store(
    session: AsyncSession, runtime: Runtime, item: Inbound, consent_source: str, raw_id: int | None
) -> IngestResult:
    inbox = await inbox_for(session, item)
    base = runtime.ingest_context
    ctx = dataclasses.replace(base, handlers=(_placer(inbox), *base.handlers))
    result = await ingest(session, item, ctx)
    if result.outcome is Outcome.STORED:
        conversation = await session.get(Conversation, result.conversation_id)
        if conversation is not None:
            _place(conversation, inbox)  # an older conversation opened before the inbox existed
        message = await session.get(Message, result.message_id)
        if message is not None and raw_id is not None:
            message.raw_id = raw_id  # the webhook kept the form already; no second copy
        await _consent(session, item, result, consent_source)
    return result


async def store(
    runtime: Runtime, item: Inbound, *, consent_source: str, raw_id: int | None = None
) -> IngestResult:
    """Ingest once; retried when a concurrent delivery of the same message won the unique index."""
    for attempt in range(RACE_RETRIES):
        try:
            async with outbox.unit_of_work(runtime.factory, runtime.queue) as session:
                return await _store(session, runtime, item, consent_source, raw_id)
        except IntegrityError:
            if attempt == RACE_RETRIES - 1:
                raise
    raise AssertionError("unreachable")


def ingest_job(runtime: Runtime) -> Handler:
    """The outbox handler that ingests a kept webhook form (bound to this runtime's handlers)."""

    async def run(ctx: JobContext, job: OutboxItem) -> dict[str, Any]:
        raw_id = int(job.payload["raw_id"])
        async with ctx.factory() as session:
            raw = await session.get(RawInput, raw_id)
        if raw is None:
            raise PermanentError(f"raw webhook form {raw_id} is gone")
        form = form_fields(raw.data)
        try:
            item = parse_inbound(form, region=runtime.settings.default_region, now=raw.received_at)
        except WebhookFormError as exc:  # the webhook parsed it before queueing; only new code gets here
            raise PermanentError(str(exc)) from exc
        result = await store(runtime, with_segments(item), consent_source=consent_source(form), raw_id=raw_id)
        return {"outcome": result.outcome.value, "message_id": result.message_id}

    return run
