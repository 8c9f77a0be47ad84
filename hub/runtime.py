"""Wiring shared by `hub serve`, `hub worker`, the CLI and tests: engine, queue, jobs, ingest.

Channels and routing register their senders, outbox handlers and event handlers here at
start-up, so the core never imports them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from arq import create_pool
from arq.connections import ArqRedis, RedisSettings
from sqlalchemy.ext.asyncio import AsyncEngine

from hub.core import delivery, replies
from hub.core.blobs import FileBlobStore
from hub.core.dispatch import ArqQueue, InProcessQueue
from hub.core.events import EventHandler
from hub.core.ingest import IngestContext
from hub.core.jobs import ClaimLoad, JobContext, run_outbox_item, sweep, taken_ahead
from hub.core.outbox import JobQueue
from hub.routing.conditions import install_sqlite_functions
from hub.settings import Settings
from hub.store import migrate
from hub.store.engine import SessionFactory, make_engine, make_session_factory

log = logging.getLogger(__name__)

Plugin = Callable[["Runtime"], None]
_PLUGINS: list[Plugin] = []


def plugin(func: Plugin) -> Plugin:
    """Register a start-up hook that adds senders, outbox handlers or event handlers to a Runtime."""
    _PLUGINS.append(func)
    return func


@dataclass
class Runtime:
    settings: Settings
    engine: AsyncEngine
    factory: SessionFactory
    queue: JobQueue
    jobs: JobContext
    handlers: list[EventHandler] = field(default_factory=list)
    redis: ArqRedis | None = None
    extras: dict[str, Any] = field(default_factory=dict)

    @property
    def ingest_context(self) -> IngestContext:
        return IngestContext(
            blobs=self.jobs.blobs, handlers=tuple(self.handlers),
            thread_window=timedelta(days=self.settings.thread_window_days),
        )


def redis_settings(url: str) -> RedisSettings:
    """arq's RedisSettings from a redis:// URL."""
    return RedisSettings.from_dsn(url)


class _LateQueue:
    """Lets the in-process queue and the job context refer to each other."""

    def __init__(self) -> None:
        self.target: JobQueue | None = None

    async def enqueue(self, item_id: int, *, delay: float = 0.0) -> None:
        assert self.target is not None
        await self.target.enqueue(item_id, delay=delay)


def _load_plugins() -> None:
    # Imported for their @plugin registrations; each channel wires itself.
    import importlib

    for name in ("hub.channels.email.wiring", "hub.channels.sms.wiring", "hub.channels.phone.wiring",
                 "hub.routing.wiring", "hub.campaigns.wiring", "hub.ops.wiring"):
        with contextlib.suppress(ModuleNotFoundError):
            importlib.import_module(name)


async def build(settings: Settings, *, use_redis: bool | None = None, migrate_schema: bool = True) -> Runtime:
    """Open the engine (migrating it), the queue and the job context for these settings."""
    engine = make_engine(settings, sqlite_functions=(install_sqlite_functions,))
    if migrate_schema:
        await migrate.upgrade(engine)
    factory = make_session_factory(engine)
    late = _LateQueue()
    jobs = JobContext(
        factory=factory, queue=late, blobs=FileBlobStore(settings.data_dir / "blobs"),
        stuck_after=timedelta(seconds=settings.outbox_stuck_seconds),
    )
    jobs.handlers[replies.SEND_MESSAGE] = delivery.send_message
    jobs.batch_runners[replies.SEND_MESSAGE] = delivery.send_messages  # batched channels (email)
    jobs.claim_loads[replies.SEND_MESSAGE] = ClaimLoad(delivery.LOAD_KEY, delivery.load_pending)
    redis = None
    if use_redis if use_redis is not None else settings.redis_url is not None:
        assert settings.redis_url, "HUB_REDIS_URL is needed for the arq queue"
        redis = await create_pool(redis_settings(settings.redis_url))
        late.target = ArqQueue(redis)
    else:
        late.target = InProcessQueue(lambda item_id: run_outbox_item(jobs, item_id), settings.inprocess_workers,
                                     skips=lambda item_id: taken_ahead(jobs, item_id))
    runtime = Runtime(settings, engine, factory, late, jobs, redis=redis)
    _load_plugins()
    for hook in _PLUGINS:
        hook(runtime)
    return runtime


BACKGROUND = "background"  # extras key: [async fn(runtime, stop_event)] run while the app runs
CLOSERS = "closers"  # extras key: [async fn()] called once at close (HTTP sessions, SMTP pools)
REPLAYERS = "replayers"  # extras key: {channel: async fn(raw, source) -> outcome} for `hub quarantine replay`
# extras key: async fn(runtime, Inbound) -> bool; True when the mail was a signed List-Unsubscribe
# request, now applied, so the mailbox does not store it as a conversation
UNSUBSCRIBE_MAIL = "unsubscribe_mail"


async def close(runtime: Runtime) -> None:
    """Stop the dispatcher, run the channels' closers, close Redis and the engine."""
    target = getattr(runtime.queue, "target", None)
    if isinstance(target, InProcessQueue):
        await target.stop()
    for closer in runtime.extras.get(CLOSERS, []):
        try:
            await closer()
        except Exception:  # one catch point: a failing closer must not keep the others from running
            log.exception("closing %r failed", closer)
    if runtime.redis is not None:
        await runtime.redis.aclose()
    await runtime.engine.dispose()


def inprocess(runtime: Runtime) -> InProcessQueue | None:
    """The in-process dispatcher when this runtime has no Redis."""
    target = getattr(runtime.queue, "target", None)
    return target if isinstance(target, InProcessQueue) else None


async def sweeper_loop(runtime: Runtime, stop: asyncio.Event, every: float = 15.0) -> None:
    """The in-process twin of the arq cron sweeper."""
    while not stop.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), every)
        if stop.is_set():
            return
        try:
            await sweep(runtime.jobs)
        except Exception:  # one catch point: a failed sweep is retried at the next tick
            log.exception("outbox sweep failed")


def start_background(runtime: Runtime, stop: asyncio.Event) -> list[asyncio.Task[None]]:
    """Start the channels' long-running tasks (IMAP pollers...) registered under extras["background"]."""
    return [asyncio.create_task(start(runtime, stop), name=getattr(start, "__name__", "background"))
            for start in runtime.extras.get(BACKGROUND, [])]


async def stop_tasks(tasks: list[asyncio.Task[None]], stop: asyncio.Event, grace: float = 5.0) -> None:
    """Ask background tasks to stop, give them `grace` seconds, then cancel what is left."""
    stop.set()
    if not tasks:
        return
    _done, pending = await asyncio.wait(tasks, timeout=grace)
    for task in pending:
        task.cancel()
    for task in tasks:
        with contextlib.suppress(asyncio.CancelledError):
            await task


@asynccontextmanager
async def running(
    settings: Settings, *, use_redis: bool | None = None, workers: bool = True, background: bool = False
) -> AsyncIterator[Runtime]:
    """A built runtime whose in-process dispatcher, sweeper and (if asked) background tasks run meanwhile."""
    runtime = await build(settings, use_redis=use_redis)
    queue = inprocess(runtime)
    tasks: list[asyncio.Task[None]] = []
    stop = asyncio.Event()
    if queue is not None and workers:
        queue.start()
        tasks.append(asyncio.create_task(sweeper_loop(runtime, stop)))
    if background:
        tasks += start_background(runtime, stop)
    try:
        yield runtime
    finally:
        await stop_tasks(tasks, stop)
        await close(runtime)
