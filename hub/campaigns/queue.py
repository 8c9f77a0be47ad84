"""Batch jobs: arq on Redis (shared by every `hub worker`), or tasks in this process without Redis.

A job carries a campaign id and up to ~1,000 recipient ids; its arq job id is derived from
those rows, so enqueuing the same batch twice while it waits is a no-op.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from typing import Any, Protocol

from arq.constants import default_queue_name, in_progress_key_prefix
from redis.exceptions import RedisError

from hub.store.types import utcnow

log = logging.getLogger(__name__)

SEND_JOB = "campaign_send_batch"
TICK_JOB = "campaign_tick"
BUSY_PAGE = 500  # queued job ids read per round trip when looking for a waiting batch


def batch_job_id(campaign_id: int, ids: Sequence[int], tag: str) -> str:
    """`campaign:<id>:<first>-<last>:<count>:<tag>`; the tag tells a retry from a first run."""
    return f"campaign:{campaign_id}:{ids[0]}-{ids[-1]}:{len(ids)}:{tag}"


class BatchQueue(Protocol):
    """Where batches of recipient ids go to be sent."""

    async def enqueue(self, campaign_id: int, ids: Sequence[int], *, tag: str, at: datetime | None = None) -> bool: ...

    async def busy(self, campaign_id: int) -> bool:
        """Whether a due or running batch of this campaign exists (then nothing is lost yet)."""
        ...


class ArqBatchQueue:
    """Enqueue batches as arq jobs; a Redis outage is logged and repaired by the scheduler's sweep."""

    def __init__(self, pool: Any) -> None:
        self.pool = pool

    async def enqueue(self, campaign_id: int, ids: Sequence[int], *, tag: str, at: datetime | None = None) -> bool:
        if not ids:
            return True
        defer = at
        try:
            await self.pool.enqueue_job(SEND_JOB, campaign_id, list(ids), _job_id=batch_job_id(campaign_id, ids, tag),
                                        _defer_until=defer)
        except (RedisError, OSError) as exc:
            log.warning("campaign %s batch not enqueued (%s); the sweep will retry", campaign_id, exc)
            return False
        return True

    async def busy(self, campaign_id: int) -> bool:
        prefix = f"campaign:{campaign_id}:"
        now_ms = int(utcnow().timestamp() * 1000)
        # Running jobs stay in arq's queue but do not count: one held by a killed worker would block
        # recovery until its arq timeout; rows a live job has not reached are enqueued twice (claims dedupe).
        # Read a page at a time: a big campaign has thousands of batches queued.
        start = 0
        while due := await self.pool.zrangebyscore(default_queue_name, "-inf", now_ms, start=start, num=BUSY_PAGE):
            ours = [in_progress_key_prefix + job.decode() for job in due if job.decode().startswith(prefix)]
            if ours and int(await self.pool.exists(*ours)) < len(ours):
                return True
            start += len(due)
        return False


class LocalBatchQueue:
    """The embedded twin: runs batches on tasks of this process, same function, same rows."""

    def __init__(self, run: Callable[[int, list[int]], Awaitable[Any]]) -> None:
        self._run = run
        self._tasks: set[asyncio.Task[Any]] = set()
        self._timers: set[asyncio.TimerHandle] = set()
        self._pending: set[str] = set()

    async def enqueue(self, campaign_id: int, ids: Sequence[int], *, tag: str, at: datetime | None = None) -> bool:
        if not ids:
            return True
        key = batch_job_id(campaign_id, ids, tag)
        if key in self._pending:
            return True
        self._pending.add(key)
        delay = max(0.0, (at - utcnow()).total_seconds()) if at is not None else 0.0
        loop = asyncio.get_running_loop()
        handle = loop.call_later(delay, self._start, key, campaign_id, list(ids))
        self._timers.add(handle)
        return True

    def _start(self, key: str, campaign_id: int, ids: list[int]) -> None:
        task = asyncio.create_task(self._guarded(key, campaign_id, ids))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _guarded(self, key: str, campaign_id: int, ids: list[int]) -> None:
        try:
            await self._run(campaign_id, ids)
        except Exception:  # one catch point per task: rows left behind are re-queued by the sweep
            log.exception("campaign %s batch crashed", campaign_id)
        finally:
            self._pending.discard(key)

    async def busy(self, campaign_id: int) -> bool:
        return any(key.startswith(f"campaign:{campaign_id}:") for key in self._pending)

    async def drain(self) -> None:
        """Wait for every started batch (tests and the CLI)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def stop(self) -> None:
        """Cancel timers and running batches; their rows are picked up again by the sweep."""
        for handle in self._timers:
            handle.cancel()
        for task in list(self._tasks):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
