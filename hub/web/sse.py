"""Live updates: DomainEvent rows are the durable log; one poller per process fans them out.

Every web process reads new rows itself, so no event depends on the memory of the process that
wrote it, and a client reconnecting with Last-Event-ID is replayed from the table. Ids are
handed out before commit, so a row can become visible after a higher id did: the poller keeps
such holes as "gaps" and looks for them again for `gap_seconds` before giving up on them
(a rolled-back transaction leaves a hole for ever). Ingest transactions were seen open for
18 s under load, so holes are kept for minutes: a hole costs one id in an IN list per poll.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, or_
from sqlmodel import col, select

from hub.store.engine import SessionFactory
from hub.store.models import DomainEvent

log = logging.getLogger(__name__)

MAX_GAP_IDS = 1000
REPLAY_LIMIT = 1000
CLOSED = object()  # put on a stream's queue when the broker shuts down


@dataclass(frozen=True, slots=True)
class LiveEvent:
    """A stored domain event as a stream sends it."""

    id: int
    type: str
    conversation_id: int | None
    customer_id: int | None
    team_id: int | None
    payload: dict[str, Any]
    at: datetime

    @classmethod
    def of(cls, row: DomainEvent) -> LiveEvent:
        assert row.id is not None
        return cls(row.id, row.type, row.conversation_id, row.customer_id, row.team_id, dict(row.payload), row.at)

    @property
    def assignee_id(self) -> int | None:
        """The new assignee of an assignment event (others do not say)."""
        value = self.payload.get("agent_id") if self.type == "conversation.assigned" else None
        return value if isinstance(value, int) else None

    def frame(self) -> bytes:
        data = {"id": self.id, "type": self.type, "conversation_id": self.conversation_id,
                "customer_id": self.customer_id, "team_id": self.team_id, "payload": self.payload,
                "at": self.at.isoformat()}
        return f"id: {self.id}\nevent: {self.type}\ndata: {json.dumps(data, default=str)}\n\n".encode()


class EventBroker:
    """Polls DomainEvent for rows after the last one seen and hands them to every subscribed queue."""

    def __init__(self, factory: SessionFactory, *, interval: float = 0.25, gap_seconds: float = 300.0,
                 batch: int = 500) -> None:
        self._factory = factory
        self._interval, self._gap_seconds, self._batch = interval, gap_seconds, batch
        self._queues: set[asyncio.Queue[Any]] = set()
        self._last: int | None = None
        self._gaps: dict[int, float] = {}
        self._task: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()

    async def subscribe(self, queue: asyncio.Queue[Any]) -> None:
        """Start receiving every event stored from now on (the poller starts with the first subscriber)."""
        async with self._lock:
            if self._last is None:
                await self._start_position()
            self._queues.add(queue)
            if self._task is None or self._task.done():
                self._task = asyncio.create_task(self._run())

    def unsubscribe(self, queue: asyncio.Queue[Any]) -> None:
        self._queues.discard(queue)

    async def close(self) -> None:
        """Stop polling and end every open stream."""
        for queue in list(self._queues):
            with contextlib.suppress(asyncio.QueueFull):
                queue.put_nowait(CLOSED)
        self._queues.clear()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _start_position(self) -> None:
        # Rows just below the current maximum may still be uncommitted: remember the holes.
        async with self._factory() as session:
            top = (await session.execute(select(func.max(DomainEvent.id)))).scalar_one_or_none() or 0
            floor = max(top - 100, 0)
            seen = set((await session.execute(select(DomainEvent.id).where(col(DomainEvent.id) > floor))).scalars())
        now = time.monotonic()
        self._gaps = {i: now for i in range(floor + 1, top + 1) if i not in seen}
        self._last = top

    async def poll_once(self) -> list[LiveEvent]:
        """Read rows after the last one seen, plus any gap that has appeared since."""
        assert self._last is not None
        query = select(DomainEvent).where(or_(col(DomainEvent.id) > self._last,
                                              col(DomainEvent.id).in_(sorted(self._gaps))))
        async with self._factory() as session:
            rows = (await session.execute(query.order_by(col(DomainEvent.id)).limit(self._batch))).scalars().all()
        events = [LiveEvent.of(r) for r in rows]
        self._advance(events)
        return events

    def _advance(self, events: Sequence[LiveEvent]) -> None:
        now = time.monotonic()
        assert self._last is not None
        for event in events:
            if self._gaps.pop(event.id, None) is not None:
                continue
            if event.id > self._last + 1 and event.id - self._last <= MAX_GAP_IDS:
                self._gaps.update({i: now for i in range(self._last + 1, event.id)})
            self._last = max(self._last, event.id)
        self._gaps = {i: t for i, t in self._gaps.items() if now - t < self._gap_seconds}

    async def _run(self) -> None:
        while self._queues:
            try:
                events = await self.poll_once()
            except OSError:  # a dropped database connection: try again at the next tick
                log.warning("event poll failed; retrying", exc_info=True)
                events = []
            for event in events:
                self._deliver(event)
            if len(events) < self._batch:
                await asyncio.sleep(self._interval)

    def _deliver(self, event: LiveEvent) -> None:
        for queue in list(self._queues):
            try:
                queue.put_nowait(event)
            except asyncio.QueueFull:
                # A client that cannot keep up is cut off; it reconnects with Last-Event-ID and loses nothing.
                self._queues.discard(queue)
                queue.get_nowait()
                queue.put_nowait(CLOSED)


async def replay(factory: SessionFactory, after_id: int, limit: int = REPLAY_LIMIT) -> list[LiveEvent]:
    """Stored events after `after_id`, oldest first, for a client resuming with Last-Event-ID."""
    async with factory() as session:
        rows = (await session.execute(
            select(DomainEvent).where(col(DomainEvent.id) > after_id).order_by(col(DomainEvent.id)).limit(limit)
        )).scalars().all()
    return [LiveEvent.of(r) for r in rows]
