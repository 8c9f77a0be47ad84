"""arq WorkerSettings for `hub worker`: job functions are thin wrappers over hub code."""

from __future__ import annotations

from typing import Any

from arq import cron, func

from hub import runtime as hub_runtime
from hub.campaigns import jobs as campaign_jobs
from hub.channels.email.poller import poll_mailboxes_job
from hub.core.dispatch import JOB_NAME
from hub.core.jobs import run_outbox_item, sweep
from hub.ops import jobs as ops_jobs
from hub.settings import load_settings

# Other modules (campaigns, IMAP poll, SLA checks) append their arq functions and cron jobs here.
EXTRA_FUNCTIONS: list[Any] = []
EXTRA_CRONS: list[Any] = []
EXTRA_FUNCTIONS.extend(campaign_jobs.functions())
EXTRA_CRONS.extend(campaign_jobs.crons())
# IMAP: one drain of every configured mailbox a minute (unique: one worker at a time polls).
EXTRA_CRONS.append(cron(poll_mailboxes_job, name="email.poll_mailboxes", second={5}, run_at_startup=True,
                        unique=True, keep_result=0, timeout=600))


async def startup(ctx: dict[str, Any]) -> None:
    """Build the runtime once per worker process; jobs find it in ctx["hub"]."""
    settings = ctx.get("hub_settings") or load_settings()
    ctx["hub"] = await hub_runtime.build(settings, use_redis=True)
    await ops_jobs.worker_started(ctx)


async def shutdown(ctx: dict[str, Any]) -> None:
    await ops_jobs.worker_stopping(ctx)
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



async def check_interventions_and_sla(ctx: dict[str, Any]) -> dict[str, int]:
    """Cron: raise `intervention.overdue` and `sla.breached` once each (routing's periodic checks)."""
    from hub.routing import checks

    runtime: hub_runtime.Runtime = ctx["hub"]
    overdue = await checks.check_overdue(runtime)
    await checks.check_sla(runtime)
    return {"overdue": overdue}


EXTRA_CRONS.append(cron(check_interventions_and_sla, minute=set(range(60)), second={15}, keep_result=0,
                        unique=True))


def _analytics_crons() -> None:
    """Nightly lifecycle classification (hub.analytics), one worker at a time."""
    from hub.analytics.jobs import classify_job

    EXTRA_CRONS.append(cron(classify_job, name="analytics.classify", hour={3}, minute={30}, second={0},
                            keep_result=0, unique=True, timeout=3600))


_analytics_crons()

# Ops (hub/ops): the retention policy (HUB_RETENTION_*) once a night; a no-op when unset.
EXTRA_CRONS.append(cron(ops_jobs.retention_job, name="ops.retention", hour={3}, minute={17}, second={0},
                        unique=True, keep_result=0, timeout=3600))
