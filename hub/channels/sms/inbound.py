"""Inbound SMS/WhatsApp ingest job: the webhook kept the raw form (see spool.py); this stores it.

The job reads the form, runs ingest, files the conversation under its inbox and records consent
in one transaction, and is idempotent on the MessageSid because Twilio retries and arq re-runs
jobs. It is a batch kind: the forms of a burst are stored a chunk per transaction, each still
under the trace id of its own webhook request.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from multidict import MultiDict
from sqlalchemy import bindparam, func, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col, select

from hub import runtime as hub_runtime
from hub.channels.sms import consent
from hub.channels.sms.parse import WebhookFormError, parse_inbound
from hub.core import outbox
from hub.core.envelopes import Flag, Inbound
from hub.core.ingest import RACE_RETRIES, IngestResult, Outcome, ingest
from hub.core.jobs import FINISHED, Handler, Job, JobContext, PermanentError, batch_scope, finish_in
from hub.core.outbox import JobQueue
from hub.ops.context import traced_job
from hub.runtime import Runtime
from hub.store.engine import SessionFactory
from hub.store.models import Conversation, Inbox, Message, RawInput, table
from hub.web.twilio_signature import form_fields

INGEST_JOB = "twilio_inbound"
CHUNK = 10  # forms per ingest transaction: short enough for a webhook's commit to wait on
T = TypeVar("T")
Result = dict[str, Any]
Outcomes = dict[int, Result | Exception]  # by outbox id: a job's result, or what its handler raises
log = logging.getLogger(__name__)


async def inbox_for(session: AsyncSession, channel: str, address: str) -> Inbox | None:
    """The hub inbox of one of our numbers (channel + the To address customers write to)."""
    found = await session.execute(
        select(Inbox).where(col(Inbox.channel) == channel, col(Inbox.address) == address)
    )
    return found.scalars().first()


_LINK_RAW = (update(table(Message)).where(table(Message).c.id == bindparam("b_id"))
             .values(raw_id=bindparam("b_raw")))


@dataclass(frozen=True, slots=True)
class _Kept:
    """A form this job stored: its RawInput row, the parsed message and what ingest did with it."""

    raw_id: int
    item: Inbound
    result: IngestResult


async def _file(session: AsyncSession, kept: list[_Kept]) -> None:
    """Link stored messages to their kept forms (no second copy) and file older conversations, set-based."""
    stored = [k for k in kept if k.result.outcome is Outcome.STORED]
    if stored:
        await session.execute(_LINK_RAW, [{"b_id": k.result.message_id, "b_raw": k.raw_id} for k in stored])
    # ingest files a new conversation under the inbox of its To number itself; an older one,
    # opened before that number had an inbox, joins it now
    older: dict[tuple[str, str], list[int]] = {}
    for k in stored:
        if not k.result.new_conversation and k.result.conversation_id is not None:
            older.setdefault((k.item.channel.value, k.item.recipient.value), []).append(k.result.conversation_id)
    conversations = table(Conversation)
    for (channel, address), conversation_ids in older.items():
        inbox = await inbox_for(session, channel, address)
        if inbox is not None:
            await session.execute(
                update(conversations)
                .where(conversations.c.id.in_(conversation_ids), conversations.c.inbox_id.is_(None))
                .values(inbox_id=inbox.id, team_id=func.coalesce(conversations.c.team_id, inbox.team_id)))


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


async def _store(session: AsyncSession, runtime: Runtime, item: Inbound, consent_source: str) -> IngestResult:
    result = await ingest(session, item, runtime.ingest_context)
    if result.outcome is Outcome.STORED:
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


async def _store_kept(session: AsyncSession, runtime: Runtime, job: Job, raw: RawInput | None) -> _Kept:
    """Parse one kept form and ingest it in the caller's transaction (_file completes it)."""
    if raw is None or raw.id is None:
        raise PermanentError(f"raw webhook form {job.payload['raw_id']} is gone")
    form = form_fields(raw.data)
    try:
        item = parse_inbound(form, region=runtime.settings.default_region, now=raw.received_at)
    except WebhookFormError as exc:  # the webhook parsed it before queueing; only new code gets here
        raise PermanentError(str(exc)) from exc
    return _Kept(raw.id, item, await _store(session, runtime, with_segments(item), consent_source(form)))


