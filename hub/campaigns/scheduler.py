"""The scheduler tick (an arq cron in every worker, or a loop in `hub serve`): the one engine.

Each tick, idempotently: start due campaigns, materialise running ones, re-queue rows of lost
workers, enqueue due rows whose job went missing (a Redis restart), release A/B winners,
auto-pause on error rate and complete campaigns with nothing left to send.
"""

from __future__ import annotations

import logging
import math
from datetime import datetime
from typing import Any

from redis.exceptions import RedisError
from sqlalchemy import func, literal, select, update
from sqlmodel import col

from hub.campaigns import abtest, lifecycle, materialise, sending
from hub.campaigns.config import CampaignConfig, load
from hub.campaigns.sending import SendContext
from hub.store.models import Campaign, CampaignRecipient
from hub.store.types import utcnow

log = logging.getLogger(__name__)

_OPEN = ("queued", "sending", "held")


async def start_due(sc: SendContext, now: datetime) -> list[int]:
    """scheduled -> running for every campaign whose time has come (a conditional UPDATE)."""
    async with sc.factory() as session, session.begin():
        rows = await session.execute(
            update(Campaign).where(col(Campaign.status) == lifecycle.SCHEDULED,
                                   col(Campaign.scheduled_at) <= now)
            .values(status=lifecycle.RUNNING, started_at=now).returning(col(Campaign.id))
            .execution_options(synchronize_session=False))
        return [int(r or 0) for r in rows.scalars()]


async def _running(sc: SendContext) -> list[Campaign]:
    async with sc.factory() as session:
        found = await session.execute(select(Campaign).where(col(Campaign.status) == lifecycle.RUNNING))
        return list(found.scalars())


async def _count(session: Any, campaign_id: int, status: str, limit: int | None = None) -> int:
    """Rows of the campaign in one status, counted on the (campaign, status, id) index, up to `limit`."""
    rows = (select(literal(1)).where(col(CampaignRecipient.campaign_id) == campaign_id,
                                     col(CampaignRecipient.status) == status))
    if limit is not None:
        rows = rows.limit(limit)
    return int((await session.execute(select(func.count()).select_from(rows.subquery()))).scalar_one())


async def _has(session: Any, campaign_id: int, statuses: tuple[str, ...]) -> bool:
    found = await session.execute(select(col(CampaignRecipient.id)).where(
        col(CampaignRecipient.campaign_id) == campaign_id, col(CampaignRecipient.status).in_(statuses)).limit(1))
    return found.first() is not None


async def _failing(session: Any, campaign_id: int, config: CampaignConfig) -> str | None:
    """The error rate as "failed/done" when it passes the threshold, else None.

    Sent rows are counted only up to the number that would bring the rate under the threshold,
    so a healthy million-row campaign costs a short index range per tick, not a count of every row.
    """
    failed = await _count(session, campaign_id, "failed")
    if not failed:
        return None
    enough = math.floor(failed * (1 - config.error_threshold) / config.error_threshold) + 1
    done = failed + await _count(session, campaign_id, "sent", limit=enough)
    if done >= config.error_min_sample and failed / done > config.error_threshold:
        return f"{failed}/{done}"
    return None


async def sweep(sc: SendContext, campaign_id: int, now: datetime, limit: int = 20000) -> int:
    """Enqueue due rows whose job is overdue; job ids come from the rows, so two ticks agree."""
    try:
        if await sc.queue.busy(campaign_id):
            return 0  # its jobs are still queued or running: they will reach these rows
    except (RedisError, OSError):
        return 0  # Redis is away; sweep once it is back
    ids = await sending.due_rows(sc.factory, campaign_id, sc.settings.campaign_stale_seconds, now, limit)
    size = sending.job_size(sc.settings)
    for start in range(0, len(ids), size):
        chunk = ids[start:start + size]
        if await sc.queue.enqueue(campaign_id, chunk, tag=f"s{int(now.timestamp()) // 60}"):
            async with sc.factory() as session, session.begin():
                await session.execute(update(CampaignRecipient).where(col(CampaignRecipient.id).in_(chunk),
                                                                      col(CampaignRecipient.status) == "queued")
                                      .values(enqueued_at=now).execution_options(synchronize_session=False))
    return len(ids)


async def _settle(sc: SendContext, campaign: Campaign, now: datetime) -> str | None:
    """Complete, auto-pause or release the A/B winner; returns what was done."""
    assert campaign.id is not None
    config = load(campaign.settings)
    async with sc.factory() as session:
        failing = await _failing(session, campaign.id, config)
        held = await _has(session, campaign.id, ("held",))
        still_open = held or await _has(session, campaign.id, _OPEN)
    if failing is not None:
        await sending.auto_pause(sc.factory, campaign.id, f"error rate {failing}")
        return "paused"
    if held and campaign.materialised_at is not None:
        async with sc.factory() as session, session.begin():
            fresh = await session.get(Campaign, campaign.id)
            if fresh is not None and await abtest.pick_winner(session, fresh, now):
                return "winner"
    if campaign.materialised_at is not None and not still_open:
        async with sc.factory() as session, session.begin():
            try:
                await lifecycle.transition(session, campaign.id, "complete", actor="system", now=now)
            except lifecycle.TransitionError:
                return None
        return "completed"
    return None


async def tick(sc: SendContext, now: datetime | None = None) -> dict[str, Any]:
    """One scheduler pass; safe to run in several processes at once."""
    now = now or utcnow()
    report: dict[str, Any] = {"started": await start_due(sc, now)}
    report["revived"] = await sending.revive_lost(sc.factory, sc.settings.campaign_lease_seconds, now)
    for campaign_id in await materialise.pending_campaigns(sc.factory):
        report[f"materialised:{campaign_id}"] = await materialise.materialise(
            sc.factory, sc.queue, campaign_id, batch_size=sc.settings.campaign_batch_size,
            lease_seconds=max(30.0, sc.settings.campaign_lease_seconds), now=now,
            job_size=sending.job_size(sc.settings))
    for campaign in await _running(sc):
        assert campaign.id is not None
        report[f"swept:{campaign.id}"] = await sweep(sc, campaign.id, now)
        if (outcome := await _settle(sc, campaign, now)) is not None:
            report[f"settled:{campaign.id}"] = outcome
    return report


