"""arq WorkerSettings for `hub worker`: job functions are thin wrappers over hub code."""

from __future__ import annotations

from typing import Any

from arq import cron, func

from hub import runtime as hub_runtime
from hub.core.dispatch import JOB_NAME
from hub.core.jobs import run_outbox_item, sweep
from hub.settings import load_settings

# Other modules (campaigns, IMAP poll, SLA checks) append their arq functions and cron jobs here.
EXTRA_FUNCTIONS: list[Any] = []
EXTRA_CRONS: list[Any] = []


async def startup(ctx: dict[str, Any]) -> None:
    """Build the runtime once per worker process; jobs find it in ctx["hub"]."""
    settings = ctx.get("hub_settings") or load_settings()
    ctx["hub"] = await hub_runtime.build(settings, use_redis=True)


async def shutdown(ctx: dict[str, Any]) -> None:
    if "hub" in ctx:
        await hub_runtime.close(ctx["hub"])


async def run_outbox_job(ctx: dict[str, Any], item_id: int) -> str:
    """Run one outbox row by id; safe to run twice (the claim is conditional)."""
    runtime: hub_runtime.Runtime = ctx["hub"]
    return await run_outbox_item(runtime.jobs, item_id)


async def sweep_outbox(ctx: dict[str, Any]) -> dict[str, int]:
    """Cron: re-enqueue outbox rows nobody picked up and revive ones a dead worker held."""
    runtime: hub_runtime.Runtime = ctx["hub"]
    return await sweep(runtime.jobs)


def worker_settings(redis_url: str, **overrides: Any) -> dict[str, Any]:
    """WorkerSettings as keyword arguments for arq.Worker (used by `hub worker` and tests)."""
    return {
        # keep_result=0: a finished job leaves no result key, so the sweeper can enqueue the same
        # deterministic job id again; the database claim is what stops a second execution.
        "functions": [func(run_outbox_job, name=JOB_NAME, keep_result=0, max_tries=3, timeout=300),
                      *EXTRA_FUNCTIONS],
        "cron_jobs": [cron(sweep_outbox, second={0, 30}, run_at_startup=True, keep_result=0, unique=True),
                      *EXTRA_CRONS],
        "on_startup": startup,
        "on_shutdown": shutdown,
        "redis_settings": hub_runtime.redis_settings(redis_url),
        "max_jobs": 20,
        "handle_signals": True,
        **overrides,
    }

