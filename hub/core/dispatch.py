"""The two JobQueue implementations: arq on Redis, and an in-process dispatcher for the embedded default."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Iterator
from datetime import timedelta

from arq import ArqRedis

log = logging.getLogger(__name__)

JOB_NAME = "run_outbox_item"


def job_id(item_id: int) -> str:
    """The arq job id of an outbox row: enqueuing it twice while queued is a no-op."""
    return f"outbox:{item_id}"


class ArqQueue:
    """Enqueue outbox ids as arq jobs; `hub worker` processes run them."""

    def __init__(self, pool: ArqRedis) -> None:
        self.pool = pool

    async def enqueue(self, item_id: int, *, delay: float = 0.0) -> None:
        await self.pool.enqueue_job(
            JOB_NAME, item_id, _job_id=job_id(item_id), _defer_by=timedelta(seconds=delay) if delay else None
        )


class InProcessQueue:
    """Runs outbox items on tasks inside this process (no Redis): same job function, same outbox.

    Jobs share the event loop (and SQLite's one writer) with the web requests, so they give way
    to foreground work a caller is waiting on (webhooks: Twilio times out and retries). A worker
    starts its next job once the foreground has been quiet for `quiet_after` seconds; while it
    stays busy, one job every `max_wait` seconds starts anyway, so the queue still moves.
    """

    def __init__(
        self, run: Callable[[int], Awaitable[str]], workers: int = 4, *,
        skips: Callable[[int], bool] | None = None, quiet_after: float = 0.25, max_wait: float = 1.0,
    ) -> None:
        self._run = run
        # Whether an item's job is done already (run in another item's batch): it is dropped unrun.
        self._skips = skips or (lambda _item_id: False)
        self._queue: asyncio.Queue[int] = asyncio.Queue()
        self._queued: set[int] = set()
        self._workers = workers
        self._tasks: list[asyncio.Task[None]] = []
        self._timers: set[asyncio.TimerHandle] = set()
        self.completed = 0
        self._quiet_after, self._max_wait = quiet_after, max_wait
        self._foreground = 0
        self._foreground_ended = float("-inf")
        self._next_forced = float("-inf")

    @contextlib.contextmanager
    def foreground(self) -> Iterator[None]:
        """Mark work a caller is waiting on; jobs hold back while it runs (see the class docstring)."""
        self._foreground += 1
        try:
            yield
        finally:
            self._foreground -= 1
            self._foreground_ended = asyncio.get_running_loop().time()

    def _quiet(self, now: float) -> bool:
        return not self._foreground and now - self._foreground_ended >= self._quiet_after

    @property
    def busy(self) -> bool:
        """Whether foreground work is running or ended less than `quiet_after` seconds ago."""
        return not self._quiet(asyncio.get_running_loop().time())

    async def give_way(self) -> None:
        """Return once the foreground is quiet, or when this is the one job of `max_wait` allowed to go ahead."""
        # Polled in short sleeps: requests come and go faster than an event could say "quiet".
        loop = asyncio.get_running_loop()
        if self._next_forced < loop.time():  # the first wait of a busy spell is a full one
            self._next_forced = loop.time() + self._max_wait
        while not self._quiet(now := loop.time()):
            if now >= self._next_forced:
                self._next_forced = now + self._max_wait
                return
            await asyncio.sleep(min(self._quiet_after / 5, self._next_forced - now))

    async def enqueue(self, item_id: int, *, delay: float = 0.0) -> None:
        if delay > 0:
            def due() -> None:
                self._timers.discard(handle)
                self._put(item_id)

            handle = asyncio.get_running_loop().call_later(delay, due)
            self._timers.add(handle)
            return
        self._put(item_id)

    def _put(self, item_id: int) -> None:
        if item_id not in self._queued:  # mirrors arq's job id dedupe
            self._queued.add(item_id)
            self._queue.put_nowait(item_id)

    def start(self) -> None:
        """Start the worker tasks."""
        self._tasks = [asyncio.create_task(self._work(), name=f"hub-dispatch-{n}") for n in range(self._workers)]

    async def _work(self) -> None:
        while True:
            item_id = await self._queue.get()
            self._queued.discard(item_id)
            try:
                if not self._skips(item_id):
                    await self.give_way()
                    await self._run(item_id)
            except Exception:  # one catch point per worker task: keep the dispatcher alive
                log.exception("in-process job for outbox %s crashed", item_id)
            finally:
                self.completed += 1
                self._queue.task_done()

    async def drain(self) -> None:
        """Wait until every enqueued item has run (used by tests and `hub ingest`)."""
        await self._queue.join()

    async def stop(self) -> None:
        """Cancel workers and pending timers; unfinished items stay queued in the database."""
        for handle in self._timers:
            handle.cancel()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
