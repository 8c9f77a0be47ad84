"""Running outbox items: claim, run the handler for its kind, record the outcome, retry or shunt.

arq and the in-process dispatcher both call `run_outbox_item`; arq is at-least-once, so the
conditional claim (`queued -> running`) is what keeps an item from running twice at once.
"""

from __future__ import annotations

import logging
import traceback
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Protocol

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col, select

from hub.core.blobs import BlobStore
from hub.core.envelopes import Outbound, SendResult
from hub.core.outbox import JobQueue
from hub.store.engine import SessionFactory
from hub.store.models import OutboxItem, QuarantineItem
from hub.store.types import utcnow

log = logging.getLogger(__name__)


class TransientError(Exception):
    """Ours or the provider's fault; worth another try later."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class PermanentError(Exception):
    """The recipient's or the content's fault; retrying would fail the same way."""


class Sender(Protocol):
    """A channel's way out (SMTP, Twilio); tests plug real local servers in behind it."""

    async def send(self, item: Outbound) -> SendResult: ...


Handler = Callable[["JobContext", OutboxItem], Awaitable[dict[str, Any]]]


@dataclass
class JobContext:
    """Resources every job may use; built once per worker process."""

    factory: SessionFactory
    queue: JobQueue
    blobs: BlobStore
    handlers: dict[str, Handler] = field(default_factory=dict)
    senders: Mapping[str, Sender] = field(default_factory=dict)
    extras: dict[str, Any] = field(default_factory=dict)
    stuck_after: timedelta = timedelta(minutes=5)


def backoff_seconds(attempt: int) -> float:
    """Exponential backoff capped at an hour: 2, 4, 8 ... seconds."""
    return float(min(2 ** max(attempt, 1), 3600))


async def claim(factory: SessionFactory, item_id: int) -> OutboxItem | None:
    """Take a due, queued item for this worker; None when someone else has it or it is done."""
    now = utcnow()
    async with factory() as session, session.begin():
        claimed = await session.execute(
            update(OutboxItem)
            .where(OutboxItem.id == item_id, OutboxItem.status == "queued", OutboxItem.available_at <= now)  # type: ignore[arg-type]
            .values(status="running", claimed_at=now, attempt=OutboxItem.attempt + 1, updated_at=now)
        )
        if claimed.rowcount != 1:  # type: ignore[attr-defined]
            return None
        return (await session.execute(select(OutboxItem).where(col(OutboxItem.id) == item_id))).scalar_one()


# A handler that finished its row itself (in the transaction recording its effect) returns this key,
# which saves one write transaction per job.
FINISHED = "finished"


async def _finish(factory: SessionFactory, item_id: int, status: str, **values: Any) -> None:
    async with factory() as session, session.begin():
        await session.execute(
            update(OutboxItem).where(col(OutboxItem.id) == item_id, col(OutboxItem.status) == "running")
            .values(status=status, updated_at=utcnow(), **values)
        )


async def finish_in(session: AsyncSession, item: OutboxItem, result: dict[str, Any]) -> None:
    """Mark a running item done inside the caller's transaction."""
    await session.execute(
        update(OutboxItem).where(col(OutboxItem.id) == item.id, col(OutboxItem.status) == "running")
        .values(status="done", updated_at=utcnow(), result=result, last_error=None)
    )


async def _retry_or_shunt(ctx: JobContext, item: OutboxItem, exc: BaseException, delay: float | None) -> str:
    assert item.id is not None
    if item.attempt >= item.max_attempts:
        await _shunt(ctx, item, exc)
        return "dead"
    wait = delay if delay is not None else backoff_seconds(item.attempt)
    await _finish(
        ctx.factory, item.id, "queued", last_error=f"{type(exc).__name__}: {exc}",
        available_at=utcnow() + timedelta(seconds=wait),
    )
    await ctx.queue.enqueue(item.id, delay=wait)
    return "retry"


async def _shunt(ctx: JobContext, item: OutboxItem, exc: BaseException) -> None:
    """A job that failed for good becomes a dead-letter row; `hub quarantine replay` re-queues it."""
    assert item.id is not None
    await _finish(ctx.factory, item.id, "dead", last_error=f"{type(exc).__name__}: {exc}")
    async with ctx.factory() as session, session.begin():
        session.add(QuarantineItem(
            stage=f"job:{item.kind}", payload={"outbox_id": item.id, **item.payload},
            error=f"{type(exc).__name__}: {exc}", traceback="".join(traceback.format_exception(exc)),
        ))


async def run_outbox_item(ctx: JobContext, item_id: int) -> str:
    """Run one outbox item to an outcome: done, failed, retry, dead, or skipped."""
    item = await claim(ctx.factory, item_id)
    if item is None:
        return "skipped"
    handler = ctx.handlers.get(item.kind)
    if handler is None:
        await _shunt(ctx, item, LookupError(f"no handler for outbox kind {item.kind!r}"))
        return "dead"
    try:
        result = await handler(ctx, item)
    except TransientError as exc:
        return await _retry_or_shunt(ctx, item, exc, exc.retry_after)
    except PermanentError as exc:
        await _finish(ctx.factory, item_id, "failed", last_error=str(exc))
        return "failed"
    except Exception as exc:  # one catch point: an unexpected crash is retried, then shunted
        log.exception("outbox item %s (%s) crashed", item_id, item.kind)
        return await _retry_or_shunt(ctx, item, exc, None)
    if not result.get(FINISHED):
        await _finish(ctx.factory, item_id, "done", result=result, last_error=None)
    return "done"


async def sweep(ctx: JobContext, *, grace: timedelta = timedelta(seconds=5), limit: int = 1000) -> dict[str, int]:
    """Re-queue items a crashed worker left running, and re-enqueue due items nobody picked up."""
    now = utcnow()
    async with ctx.factory() as session, session.begin():
        revived = await session.execute(
            update(OutboxItem)
            .where(OutboxItem.status == "running", OutboxItem.claimed_at < now - ctx.stuck_after)  # type: ignore[arg-type,operator]
            .values(status="queued", available_at=now, updated_at=now, last_error="worker lost; re-queued")
        )
        due = (await session.execute(
            select(col(OutboxItem.id))
            .where(col(OutboxItem.status) == "queued", col(OutboxItem.available_at) <= now - grace)
            .order_by(col(OutboxItem.available_at)).limit(limit)
        )).scalars().all()
    for item_id in due:
        if item_id is not None:
            await ctx.queue.enqueue(item_id)
    return {"revived": revived.rowcount, "enqueued": len(due)}  # type: ignore[attr-defined]
