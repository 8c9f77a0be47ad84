"""The in-process dispatcher gives way to foreground work (webhooks), yet keeps the queue moving."""

from __future__ import annotations

import asyncio

from hub.core.dispatch import InProcessQueue


class Jobs:
    """Records which items ran, and whether foreground work was running at the time."""

    def __init__(self) -> None:
        self.queue: InProcessQueue | None = None
        self.ran: list[tuple[int, bool]] = []

    async def run(self, item_id: int) -> str:
        assert self.queue is not None
        self.ran.append((item_id, self.queue.busy))
        return "done"


def dispatcher(jobs: Jobs, **kw: float) -> InProcessQueue:
    queue = InProcessQueue(jobs.run, workers=2, skips=lambda item_id: item_id >= 100, **kw)
    jobs.queue = queue
    queue.start()
    return queue


async def test_jobs_wait_for_the_foreground_and_run_once_it_is_quiet() -> None:
    jobs = Jobs()
    queue = dispatcher(jobs, quiet_after=0.02, max_wait=3600)
    try:
        with queue.foreground():
            await queue.enqueue(1)
            await queue.enqueue(2)
            await asyncio.sleep(0.1)  # several quiet_after periods: nothing may start meanwhile
            assert jobs.ran == []
        await queue.drain()
        assert sorted(jobs.ran) == [(1, False), (2, False)]
    finally:
        await queue.stop()


async def test_under_endless_foreground_work_one_job_per_max_wait_still_runs() -> None:
    jobs = Jobs()
    queue = dispatcher(jobs, quiet_after=0.02, max_wait=0.05)
    try:
        with queue.foreground():
            for item_id in (1, 2, 3):
                await queue.enqueue(item_id)
            await queue.drain()
            assert sorted(jobs.ran) == [(1, True), (2, True), (3, True)]
    finally:
        await queue.stop()


async def test_jobs_already_run_in_another_items_batch_are_dropped_without_waiting() -> None:
    jobs = Jobs()
    queue = dispatcher(jobs, quiet_after=0.02, max_wait=3600)
    try:
        with queue.foreground():
            await queue.enqueue(100)  # claimed and run in another item's batch
            await queue.drain()
            assert jobs.ran == []
            assert queue.completed == 1
    finally:
        await queue.stop()
