"""Start-up hook: metrics and trace ids at the edges of the core, without the core knowing.

- `message.received` events are counted when their transaction commits (a rolled-back ingest,
  retried after a unique-index race, is not counted twice);
- every outbox handler is timed, its failures counted, one line logged, and it runs under the
  trace id of the request that wrote its row;
- every channel sender is timed by outcome;
- outbox rows written through the ORM carry the current trace id in their payload (Core
  inserts, such as the SMS webhook spool's, add `context.trace_entry` themselves).
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import event as sa_event
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from hub import runtime as hub_runtime
from hub.core.delivery import BatchSender
from hub.core.envelopes import Outbound, SendResult
from hub.core.events import MESSAGE_RECEIVED, Event, handles
from hub.core.jobs import Attempt, BatchRunner, Handler, Job, JobContext, Sender
from hub.ops import metrics
from hub.ops.context import STARTED_AT, TRACE_KEY, current_trace_id, traced_job
from hub.ops.jobs import add_background
from hub.store.models import OutboxItem

log = logging.getLogger(__name__)

_INGESTED = "hub.ops.ingested"  # session.info key: [(channel, started_at)] waiting for the commit


@handles(MESSAGE_RECEIVED)
async def count_ingest(session: AsyncSession, event: Event) -> None:
    """Remember a stored inbound message; `_committed` counts it once the transaction commits."""
    if event.type != MESSAGE_RECEIVED:
        return
    channel = str(event.data.get("channel", "unknown"))
    session.info.setdefault(_INGESTED, []).append((channel, STARTED_AT.get()))


@sa_event.listens_for(Session, "after_commit")
def _committed(session: Session) -> None:
    pending: list[tuple[str, float | None]] = session.info.pop(_INGESTED, [])
    now = time.time()
    for channel, started in pending:
        metrics.INGEST.labels(channel, "stored").inc()
        if started is not None:
            metrics.INGEST_SECONDS.labels(channel).observe(max(0.0, now - started))


@sa_event.listens_for(Session, "after_rollback")
def _rolled_back(session: Session) -> None:
    session.info.pop(_INGESTED, None)


@sa_event.listens_for(OutboxItem, "before_insert")
def _stamp_trace(_mapper: Any, _connection: Any, target: OutboxItem) -> None:
    # The job that runs this row logs under the same id as the request that decided it.
    trace_id = current_trace_id()
    if trace_id is not None and TRACE_KEY not in target.payload:
        target.payload = {**target.payload, TRACE_KEY: trace_id}


# Labelled children looked up once: `labels()` costs microseconds per call, paid per message sent.
@functools.lru_cache(maxsize=256)
def _job_seconds(kind: str, outcome: str) -> Any:
    return metrics.JOB_SECONDS.labels(kind, outcome)


@functools.lru_cache(maxsize=256)
def _send_seconds(channel: str, outcome: str) -> Any:
    return metrics.SEND_SECONDS.labels(channel, outcome)


def _finished(kind: str, item: Job, outcome: str, started: float) -> None:
    """Time the job and leave one log line under its trace id, so a trace reads from webhook to send."""
    seconds = time.perf_counter() - started
    _job_seconds(kind, outcome).observe(seconds)
    _log_line(kind, item, outcome, seconds)


def _log_line(kind: str, item: Job, outcome: str, seconds: float) -> None:
    log.info("outbox job %s %s: %s", kind, item.id, outcome,
             extra={"job": kind, "outbox_id": item.id, "outcome": outcome, "seconds": round(seconds, 4)})


def _log_finished(kind: str, item: Job, outcome: str, seconds: float) -> None:
    """The job's line for an item of a batch, under the item's own trace id."""
    with traced_job(item):
        _log_line(kind, item, outcome, seconds)


def timed_handler(kind: str, handler: Handler) -> Handler:
    """The handler, run under its row's trace id, timed and with failures counted by exception class."""

    async def run(ctx: JobContext, item: Job) -> dict[str, Any]:
        with traced_job(item):
            started = time.perf_counter()
            try:
                result = await handler(ctx, item)
            except Exception as exc:  # counted and re-raised: run_outbox_item decides retry or shunt
                metrics.JOB_FAILURES.labels(kind, type(exc).__name__).inc()
                _finished(kind, item, "error", started)
                raise
            _finished(kind, item, "ok", started)
            return result

    return run