def _result(kept: _Kept) -> Result:
    return {"outcome": kept.result.outcome.value, "message_id": kept.result.message_id}


async def _alone(session: AsyncSession, runtime: Runtime, job: Job) -> Result:
    kept = await _store_kept(session, runtime, job, await session.get(RawInput, int(job.payload["raw_id"])))
    await _file(session, [kept])
    return _result(kept)


async def _alone_and_finished(session: AsyncSession, runtime: Runtime, job: Job) -> Result:
    done = await _alone(session, runtime, job)
    await finish_in(session, job, done)  # one transaction per job, not a second one to mark it
    return {**done, FINISHED: True}


async def _together(runtime: Runtime, jobs: list[Job], turns: asyncio.Lock) -> Outcomes:
    """A batch's forms stored in arrival order, each under its own trace id, CHUNK per transaction.

    Webhooks come first (they wait for SQLite's one writer too): a chunk holds the write lock
    briefly, and each next one waits for the in-process dispatcher's turn. Each chunk takes the
    process's database turn (JobContext.db_turn, as claims and records do): one event loop runs
    one at a time anyway, and the others would only sleep in SQLite's busy handler meanwhile.
    """
    queue = hub_runtime.inprocess(runtime)
    ordered = sorted(jobs, key=lambda job: job.id)
    outcomes: Outcomes = {}
    for start in range(0, len(ordered), CHUNK):
        if start and queue is not None:
            await queue.give_way()
        async with turns:
            outcomes.update(await _chunk(runtime, ordered[start:start + CHUNK]))
    return outcomes


async def _chunk(runtime: Runtime, jobs: list[Job]) -> Outcomes:
    """Store the forms of `jobs` in one transaction; when that fails, each in its own."""
    try:
        async with outbox.unit_of_work(runtime.factory, runtime.queue) as session:
            forms = await _forms(session, jobs)
            kept: dict[int, _Kept] = {}
            for job in jobs:
                with traced_job(job):
                    kept[job.id] = await _store_kept(session, runtime, job, forms.get(int(job.payload["raw_id"])))
            await _file(session, list(kept.values()))
        return {job_id: _result(k) for job_id, k in kept.items()}
    except Exception as exc:  # any failure: the jobs one by one, each with its own outcome
        log.info("SMS ingest of %d forms together failed (%s: %s); storing them one by one",
                 len(jobs), type(exc).__name__, exc)
    return {job.id: await _one_of(runtime, job) for job in jobs}


async def _forms(session: AsyncSession, jobs: list[Job]) -> dict[int, RawInput]:
    raw_ids = [int(job.payload["raw_id"]) for job in jobs]
    found = await session.scalars(select(RawInput).where(col(RawInput.id).in_(raw_ids)))
    return {raw.id: raw for raw in found.all() if raw.id is not None}


async def _one_of(runtime: Runtime, job: Job) -> Result | Exception:
    with traced_job(job):
        try:
            return await _retried(runtime.factory, runtime.queue, lambda session: _alone(session, runtime, job))
        except Exception as exc:  # handed to this job's handler, which raises it as its own outcome
            return exc


def ingest_job(runtime: Runtime) -> Handler:
    """The outbox handler that ingests a kept webhook form (bound to this runtime's handlers).

    In a batch (INGEST_JOB is a batch kind) the first handler stores every form of the batch
    (see _together) and the others take their result from it.
    """

    async def run(ctx: JobContext, job: Job) -> Result:
        scope = batch_scope()
        if scope is None:
            return await _retried(ctx.factory, ctx.queue, lambda session: _alone_and_finished(session, runtime, job))
        outcome = (await scope.shared(INGEST_JOB, lambda jobs: _together(runtime, jobs, ctx.db_turn)))[job.id]
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    return run
