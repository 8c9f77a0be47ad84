"""Inbound SMS/WhatsApp ingest job: the webhook kept the raw form (see spool.py); this stores it.

The job reads the form, runs ingest, files the conversation under its inbox, records consent and
finishes its outbox row, all in one transaction, and is idempotent on the MessageSid because
Twilio retries and arq re-runs jobs.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from multidict import MultiDict
from sqlalchemy import update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col, select

from hub.channels.sms import consent
from hub.channels.sms.parse import WebhookFormError, parse_inbound
from hub.channels.sms.signature import form_fields
from hub.core import outbox
from hub.core.envelopes import Flag, Inbound
from hub.core.ingest import RACE_RETRIES, IngestResult, Outcome, ingest
from hub.core.jobs import FINISHED, Handler, JobContext, PermanentError, finish_in
from hub.core.outbox import JobQueue
from hub.runtime import Runtime
from hub.store.engine import SessionFactory
from hub.store.models import Conversation, Inbox, Message, OutboxItem, RawInput, table

INGEST_JOB = "twilio_inbound"
T = TypeVar("T")


async def inbox_for(session: AsyncSession, item: Inbound) -> Inbox | None:
    """The hub inbox whose number the customer wrote to (channel + To address)."""
    found = await session.execute(
        select(Inbox).where(col(Inbox.channel) == item.channel.value,
                            col(Inbox.address) == item.recipient.value)
    )
    return found.scalars().first()


async def _file_older(session: AsyncSession, item: Inbound, conversation_id: int | None) -> None:
    """An older conversation, opened before its number had an inbox, joins that inbox now."""
    conversation = await session.get(Conversation, conversation_id) if conversation_id is not None else None
    if conversation is None or conversation.inbox_id is not None:
        return
    inbox = await inbox_for(session, item)
    if inbox is not None:
        conversation.inbox_id = inbox.id
        conversation.team_id = conversation.team_id or inbox.team_id


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
    # ingest files a new conversation under the inbox of its To number itself
    result = await ingest(session, item, runtime.ingest_context)
    if result.outcome is Outcome.STORED:
        if not result.new_conversation:
            await _file_older(session, item, result.conversation_id)
        if raw_id is not None:  # the webhook kept the form already; no second copy
            messages = table(Message)
            await session.execute(update(messages).where(messages.c.id == result.message_id).values(raw_id=raw_id))
        await _consent(session, item, result, consent_source)
    return result


async def _retried(factory: SessionFactory, queue: JobQueue, work: Callable[[AsyncSession], Awaitable[T]]) -> T:
    """Run `work` in one transaction; again when a concurrent delivery of the same message won the unique index."""
    for attempt in range(RACE_RETRIES):
        try:
            async with outbox.unit_of_work(factory, queue) as session:
                return await work(session)
        except IntegrityError:
            if attempt == RACE_RETRIES - 1:
                raise
    raise AssertionError("unreachable")


async def store(
    runtime: Runtime, item: Inbound, *, consent_source: str, raw_id: int | None = None
) -> IngestResult:
    """Ingest once; retried when a concurrent delivery of the same message won the unique index."""
    return await _retried(runtime.factory, runtime.queue,
                          lambda session: _store(session, runtime, item, consent_source, raw_id))


async def _ingest_kept(session: AsyncSession, runtime: Runtime, job: OutboxItem) -> dict[str, Any]:
    """Parse the kept form, store it and finish the job's row, in the caller's transaction."""
    raw_id = int(job.payload["raw_id"])
    raw = await session.get(RawInput, raw_id)
    if raw is None:
        raise PermanentError(f"raw webhook form {raw_id} is gone")
    form = form_fields(raw.data)
    try:
        item = parse_inbound(form, region=runtime.settings.default_region, now=raw.received_at)
    except WebhookFormError as exc:  # the webhook parsed it before queueing; only new code gets here
        raise PermanentError(str(exc)) from exc
    result = await _store(session, runtime, with_segments(item), consent_source(form), raw_id)
    done = {"outcome": result.outcome.value, "message_id": result.message_id}
    await finish_in(session, job, done)  # one transaction per job, not a second one to mark it
    return {**done, FINISHED: True}


def ingest_job(runtime: Runtime) -> Handler:
    """The outbox handler that ingests a kept webhook form (bound to this runtime's handlers)."""

    async def run(ctx: JobContext, job: OutboxItem) -> dict[str, Any]:
        return await _retried(ctx.factory, ctx.queue, lambda session: _ingest_kept(session, runtime, job))

    return run