def timed_batch_runner(kind: str, runner: BatchRunner) -> BatchRunner:
    """The batch runner, timed: each item gets an equal share of the batch's time and its log line."""

    async def run(ctx: JobContext, items: list[Job]) -> list[Attempt]:
        started = time.perf_counter()
        attempts = await runner(ctx, items)
        share = (time.perf_counter() - started) / max(1, len(attempts))
        logs = log.isEnabledFor(logging.INFO)
        for attempt in attempts:
            outcome = "ok" if attempt.error is None else "error"
            if attempt.error is not None:
                metrics.JOB_FAILURES.labels(kind, type(attempt.error).__name__).inc()
            _job_seconds(kind, outcome).observe(share)
            if logs:  # under the row's trace id, as a single job's line is
                _log_finished(kind, attempt.item, outcome, share)
        return attempts

    run.timed = True  # type: ignore[attr-defined]
    return run


class TimedHandlers(dict[str, Handler]):
    """The job context's handler table; `get` (what run_outbox_item calls) hands out timed handlers."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._timed: dict[tuple[str, Handler], Handler] = {}  # one wrapper per handler, not one per job

    def get(self, kind: str, default: Any = None) -> Any:
        handler = super().get(kind)
        if handler is None:
            return default
        timed = self._timed.get((kind, handler))
        if timed is None:
            timed = self._timed[(kind, handler)] = timed_handler(kind, handler)
        return timed


def _send_outcome(result: SendResult) -> str:
    return "ok" if result.ok else ("permanent" if result.permanent else "failed")


class TimedSender:
    """A channel sender whose every call is timed by outcome (ok, failed, permanent, error)."""

    def __init__(self, channel: str, inner: Sender) -> None:
        self.channel, self.inner = channel, inner

    async def send(self, item: Outbound) -> SendResult:
        started = time.perf_counter()
        outcome = "error"
        try:
            result = await self.inner.send(item)
            outcome = _send_outcome(result)
            return result
        finally:
            _send_seconds(self.channel, outcome).observe(time.perf_counter() - started)

    def __getattr__(self, name: str) -> Any:
        # Channel code may reach for its sender's own helpers (close, pool...).
        return getattr(self.inner, name)


class TimedBatchSender(TimedSender):
    """A TimedSender for a sender with send_many: each message gets an equal share of the call's time."""

    async def send_many(self, items: Sequence[Outbound]) -> list[SendResult]:
        inner = self.inner
        assert isinstance(inner, BatchSender)
        started = time.perf_counter()
        try:
            results = await inner.send_many(items)
        except Exception:
            _send_seconds(self.channel, "error").observe(time.perf_counter() - started)
            raise
        share = (time.perf_counter() - started) / max(1, len(results))
        for result in results:
            _send_seconds(self.channel, _send_outcome(result)).observe(share)
        return results


def _timed(channel: str, sender: Sender) -> Sender:
    if isinstance(sender, TimedSender):
        return sender
    return TimedBatchSender(channel, sender) if isinstance(sender, BatchSender) else TimedSender(channel, sender)


def _timed_senders(senders: Mapping[str, Sender]) -> dict[str, Sender]:
    return {channel: _timed(channel, s) for channel, s in senders.items()}


@hub_runtime.plugin
def wire_ops(runtime: hub_runtime.Runtime) -> None:
    """Count ingests, time jobs and sends. Loaded last by runtime._load_plugins, after the channels."""
    if count_ingest not in runtime.handlers:
        runtime.handlers.append(count_ingest)
    if not isinstance(runtime.jobs.handlers, TimedHandlers):
        runtime.jobs.handlers = TimedHandlers(runtime.jobs.handlers)
    runtime.jobs.senders = _timed_senders(runtime.jobs.senders)
    runtime.jobs.batch_runners = {kind: runner if getattr(runner, "timed", False) else timed_batch_runner(kind, runner)
                                  for kind, runner in runtime.jobs.batch_runners.items()}
    add_background(runtime)
