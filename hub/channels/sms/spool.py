"""The webhook's fast path: keep each raw form and queue its ingest job, with group commit.

Zulip's gateway habit: validate at the edge, keep the raw input, queue an id. Concurrent webhooks
share one transaction (one writer task drains everything that arrived meanwhile), so SQLite's
single writer commits once per batch instead of once per request; each request is answered only
after the commit that holds its form.
"""

from __future__ import annotations

import asyncio
import hashlib
from dataclasses import dataclass

from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col, select

from hub.core import outbox
from hub.core.envelopes import Inbound
from hub.ops.context import current_trace_id, trace_entry
from hub.runtime import Runtime
from hub.store import ids
from hub.store.models import Message, OutboxItem, RawInput, table
from hub.store.types import utcnow

FORM = "application/x-www-form-urlencoded"
MAX_BATCH = 200


@dataclass(frozen=True, slots=True)
class _Pending:
    item: Inbound
    body: bytes
    done: asyncio.Future[None]
    # Taken per request: the writer task runs in the context of whichever request started it.
    trace_id: str | None = None


async def _fresh(session: AsyncSession, batch: list[_Pending]) -> list[_Pending]:
    """The batch without Twilio retries: MessageSids already stored, or twice in the batch."""
    by_channel: dict[str, set[str]] = {}
    for pending in batch:
        by_channel.setdefault(pending.item.channel.value, set()).add(pending.item.external_id)
    seen: set[tuple[str, str]] = set()
    for channel, sids in by_channel.items():
        # channel = ? AND external_id IN (...) walks the unique index; external_id alone scans messages
        stored = await session.execute(
            select(col(Message.external_id))
            .where(col(Message.channel) == channel, col(Message.external_id).in_(sids))
        )
        seen.update((channel, sid) for sid in stored.scalars() if sid is not None)
    fresh = []
    for pending in batch:
        key = (pending.item.channel.value, pending.item.external_id)
        if key not in seen:
            seen.add(key)
            fresh.append(pending)
    return fresh


class Spool:
    """Keeps webhook forms as RawInput rows plus one outbox row each, committing in batches."""

    def __init__(self, runtime: Runtime, job: str) -> None:
        self.runtime, self.job = runtime, job
        self._pending: list[_Pending] = []
        self._writer: asyncio.Task[None] | None = None

    async def keep(self, item: Inbound, body: bytes) -> None:
        """Return once the form is committed with its ingest job queued (an exception means it is not)."""
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending.append(_Pending(item, body, done, current_trace_id()))
        if self._writer is None or self._writer.done():
            # The writer exits when nothing is pending, so no task outlives the loop.
            self._writer = asyncio.create_task(self._drain(), name="sms-spool")
        await done

    async def _drain(self) -> None:
        while self._pending:
            batch, self._pending = self._pending[:MAX_BATCH], self._pending[MAX_BATCH:]
            try:
                job_ids = await self._write(batch)
            except Exception as exc:  # every waiting request fails with it (a 500, so Twilio retries)
                for pending in batch:
                    if not pending.done.done():
                        pending.done.set_exception(exc)
                continue
            for pending in batch:
                if not pending.done.done():  # a client that hung up cancelled its future
                    pending.done.set_result(None)
            await outbox.dispatch(self.runtime.queue, job_ids)

    async def _write(self, batch: list[_Pending]) -> list[int]:
        now, attempts = utcnow(), self.runtime.settings.outbox_max_attempts
        async with self.runtime.factory() as session, session.begin():
            fresh = await _fresh(session, batch)
            if not fresh:
                return []
            # Ids taken first, so each table gets one executemany: RETURNING in parameter order
            # would make SQLAlchemy insert row by row on SQLite.
            raw_ids = await ids.allocate(session, "rawinput", len(fresh))
            job_ids = await ids.allocate(session, "outboxitem", len(fresh))
            # Core inserts: ORM objects cost more than the rest of the request here.
            await session.execute(insert(table(RawInput)), [
                {"id": raw_id, "channel": p.item.channel.value, "content_type": FORM, "data": p.body,
                 "sha256": hashlib.sha256(p.body).hexdigest(), "received_at": now}
                for raw_id, p in zip(raw_ids, fresh, strict=True)])
            await session.execute(insert(table(OutboxItem)), [
                {"id": job_id, "kind": self.job,
                 "payload": {"raw_id": raw_id, "channel": p.item.channel.value, **trace_entry(p.trace_id)},
                 "status": "queued", "attempt": 0, "max_attempts": attempts, "available_at": now,
                 "result": {}, "created_at": now, "updated_at": now}
                for job_id, raw_id, p in zip(job_ids, raw_ids, fresh, strict=True)])
        return job_ids
