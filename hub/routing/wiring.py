"""Start-up hook: the router joins the runtime's event handlers; rule side effects get job handlers."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from sqlalchemy.exc import SQLAlchemyError

from hub import runtime as hub_runtime
from hub.routing import checks, jobs
from hub.routing.actions import notify_email, webhook
from hub.routing.router import Router

ROUTER_KEY = "routing.router"
log = logging.getLogger(__name__)


@hub_runtime.plugin
def wire_routing(runtime: hub_runtime.Runtime) -> None:
    """Add the router once per runtime and the outbox handlers for webhooks and notifications."""
    if ROUTER_KEY not in runtime.extras:
        router = Router(runtime.settings, runtime.handlers)
        runtime.extras[ROUTER_KEY] = router
        runtime.handlers.append(router)
    runtime.jobs.handlers[webhook.KIND] = jobs.webhook_job(runtime.settings)
    runtime.jobs.handlers[notify_email.KIND] = jobs.notify_email_job(runtime.settings)
    if runtime.redis is None:  # with Redis, `hub worker` runs these checks as an arq cron
        runtime.extras.setdefault(hub_runtime.BACKGROUND, []).append(periodic_checks)


async def periodic_checks(runtime: hub_runtime.Runtime, stop: asyncio.Event, every: float = 60.0) -> None:
    """Overdue interventions and SLA breaches inside `hub serve` when there is no arq worker."""
    while not stop.is_set():
        try:
            await checks.check_overdue(runtime)
            await checks.check_sla(runtime)
        except SQLAlchemyError:  # the database was away; the next round catches up
            log.exception("routing checks failed")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), every)


def router_of(runtime: hub_runtime.Runtime) -> Router:
    """This runtime's router (to invalidate its rule cache after edits)."""
    router: Router = runtime.extras[ROUTER_KEY]
    return router


def rules_changed(runtime: hub_runtime.Runtime) -> None:
    """Forget the compiled rules so the next event reloads them."""
    router_of(runtime).cache.invalidate()
