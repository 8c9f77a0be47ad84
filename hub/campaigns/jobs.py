"""arq job functions and the cron of the campaign engine (thin wrappers over hub.campaigns)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from arq import cron, func
from sqlalchemy.exc import SQLAlchemyError

from hub.campaigns.queue import SEND_JOB, TICK_JOB
from hub.campaigns.scheduler import tick
from hub.campaigns.sending import SendContext, send_batch
from hub.settings import SettingsError, load_settings

log = logging.getLogger(__name__)

CONTEXT_KEY = "campaigns"


def context(runtime: Any) -> SendContext:
    """The campaign SendContext a runtime was wired with (see hub.campaigns.wiring)."""
    sc: SendContext = runtime.extras[CONTEXT_KEY]
    return sc


async def campaign_send_batch(ctx: dict[str, Any], campaign_id: int, ids: list[int]) -> dict[str, Any]:
    """Send one batch of recipient rows; safe to run twice (every row is claimed)."""
    tally = await send_batch(context(ctx["hub"]), campaign_id, ids)
    return tally.as_dict()


async def campaign_tick(ctx: dict[str, Any]) -> dict[str, Any]:
    """Cron: one scheduler pass (start, materialise, revive, sweep, settle)."""
    return await tick(context(ctx["hub"]))


def functions() -> list[Any]:
    """arq functions for workers/settings.py."""
    return [func(campaign_send_batch, name=SEND_JOB, keep_result=0, max_tries=5, timeout=900)]


def crons() -> list[Any]:
    """The scheduler cron, every HUB_CAMPAIGN_TICK_SECONDS (unique: one worker runs each tick)."""
    try:
        every = load_settings().campaign_tick_seconds
    except SettingsError:
        every = 5
    return [cron(campaign_tick, name=TICK_JOB, second=set(range(0, 60, every)), run_at_startup=True,
                 keep_result=0, unique=True, timeout=600)]


async def embedded_loop(runtime: Any, stop: asyncio.Event | None = None, every: float | None = None) -> None:
    """The scheduler without Redis: `hub serve` runs this task beside the in-process dispatcher."""
    sc = context(runtime)
    stop = stop or asyncio.Event()
    while not stop.is_set():
        try:
            await tick(sc)
        except SQLAlchemyError:  # the database was away; the next tick picks up where this stopped
            log.exception("campaign tick failed")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), every or sc.settings.campaign_tick_seconds)
