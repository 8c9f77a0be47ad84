"""The shunt queue: list and replay what could not be parsed or what failed for good."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping

from sqlalchemy import update
from sqlmodel import col, select

from hub.core.outbox import JobQueue
from hub.store.engine import SessionFactory
from hub.store.models import OutboxItem, QuarantineItem
from hub.store.types import utcnow

# channel name -> async fn(raw bytes, source) -> outcome text; channels register theirs at start-up
Replayer = Callable[[bytes, str | None], Awaitable[str]]


class NotReplayable(LookupError):
    """Nothing knows how to replay this item (no raw bytes, or no replayer for its channel)."""


async def pending(factory: SessionFactory, *, stage: str | None = None, limit: int = 100) -> list[QuarantineItem]:
    """Items not replayed yet, oldest first, optionally of one stage (`parse`, `job:send_message`...)."""
    query = select(QuarantineItem).where(col(QuarantineItem.replayed_at).is_(None))
    if stage:
        query = query.where(col(QuarantineItem.stage).startswith(stage))
    async with factory() as session:
        return list((await session.execute(query.order_by(col(QuarantineItem.id)).limit(limit))).scalars())


async def _requeue_job(factory: SessionFactory, queue: JobQueue, item: QuarantineItem) -> str:
    outbox_id = int(item.payload["outbox_id"])
    async with factory() as session, session.begin():
        await session.execute(
            update(OutboxItem).where(col(OutboxItem.id) == outbox_id, col(OutboxItem.status).in_(["dead", "failed"]))
            .values(status="queued", available_at=utcnow(), max_attempts=OutboxItem.attempt + 3,
                    last_error=f"replayed from quarantine {item.id}")
        )
    await queue.enqueue(outbox_id)
    return f"outbox {outbox_id} re-queued"


async def replay(
    factory: SessionFactory, queue: JobQueue, replayers: Mapping[str, Replayer], item_id: int
) -> str:
    """Send one quarantined item down its path again and mark it replayed; returns what happened."""
    async with factory() as session:
        item = await session.get(QuarantineItem, item_id)
    if item is None:
        raise NotReplayable(f"no quarantine item {item_id}")
    if item.stage.startswith("job:") and "outbox_id" in item.payload:
        outcome = await _requeue_job(factory, queue, item)
    elif item.raw is not None and item.channel is not None and item.channel in replayers:
        outcome = await replayers[item.channel](item.raw, item.source)
    else:
        raise NotReplayable(f"quarantine item {item_id} ({item.stage}, {item.channel}) has no replay path")
    async with factory() as session, session.begin():
        await session.execute(
            update(QuarantineItem).where(col(QuarantineItem.id) == item_id).values(replayed_at=utcnow())
        )
    return outcome

