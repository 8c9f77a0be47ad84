"""Outbox rows: work decided in a transaction and handed to the job queue only after it commits."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any, Protocol

from redis.exceptions import RedisError
from sqlalchemy.ext.asyncio import AsyncSession

from hub.store.engine import SessionFactory
from hub.store.models import OutboxItem
from hub.store.types import utcnow

log = logging.getLogger(__name__)

_PENDING = "hub.outbox.pending"


class JobQueue(Protocol):
    """Where committed outbox ids go: arq with Redis, or the in-process dispatcher."""

    async def enqueue(self, item_id: int, *, delay: float = 0.0) -> None: ...


async def add(
    session: AsyncSession, kind: str, payload: dict[str, Any], *,
    available_at: datetime | None = None, max_attempts: int = 8,
) -> OutboxItem:
    """Write an outbox row in the caller's transaction; it is enqueued after that commits."""
    item = OutboxItem(kind=kind, payload=payload, available_at=available_at or utcnow(), max_attempts=max_attempts)
    session.add(item)
    await session.flush()
    session.info.setdefault(_PENDING, []).append(item.id)
    return item


def take_pending(session: AsyncSession) -> list[int]:
    """Outbox ids written in this session since the last call."""
    pending: list[int] = session.info.pop(_PENDING, [])
    return pending


async def dispatch(queue: JobQueue, item_ids: list[int]) -> None:
    """Enqueue committed rows; a failure here is repaired by the sweeper, so it is only logged."""
    for item_id in item_ids:
        try:
            await queue.enqueue(item_id)
        except (RedisError, OSError) as exc:
            log.warning("outbox %s not enqueued (%s); the sweeper will retry", item_id, exc)


@asynccontextmanager
async def unit_of_work(factory: SessionFactory, queue: JobQueue) -> AsyncIterator[AsyncSession]:
    """A transaction whose outbox rows are enqueued once it has committed, never before."""
    async with factory() as session:
        async with session.begin():
            yield session
        await dispatch(queue, take_pending(session))
