"""Periodic ops work: the worker heartbeat, its metrics port, and the retention policy."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import socket
from typing import Any

from prometheus_client import start_http_server
from redis.asyncio import Redis
from redis.exceptions import RedisError

from hub.ops import metrics, privacy
from hub.ops.status import heartbeat_key
from hub.runtime import BACKGROUND, Runtime
from hub.store.types import utcnow

log = logging.getLogger(__name__)

HEARTBEAT_SECONDS = 10.0
_TASK = "hub.ops.heartbeat"


async def heartbeat_loop(redis: Redis, key: str, every: float = HEARTBEAT_SECONDS) -> None:
    """Write this worker's key with a TTL of three beats, so `hub status` counts live workers only."""
    info = json.dumps({"host": socket.gethostname(), "pid": os.getpid(), "started": utcnow().isoformat()})
    while True:
        try:
            await redis.set(key, info, px=int(every * 3000))
        except (RedisError, OSError) as exc:
            log.warning("worker heartbeat not written: %s", exc)
        await asyncio.sleep(every)


async def worker_started(ctx: dict[str, Any]) -> None:
    """arq on_startup addition: start the heartbeat, and serve /metrics when HUB_METRICS_PORT is set."""
    runtime: Runtime = ctx["hub"]
    if runtime.redis is not None:
        ctx[_TASK] = asyncio.create_task(heartbeat_loop(runtime.redis, heartbeat_key()), name="hub-heartbeat")
    if runtime.settings.metrics_port:
        start_http_server(runtime.settings.metrics_port, registry=metrics.REGISTRY)


async def worker_stopping(ctx: dict[str, Any]) -> None:
    """arq on_shutdown addition: stop beating and remove the key (a clean stop is not a dead worker)."""
    task: asyncio.Task[None] | None = ctx.pop(_TASK, None)
    if task is not None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    runtime: Runtime | None = ctx.get("hub")
    if runtime is not None and runtime.redis is not None:
        with contextlib.suppress(RedisError, OSError):
            await runtime.redis.delete(heartbeat_key())


async def retention_job(ctx: dict[str, Any]) -> dict[str, int]:
    """arq cron: apply HUB_RETENTION_* (a no-op when neither is set)."""
    return await privacy.apply_retention(ctx["hub"])


async def retention_loop(runtime: Runtime, stop: asyncio.Event, every: float = 86400.0) -> None:
    """The in-process twin of the cron, for `hub serve` without Redis: once at start, then daily."""
    while not stop.is_set():
        try:
            counts = await privacy.apply_retention(runtime)
            if any(counts.values()):
                log.info("retention applied: %s", counts)
        except Exception:  # one catch point: retried at the next tick
            log.exception("retention failed")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), every)


def add_background(runtime: Runtime) -> None:
    """Register the in-process retention loop when a retention policy is configured."""
    settings = runtime.settings
    if settings.retention_raw_days or settings.retention_closed_years:
        runtime.extras.setdefault(BACKGROUND, []).append(retention_loop)
