"""The webhook's fast path: keep each raw form and queue its ingest job, with group commit.

Zulip's gateway habit: validate at the edge, keep the raw input, queue an id. Concurrent webhooks
share one transaction (one writer task drains everything that arrived meanwhile), so SQLite's
single writer commits once per batch instead of once per request; each request is answered only
after the commit that holds its form.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
from dataclasses import dataclass

from sqlalchemy import bindparam, select
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncSession

from hub.core import outbox
from hub.core.envelopes import Inbound
from hub.ops.context import current_trace_id, trace_entry
from hub.runtime import Runtime
from hub.store import ids
from hub.store.bulk import DriverStatement, driver_rows, session_binder
from hub.store.models import Message, OutboxItem, RawInput, table
from hub.store.types import utcnow

FORM = "application/x-www-form-urlencoded"
MAX_BATCH = 200

# Prebuilt Core and driver statements: SQLAlchemy's per-statement work (ORM, building an IN list,
# the adapted cursor's thread hops) would otherwise be most of a small batch's cost.
_MESSAGES = table(Message)
_STORED = select(_MESSAGES.c.external_id).where(  # (channel, external_id) is the unique index
    _MESSAGES.c.channel == bindparam("channel"), _MESSAGES.c.external_id.in_(bindparam("sids", expanding=True)))


@functools.lru_cache(maxsize=256)
def _stored_sql(dialect: Dialect, count: int) -> str:
    """_STORED for `count` MessageSids in the dialect's own paramstyle, for the driver (channel first)."""
    sample = _STORED.params(channel="", sids=[""] * count)
    return str(sample.compile(dialect=dialect, compile_kwargs={"render_postcompile": True}))


_KEEP_FORM = DriverStatement.insert(table(RawInput), ("id", "channel", "content_type", "data", "sha256", "received_at"))
_QUEUE_JOB = DriverStatement.insert(table(OutboxItem), (
    "id", "kind", "payload", "status", "attempt", "max_attempts", "available_at", "result", "created_at", "updated_at"))


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
    dialect = session.get_bind().dialect
    for channel, sids in by_channel.items():
        stored = await driver_rows(session, _stored_sql(dialect, len(sids)), (channel, *sids))
        seen.update((channel, sid) for (sid,) in stored)
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
        # The process's database turn (shared with the jobs' batches): SQLite writers queue there
        # instead of sleeping in its busy handler, and in-process jobs hold it only briefly.
        async with self.runtime.jobs.db_turn, self.runtime.factory() as session, session.begin():
            fresh = await _fresh(session, batch)
            if not fresh:
                return []
            # Ids taken first, so each table gets one executemany at the driver: RETURNING in
            # parameter order would make SQLAlchemy insert row by row on SQLite.
            taken = await ids.allocate_many(session, {"rawinput": len(fresh), "outboxitem": len(fresh)})
            raw_ids, job_ids = taken["rawinput"], taken["outboxitem"]
            bind = session_binder(session)
            now = bind.time(utcnow())  # one transaction, one moment
            await _KEEP_FORM.run(session, [
                (raw_id, p.item.channel.value, FORM, p.body, hashlib.sha256(p.body).hexdigest(), now)
                for raw_id, p in zip(raw_ids, fresh, strict=True)])
            queued, attempts, empty = "queued", self.runtime.settings.outbox_max_attempts, bind.json({})
            await _QUEUE_JOB.run(session, [
                (job_id, self.job, bind.json({"raw_id": raw_id, "channel": p.item.channel.value,
                                              **trace_entry(p.trace_id)}),
                 queued, 0, attempts, now, empty, now, now)
                for job_id, raw_id, p in zip(job_ids, raw_ids, fresh, strict=True)])
        return job_ids
